// Two customers (tenants), each with its own site and widget key: their visitors never meet.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { exchange, hostPage, launchBrowser, recordFrames, startStack, unwrapVisitorTurns, widget } from './harness.mjs';

let stack;
let ctx;

before(async () => {
  stack = await startStack({ tenants: ['acme', 'globex'] });
  stack.llm.replyFor = (body) => `Echo: ${unwrapVisitorTurns(body).at(-1)}`;
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

async function chat(tenant, text) {
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(tenant.pages.page(`/${tenant.tenant}`, hostPage(stack.addr, tenant.widget_key, { title: tenant.tenant })));
  const w = widget(page);
  await w.launcher.click();
  await w.input.fill(text);
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: `Echo: ${text}` }).waitFor();
  return { page, w, frames, accepted: frames.received.find((f) => f.type === 'accepted') };
}

test('widgets of two tenants on two sites keep their conversations apart', { timeout: 90_000 }, async () => {
  const { acme, globex } = stack.tenant;
  const a = await chat(acme, 'acme secret plans');
  const g = await chat(globex, 'globex shopping list');
  assert.notEqual(a.accepted.conversation, g.accepted.conversation);

  for (const [side, own, other] of [[a, 'acme secret plans', 'globex'], [g, 'globex shopping list', 'acme']]) {
    const shown = (await side.w.log.textContent());
    assert.ok(shown.includes(own));
    assert.ok(!shown.includes(other), `${own}'s widget shows nothing of ${other}`);
  }
  // The LLM got each visitor's words in a request of their own.
  const turns = stack.llm.requests.map(unwrapVisitorTurns);
  assert.deepEqual(turns, [['acme secret plans'], ['globex shopping list']]);

  // One tenant's token does not open the other's conversation, even from its own site.
  const probe = await exchange(g.page, stack.addr, globex.widget_key,
    [{ type: 'resume', conversation: a.accepted.conversation, token: a.accepted.token }], ['resumed', 'error']);
  assert.equal(probe.at(-1).type, 'error', JSON.stringify(probe.at(-1)));

  // Each tenant's API sees only its own conversation; the other's id is not found.
  for (const [tenant, own, other] of [[acme, a, g], [globex, g, a]]) {
    const res = await stack.api('/v1/conversations', tenant.api_key);
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).items.map((c) => c.id), [own.accepted.conversation]);
    const cross = await stack.api(`/v1/conversations/${other.accepted.conversation}`, tenant.api_key);
    assert.equal(cross.status, 404);
  }
  await a.page.close();
  await g.page.close();
});

test('a widget key used on a site that is not its tenant\'s origin cannot connect', { timeout: 60_000 }, async () => {
  const { acme, globex } = stack.tenant;
  const requestsBefore = stack.llm.requests.length;
  // acme's key embedded on globex's site: the handshake is refused (Origin not allowed).
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(globex.pages.page('/borrowed', hostPage(stack.addr, acme.widget_key)));
  const w = widget(page);
  await w.launcher.click();
  await w.input.fill('hello from the wrong site');
  await w.input.press('Enter');
  await w.status.filter({ hasText: 'The chat cannot be reached right now.' }).waitFor();
  assert.deepEqual(frames.received, [], 'no hello: the socket never opened');

  const probe = await exchange(page, stack.addr, acme.widget_key, [], ['hello']);
  assert.equal(probe.length, 1);
  assert.ok(probe[0].closed, `refused, got ${JSON.stringify(probe)}`);
  assert.equal(stack.llm.requests.length, requestsBefore);
  await page.close();
});

// Privacy: nothing leaves the page before Send, nothing is stored in the browser, persistence is opt-in.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { exchange, hostPage, launchBrowser, recordFrames, startStack, widget } from './harness.mjs';

let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { reply: 'Happy to help.' } });
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

/** Every request and socket the page makes, and everything it could have stored. */
function watch(page) {
  const seen = { requests: [], sockets: [] };
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('websocket', (ws) => seen.sockets.push(ws.url()));
  return seen;
}
async function browserState(page) {
  const inPage = await page.evaluate(async () => ({
    localStorage: localStorage.length,
    sessionStorage: sessionStorage.length,
    indexedDB: (await indexedDB.databases()).length,
    caches: (await caches.keys()).length,
    documentCookie: document.cookie,
  }));
  return { ...inPage, cookies: (await ctx.cookies()).length };
}
const NOTHING = { localStorage: 0, sessionStorage: 0, indexedDB: 0, caches: 0, documentCookie: '', cookies: 0 };

test('before the first Send the widget makes no request beyond widget.js and stores nothing', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const seen = watch(page);
  await page.goto(acme.pages.page('/quiet', hostPage(stack.addr, acme.widget_key)), { waitUntil: 'networkidle' });
  const w = widget(page);
  await w.launcher.click();
  await w.input.pressSequentially('a draft I have not sent yet', { delay: 5 });
  await w.button('Close chat').first().click();
  await w.launcher.click();
  await page.waitForLoadState('networkidle');

  const backend = seen.requests.filter((u) => u.startsWith(`http://${stack.addr}/`));
  assert.deepEqual(backend, [`http://${stack.addr}/widget.js`]);
  assert.deepEqual(seen.sockets, [], 'no WebSocket before Send');
  assert.deepEqual(await browserState(page), NOTHING);
  assert.equal(stack.llm.requests.length, 0);
  assert.equal(await w.input.inputValue(), 'a draft I have not sent yet');
  await page.close();
});

test('after a whole conversation there are no cookies and no browser storage', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const seen = watch(page);
  const frames = recordFrames(page);
  await page.goto(acme.pages.page('/conversation', hostPage(stack.addr, acme.widget_key)));
  const w = widget(page);
  await w.launcher.click();
  for (const text of ['first question', 'second question']) {
    await w.input.fill(text);
    await w.input.press('Enter');
    await w.botMessages.filter({ hasText: 'Happy to help.' }).nth(text === 'first question' ? 0 : 1).waitFor();
    await w.reply('Happy to help.');
  }
  await Promise.all([page.waitForEvent('download'), w.button('Download transcript').click()]);

  assert.deepEqual(seen.sockets, [`ws://${stack.addr}/v1/widget/ws?key=${encodeURIComponent(acme.widget_key)}`]);
  const backend = seen.requests.filter((u) => u.startsWith(`http://${stack.addr}/`));
  assert.deepEqual(backend, [`http://${stack.addr}/widget.js`]);
  assert.deepEqual(frames.sent.map((f) => f.type), ['submit', 'submit', 'transcript']);
  assert.deepEqual(await browserState(page), NOTHING);
  await page.close();
});

test('data-persist="session" keeps the conversation across a reload, and connects only when one is stored', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const url = acme.pages.page('/persist', hostPage(stack.addr, acme.widget_key, { persist: 'session' }));
  const page = await ctx.newPage();
  const seen = watch(page);
  await page.goto(url, { waitUntil: 'networkidle' });
  assert.deepEqual(seen.sockets, [], 'nothing stored yet, so no connection on load');
  assert.equal((await browserState(page)).sessionStorage, 0);

  const w = widget(page);
  await w.launcher.click();
  await w.input.fill('remember me across pages');
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: 'Happy to help.' }).waitFor();
  const state = await browserState(page);
  assert.deepEqual({ ...state, sessionStorage: 0 }, NOTHING, 'only sessionStorage is used');
  assert.equal(state.sessionStorage, 1);

  const frames = recordFrames(page);
  await page.reload();
  await w.launcher.click();
  await w.userMessages.filter({ hasText: 'remember me across pages' }).waitFor();
  await w.botMessages.filter({ hasText: 'Happy to help.' }).waitFor();
  assert.deepEqual(frames.sent.map((f) => f.type), ['resume']);
  assert.equal(frames.received.at(-1).type, 'resumed');
  assert.equal(stack.llm.requests.length >= 1, true);

  // A new tab has its own (empty) session storage: no connection there.
  const other = await ctx.newPage();
  const otherSeen = watch(other);
  await other.goto(url, { waitUntil: 'networkidle' });
  assert.deepEqual(otherSeen.sockets, []);
  await other.close();
  await page.close();
});

test('a stored conversation that was erased elsewhere is forgotten on the next page load', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const url = acme.pages.page('/persist-erased', hostPage(stack.addr, acme.widget_key, { persist: 'session' }));
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(url);
  const w = widget(page);
  await w.launcher.click();
  await w.input.fill('soon to be erased');
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: 'Happy to help.' }).waitFor();
  const { conversation, token } = frames.received.find((f) => f.type === 'accepted' && f.token);

  // The visitor erases it from another tab (any socket holding the token may).
  const other = await ctx.newPage();
  await other.goto(url);
  const answer = await exchange(other, stack.addr, acme.widget_key,
    [{ type: 'resume', conversation, token }, { type: 'erase' }], ['erased', 'error']);
  assert.equal(answer.at(-1).type, 'erased', JSON.stringify(answer));
  await other.close();

  await page.reload();
  await w.launcher.click();
  await w.status.filter({ hasText: 'This conversation is no longer available.' }).waitFor();
  assert.equal((await browserState(page)).sessionStorage, 0, 'the dead token is removed from storage');
  assert.equal(await w.userMessages.count(), 0);
  await page.close();
});

// Visitor rights inside the widget: download a transcript, delete the conversation (with confirmation).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { exchange, hostPage, launchBrowser, recordFrames, startStack, widget } from './harness.mjs';

let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { reply: 'Returns are free within 30 days.' } });
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

async function say(w, text, nth) {
  await w.input.fill(text);
  await w.input.press('Enter');
  await w.botMessages.nth(nth).waitFor();
  await w.reply('Returns are free within 30 days.');
}

test('Download transcript saves a text file of the whole conversation', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  await page.goto(acme.pages.page('/transcript', hostPage(stack.addr, acme.widget_key, { title: 'Acme help' })));
  const w = widget(page);
  await w.launcher.click();
  assert.equal(await w.button('Download transcript').isHidden(), true, 'nothing to download before a conversation exists');
  await say(w, 'Can I return a gift?', 1);
  await say(w, 'What about sale items?\nThey were cheap.', 2);

  const [download] = await Promise.all([page.waitForEvent('download'), w.button('Download transcript').click()]);
  assert.match(download.suggestedFilename(), /^chat-transcript-\d{4}-\d{2}-\d{2}\.txt$/);
  const text = fs.readFileSync(await download.path(), 'utf8');
  const turns = [...text.matchAll(/^\[([^\]]*)\] (You|Assistant):$/gm)];
  assert.deepEqual(turns.map((m) => m[2]), ['You', 'Assistant', 'You', 'Assistant']);
  assert.ok(turns.every((m) => m[1] && m[1] !== 'undefined'), 'every turn carries its time');
  assert.ok(text.startsWith(`Acme help\n${acme.origin}\n`), text.slice(0, 80));
  assert.ok(text.includes('You:\nCan I return a gift?\n'));
  assert.ok(text.includes('You:\nWhat about sale items?\nThey were cheap.\n'));
  assert.equal(text.split('Returns are free within 30 days.').length - 1, 2);
  await page.close();
});

test('Delete this conversation confirms inside the widget, then erases it on the server', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const url = acme.pages.page('/erase', hostPage(stack.addr, acme.widget_key));
  const page = await ctx.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.type()); d.dismiss(); });
  const frames = recordFrames(page);
  await page.goto(url);
  const w = widget(page);
  await w.launcher.click();
  await say(w, 'Please forget me afterwards.', 1);
  const { conversation, token } = frames.received.find((f) => f.type === 'accepted' && f.token);

  // First ask, then think better of it: nothing is sent.
  await w.button('Delete this conversation').click();
  const confirm = w.host.getByRole('group', { name: /cannot be undone/ });
  await confirm.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.textContent), 'Cancel');
  await w.button('Cancel').click();
  await confirm.waitFor({ state: 'hidden' });
  assert.ok(!frames.sent.some((f) => f.type === 'erase'));

  await w.button('Delete this conversation').click();
  await confirm.getByRole('button', { name: 'Delete', exact: true }).click();
  await w.status.filter({ hasText: 'The conversation was deleted.' }).waitFor();
  assert.ok(frames.received.some((f) => f.type === 'erased' && f.conversation === conversation));
  assert.deepEqual(dialogs, [], 'no browser dialog: confirmation happens inside the widget');
  assert.equal(await w.userMessages.count(), 0);
  assert.equal(await w.botMessages.count(), 1, 'only the greeting is left');
  assert.equal(await w.button('Delete this conversation').isHidden(), true);

  // Server side: the old token no longer opens anything.
  const probe = await ctx.newPage();
  await probe.goto(url);
  const answer = await exchange(probe, stack.addr, acme.widget_key, [{ type: 'resume', conversation, token }], ['resumed', 'error']);
  const last = answer.at(-1);
  assert.equal(last.type, 'error', `resume after erase answered ${JSON.stringify(last)}`);
  assert.ok(['invalid_token', 'no_conversation'].includes(last.code), last.code);
  // And the operator's API no longer lists it, nor serves it.
  const res = await stack.api('/v1/conversations', acme.api_key);
  assert.equal(res.status, 200);
  const { items } = await res.json();
  assert.ok(!items.some((c) => c.id === conversation), 'the erased conversation is not listed');
  assert.equal((await stack.api(`/v1/conversations/${conversation}`, acme.api_key)).status, 404);

  // The next message starts a brand new conversation.
  await say(w, 'A new question.', 1);
  const fresh = frames.received.filter((f) => f.type === 'accepted' && f.token);
  assert.equal(fresh.length, 2);
  assert.notEqual(fresh[1].conversation, conversation);
  await probe.close();
  await page.close();
});

// Reconnect: the server process dies and comes back on the same port and data dir; the widget
// resumes the conversation with backoff, without losing or duplicating a message.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, beforeEach, test } from 'node:test';
import { hostPage, launchBrowser, recordFrames, startStack, widget } from './harness.mjs';

let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { chunkDelayMs: 5 } });
  stack.llm.replyFor = (body) => `Answer number ${body.messages.filter((m) => m.role === 'user').length}. The end.`;
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

beforeEach(() => {
  stack.llm.holdAfter = null;
  stack.llm.release();
});

async function say(w, text, replyText) {
  await w.input.fill(text);
  await w.input.press('Enter');
  await w.reply(replyText);
}

/** The transcript the server returns, as [role, text] pairs, fetched through the widget's own button. */
async function transcript(page, w) {
  const [download] = await Promise.all([page.waitForEvent('download'), w.button('Download transcript').click()]);
  const body = fs.readFileSync(await download.path(), 'utf8');
  return [...body.matchAll(/^\[[^\]]*\] (You|Assistant):\n(.*)$/gm)].map((m) => [m[1], m[2]]);
}

async function texts(locator) {
  return (await locator.allTextContents()).map((s) => s.replace(/^(You|Assistant): /, ''));
}

test('a socket dropped in the middle of a reply is resumed without losing or duplicating a message', { timeout: 90_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(acme.pages.page('/midreply', hostPage(stack.addr, acme.widget_key)));
  const w = widget(page);
  await w.launcher.click();
  await say(w, 'first question', 'Answer number 1. The end.');

  stack.llm.holdAfter = 2; // the reply stops part-way, like a slow model
  await w.input.fill('second question');
  await w.input.press('Enter');
  await w.botMessages.nth(2).filter({ hasText: 'Answer numbe' }).waitFor();
  await stack.kill();
  await w.status.filter({ hasText: /connection was lost/i }).waitFor();

  stack.llm.holdAfter = null;
  stack.llm.release();
  await stack.restart();
  await w.botMessages.filter({ hasText: 'Answer number 2. The end.' }).waitFor({ timeout: 30_000 });
  await w.reply('Answer number 2. The end.');
  await w.status.waitFor({ state: 'hidden' });

  assert.deepEqual(await texts(w.userMessages), ['first question', 'second question']);
  assert.deepEqual((await texts(w.botMessages)).slice(1), ['Answer number 1. The end.', 'Answer number 2. The end.']);
  const resume = frames.sent.find((f) => f.type === 'resume');
  const accepted = frames.received.find((f) => f.type === 'accepted' && f.token);
  assert.deepEqual(resume, { type: 'resume', conversation: accepted.conversation, token: accepted.token });
  const submits = frames.sent.filter((f) => f.type === 'submit' && f.text === 'second question');
  assert.ok(submits.length >= 1 && submits.every((s) => s.id === submits[0].id), 'a re-sent submit keeps its id');
  assert.deepEqual(await transcript(page, w), [
    ['You', 'first question'], ['Assistant', 'Answer number 1. The end.'],
    ['You', 'second question'], ['Assistant', 'Answer number 2. The end.'],
  ]);
  // The operator's view of the same conversation agrees: four messages, none twice.
  const res = await stack.api(`/v1/conversations/${accepted.conversation}`, acme.api_key);
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).messages.map((m) => [m.role, m.text]), [
    ['visitor', 'first question'], ['assistant', 'Answer number 1. The end.'],
    ['visitor', 'second question'], ['assistant', 'Answer number 2. The end.'],
  ]);
  await page.close();
});

test('after the server restarts while idle, the next Send resumes the same conversation', { timeout: 90_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(acme.pages.page('/idle', hostPage(stack.addr, acme.widget_key)));
  const w = widget(page);
  await w.launcher.click();
  await say(w, 'hello there', 'Answer number 1. The end.');
  await stack.kill();
  await stack.restart();

  // Asking for the transcript reconnects and resumes first.
  assert.deepEqual(await transcript(page, w), [['You', 'hello there'], ['Assistant', 'Answer number 1. The end.']]);
  await say(w, 'still there?', 'Answer number 2. The end.');
  assert.equal(frames.sockets.length, 2);
  assert.deepEqual(frames.sent.map((f) => f.type), ['submit', 'resume', 'transcript', 'submit']);
  assert.equal(frames.received.filter((f) => f.type === 'accepted' && f.token).length, 1, 'one conversation');
  assert.deepEqual(await transcript(page, w), [
    ['You', 'hello there'], ['Assistant', 'Answer number 1. The end.'],
    ['You', 'still there?'], ['Assistant', 'Answer number 2. The end.'],
  ]);
  await page.close();
});

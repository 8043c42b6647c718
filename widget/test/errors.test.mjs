// Plain-words states when things go wrong: upstream trouble with Retry, a too-long message, offline.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, beforeEach, test } from 'node:test';
import { hostPage, launchBrowser, recordFrames, startStack, unwrapVisitorTurns, widget } from './harness.mjs';

let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { reply: 'Back in business.' } });
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });
beforeEach(() => { stack.llm.failNext = 0; });

/** Polls a condition on recorded frames (bounded). */
async function until(condition, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, 'condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function openWidget(name) {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(acme.pages.page(`/${name}`, hostPage(stack.addr, acme.widget_key)));
  const w = widget(page);
  await w.launcher.click();
  return { page, frames, w };
}

test('upstream trouble shows a plain message, and Retry re-sends the same message without duplicating it', { timeout: 90_000 }, async () => {
  const { page, frames, w } = await openWidget('upstream');
  stack.llm.failNext = 1000; // every call fails, including any retries the server makes itself
  await w.input.fill('Is anyone there?');
  await w.input.press('Enter');
  await w.status.filter({ hasText: 'The assistant is not answering right now.' }).waitFor({ timeout: 60_000 });
  const error = frames.received.find((f) => f.type === 'error');
  assert.ok(['upstream_unavailable', 'upstream_timeout'].includes(error.code), JSON.stringify(error));

  stack.llm.failNext = 0;
  const llmCalls = stack.llm.requests.length;
  await w.status.getByRole('button', { name: 'Retry' }).click();
  await w.botMessages.filter({ hasText: 'Back in business.' }).waitFor();
  await w.status.waitFor({ state: 'hidden' });

  const submits = frames.sent.filter((f) => f.type === 'submit');
  assert.equal(submits.length, 2);
  assert.equal(submits[1].id, submits[0].id, 'Retry re-sends the same id');
  assert.equal(await w.userMessages.count(), 1);
  assert.deepEqual(unwrapVisitorTurns(stack.llm.requests.at(-1)), ['Is anyone there?'], 'stored once, sent to the LLM once');
  assert.ok(stack.llm.requests.length > llmCalls);

  const [download] = await Promise.all([page.waitForEvent('download'), w.button('Download transcript').click()]);
  const text = fs.readFileSync(await download.path(), 'utf8');
  assert.equal(text.split('Is anyone there?').length - 1, 1, 'the message is stored once');
  await page.close();
});

test('a reply cut off mid-stream is dropped, and Retry shows the whole reply once', { timeout: 90_000 }, async () => {
  const { page, frames, w } = await openWidget('cut-off');
  stack.llm.reply = 'One two three four five six seven eight nine ten.';
  stack.llm.cutAfter = 3;
  try {
    await w.input.fill('Count to ten, please.');
    await w.input.press('Enter');
    await w.status.filter({ hasText: 'The assistant is not answering right now.' }).waitFor({ timeout: 60_000 });
    assert.ok(frames.received.some((f) => f.type === 'delta'), 'part of the reply had arrived');
    assert.equal(await w.botMessages.count(), 1, 'the partial reply is gone, like on the server');

    await w.status.getByRole('button', { name: 'Retry' }).click();
    await w.botMessages.nth(1).filter({ hasText: 'ten.' }).waitFor();
    assert.deepEqual(await w.botMessages.nth(1).textContent(), 'Assistant: One two three four five six seven eight nine ten.');
    assert.equal(await w.botMessages.count(), 2);
    assert.equal(await w.userMessages.count(), 1);
  } finally {
    stack.llm.reply = 'Back in business.';
  }
  await page.close();
});

test('a message over the limit is refused in plain words and given back for editing', { timeout: 60_000 }, async () => {
  const { page, frames, w } = await openWidget('too-long');
  await w.input.fill('short one');
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: 'Back in business.' }).waitFor();
  const max = frames.received[0].limits.max_message_chars;
  assert.ok(Number.isInteger(max) && max > 0, `hello.limits.max_message_chars = ${max}`);

  const long = 'x'.repeat(max + 1);
  await w.input.fill(long);
  await w.input.press('Enter');
  await w.status.filter({ hasText: `Your message is too long. Please keep it under ${max} characters.` }).waitFor();
  assert.equal(await w.input.inputValue(), long, 'the draft is kept');
  assert.equal(frames.sent.filter((f) => f.type === 'submit').length, 1, 'nothing sent that the server would refuse');
  await page.close();
});

test('the server refusing an over-long first message is shown in plain words', { timeout: 60_000 }, async () => {
  const { page, frames, w } = await openWidget('too-long-first');
  await w.input.fill('y'.repeat(100_000 / 2));
  await w.input.press('Enter');
  await w.status.filter({ hasText: 'Your message is too long.' }).waitFor();
  assert.ok(frames.received.some((f) => f.type === 'error' && f.code === 'too_large'), JSON.stringify(frames.received));
  assert.equal(await w.userMessages.count(), 0, 'the refused message is not shown as sent');
  assert.equal((await w.input.inputValue()).length, 50_000, 'and is back in the input');
  await page.close();
});

test('offline: the message waits, the widget says so, and it is sent when the network is back', { timeout: 60_000 }, async () => {
  const { page, frames, w } = await openWidget('offline');
  await ctx.setOffline(true);
  try {
    await w.input.fill('sent while offline');
    await w.input.press('Enter');
    await w.status.filter({ hasText: 'You are offline.' }).waitFor();
  } finally {
    await ctx.setOffline(false);
  }
  await w.botMessages.filter({ hasText: 'Back in business.' }).waitFor();
  assert.deepEqual(frames.sent.map((f) => f.type), ['submit']);
  assert.equal(await w.status.isHidden(), true);
  await page.close();
});

test('rate limiting says how long to wait, and Retry after that wait gets the reply', { timeout: 90_000 }, async () => {
  const { page, frames, w } = await openWidget('rate-limited');
  stack.llm.chunkDelayMs = 0;
  let n = 0;
  let refused;
  // Send until the server's per-visitor limit (hello.limits.messages_per_minute) refuses one.
  while (!refused) {
    n += 1;
    const limit = frames.received[0]?.limits?.messages_per_minute ?? 100;
    assert.ok(n <= limit + 1, `no rate_limited error after ${n - 1} messages (limit ${limit})`);
    await w.input.fill(`message ${n}`);
    await w.input.press('Enter');
    await until(() => frames.received.some((f) => (f.type === 'done' || f.type === 'error') && f.id === frames.sent.at(-1)?.id));
    refused = frames.received.find((f) => f.type === 'error' && f.code === 'rate_limited');
  }
  assert.equal(n, frames.received[0].limits.messages_per_minute + 1);
  assert.ok(refused.retry_after_ms > 0);
  const seconds = Math.ceil(refused.retry_after_ms / 1000);
  await w.status.filter({ hasText: `You are sending messages too quickly. Please try again in ${seconds} seconds.` }).waitFor();

  await page.waitForTimeout(refused.retry_after_ms + 250); // the server's own wait, not a guess
  await w.status.getByRole('button', { name: 'Retry' }).click();
  await w.botMessages.nth(n).waitFor();
  await w.status.waitFor({ state: 'hidden' });
  const submits = frames.sent.filter((f) => f.type === 'submit' && f.text === `message ${n}`);
  assert.equal(submits.length, 2);
  assert.equal(submits[0].id, submits[1].id);
  assert.equal(await w.userMessages.count(), n);
  stack.llm.chunkDelayMs = 5;
  await page.close();
});

// Last in this file: it leaves the tenant over its daily budget.
test('a spent daily budget is explained in plain words and the message is given back', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const before = await openWidget('quota-before');
  await before.w.input.fill('some tokens get used today');
  await before.w.input.press('Enter');
  await before.w.botMessages.filter({ hasText: 'Back in business.' }).waitFor();
  await before.page.close();
  const patch = await stack.api('/v1/settings', acme.api_key, {
    method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ daily_token_budget: 1 }),
  });
  assert.equal(patch.status, 200, await patch.text());

  const { page, frames, w } = await openWidget('quota');
  await w.input.fill('over budget');
  await w.input.press('Enter');
  await w.status.filter({ hasText: 'This chat has reached its limit for now. Please try again later.' }).waitFor();
  assert.ok(frames.received.some((f) => f.type === 'error' && f.code === 'quota_exceeded'));
  assert.equal(await w.status.getByRole('button', { name: 'Retry' }).isHidden(), true, 'no Retry: it would fail the same way');
  assert.equal(await w.input.inputValue(), 'over budget', 'the message is given back');
  assert.equal(await w.userMessages.count(), 0);
  await page.close();
});

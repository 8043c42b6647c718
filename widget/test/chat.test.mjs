// A visitor chats through the widget on a customer page: streamed reply, safe links, keyboard only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { SCREENSHOTS, hostPage, launchBrowser, recordFrames, startStack, unwrapVisitorTurns, widget } from './harness.mjs';

const REPLY = 'We are open 9:00 to 17:00, Monday to Friday. Details: https://example.com/hours. Anything else?';
let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { reply: REPLY, chunkDelayMs: 10 } });
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

test('a visitor message gets the reply streamed from the LLM, shown as text with safe links', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(acme.pages.page('/chat', hostPage(stack.addr, acme.widget_key, { title: 'Acme help' })));
  const w = widget(page);
  await w.launcher.click();
  await w.input.fill('When are you open? <b>not bold</b>');
  stack.llm.holdAfter = 3; // pause the stream part-way so the page is seen mid-reply
  await w.input.press('Enter');

  await page.waitForFunction(() => {
    const bubbles = document.querySelector('chatvault-widget').shadowRoot.querySelectorAll('.m.b');
    return bubbles.length === 2 && bubbles[1].textContent.includes('We are open 9:00 t');
  });
  const partial = await w.botMessages.nth(1).textContent();
  assert.ok(!partial.includes('Anything else?'), `reply should still be streaming, got: ${partial}`);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'open-widget.png') });

  stack.llm.holdAfter = null;
  stack.llm.release();
  await w.botMessages.nth(1).filter({ hasText: 'Anything else?' }).waitFor();

  // The visitor's text is shown as text, never as markup.
  assert.equal(await w.userMessages.first().locator('b').count(), 0);
  assert.match(await w.userMessages.first().textContent(), /<b>not bold<\/b>/);
  // Links in the reply are clickable, with rel that protects the visitor.
  const a = w.botMessages.nth(1).locator('a');
  assert.equal(await a.getAttribute('href'), 'https://example.com/hours');
  assert.equal(await a.getAttribute('rel'), 'noopener noreferrer nofollow');
  assert.equal(await a.getAttribute('target'), '_blank');

  // Protocol: hello first, one submit carrying exactly the text, several deltas, then done.
  assert.equal(frames.received[0].type, 'hello');
  const submits = frames.sent.filter((f) => f.type === 'submit');
  assert.equal(submits.length, 1);
  assert.match(submits[0].id, /^[A-Za-z0-9_-]{1,64}$/);
  assert.equal(submits[0].text, 'When are you open? <b>not bold</b>');
  assert.deepEqual(frames.sent.map((f) => f.type), ['submit']);
  const deltas = frames.received.filter((f) => f.type === 'delta');
  assert.ok(deltas.length > 1, 'the reply arrives in several deltas');
  assert.equal(deltas.map((d) => d.text).join(''), REPLY);
  assert.ok(frames.received.some((f) => f.type === 'done' && f.id === submits[0].id));

  // The LLM saw the visitor's words exactly once, wrapped as untrusted data.
  const last = stack.llm.requests.at(-1);
  assert.equal(last.stream, true);
  assert.deepEqual(unwrapVisitorTurns(last), ['When are you open? <b>not bold</b>']);
  await page.close();
});

test('the whole conversation works from the keyboard alone', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  await page.goto(acme.pages.page('/keyboard', hostPage(stack.addr, acme.widget_key)));
  await page.locator('chatvault-widget').waitFor({ state: 'attached' });
  const focused = () => page.evaluate(() => {
    const el = document.activeElement?.shadowRoot?.activeElement;
    return el ? el.getAttribute('aria-label') || el.textContent || el.tagName.toLowerCase() : null;
  });

  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Open chat');
  await page.keyboard.press('Enter');
  assert.equal(await focused(), 'textarea', 'focus moves into the panel on open');
  const w = widget(page);
  assert.equal(await w.launcher.getAttribute('aria-expanded'), 'true');

  await page.keyboard.type('First line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  assert.equal(await w.input.inputValue(), 'First line\nsecond line', 'Shift+Enter is a new line');
  await page.keyboard.press('Enter');
  await w.reply('Anything else?');
  assert.equal(await w.input.inputValue(), '');
  assert.match(await w.userMessages.first().textContent(), /First line\nsecond line/);

  // Tab reaches the visitor-rights buttons; Enter on one of them works.
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Send');
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Download transcript');
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  assert.match(fs.readFileSync(await download.path(), 'utf8'), /First line\nsecond line/);

  await page.keyboard.press('Escape');
  assert.equal(await page.locator('chatvault-widget').locator('section').isHidden(), true);
  assert.equal(await focused(), 'Open chat', 'Escape closes the panel and focus returns to the launcher');
  await page.keyboard.press('Enter');
  assert.equal(await focused(), 'textarea');
  await page.close();
});

test('a follow-up sent while a reply is still streaming gets its own reply, in order', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  await page.goto(acme.pages.page('/follow-up', hostPage(stack.addr, acme.widget_key)));
  const w = widget(page);
  await w.launcher.click();
  stack.llm.replyFor = (body) => `Reply to ${unwrapVisitorTurns(body).at(-1)}, complete.`;
  stack.llm.holdAfter = 2;
  try {
    await w.input.fill('one');
    await w.input.press('Enter');
    await w.botMessages.nth(1).filter({ hasText: 'Reply to o' }).waitFor();
    await w.input.fill('two');
    await w.input.press('Enter');
    await w.userMessages.nth(1).waitFor();
    stack.llm.holdAfter = null;
    stack.llm.release();
    await w.botMessages.nth(2).filter({ hasText: 'Reply to two, complete.' }).waitFor();
  } finally {
    stack.llm.holdAfter = null;
    stack.llm.replyFor = null;
  }
  const order = (await w.log.locator('.m').allTextContents()).slice(1);
  assert.deepEqual(order, ['You: one', 'Assistant: Reply to one, complete.', 'You: two', 'Assistant: Reply to two, complete.']);
  assert.deepEqual(frames.sent.map((f) => f.text), ['one', 'two']);
  await page.close();
});

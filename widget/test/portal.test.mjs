// The customer portal at /portal, in a real browser against the real server in demo mode: sign in,
// replace the one-time password, find a widget conversation by a word from it, read, export, delete,
// purge, and see every action in the audit log; settings errors, API keys, roles and accessibility.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { SCREENSHOTS, exchange, launchBrowser, startDemo, widget } from './harness.mjs';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const REPLY = 'Yes: our two-person tents ship within 2 days, and returns are free for 30 days.';
const NEW_PASSWORD = 'quiet river lantern 42';
const WORD = `zephyrtent${crypto.randomBytes(3).toString('hex')}`;
/** Screenshots show the page, not a passing status message (hidden by class: the CSP refuses injected styles). */
async function screenshot(page, name) {
  await page.locator('#status').evaluate((n) => n.classList.remove('show'));
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name), animations: 'disabled' });
}

let stack;
let ctx;
let widgetKey;
let owner;

before(async () => {
  stack = await startDemo({ llm: { reply: REPLY, chunkDelayMs: 2 } });
  ctx = await launchBrowser(stack, { viewport: { width: 1280, height: 800 } });
  owner = await stack.cli(['user', 'add', 'demo', 'owner@example.com', '--role', 'owner']);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

/** Opens a page and records console errors, page errors and CSP violations. */
async function openPage(context, url) {
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    // API errors the test provokes (401 before sign-in, 400, 404) are not page problems.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) page.problems.push(m.text());
  });
  page.on('pageerror', (e) => page.problems.push(String(e)));
  await page.goto(url);
  return page;
}

/** Starts a conversation over the widget socket from the demo page (its origin is allowed). */
async function conversationViaSocket(page, text) {
  const frames = await exchange(page, stack.addr, widgetKey, [{ type: 'submit', id: `m${crypto.randomBytes(4).toString('hex')}`, text }], ['done', 'error']);
  const done = frames.find((f) => f.type === 'done');
  assert.ok(done, `the socket conversation completed: ${JSON.stringify(frames)}`);
  return frames.find((f) => f.type === 'accepted').conversation;
}

/** YYYY-MM-DD of today (+ offset days) in local time, as a date input takes it. */
function localDate(offset) {
  const d = new Date(Date.now() + offset * 86_400_000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

async function signIn(page, { email, password }) {
  const form = page.locator('#signin-form');
  await form.getByLabel('Tenant ID').fill('demo');
  await form.getByLabel('E-mail').fill(email);
  await form.getByLabel('Password').fill(password);
  await form.getByRole('button', { name: 'Sign in' }).click();
}

async function download(page, name) {
  const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name }).click()]);
  return fs.readFileSync(await file.path(), 'utf8');
}

async function axe(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE); // evaluate: the CSP allows no inline script
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

const auditActions = (page) => page.locator('#audit-rows tr').evaluateAll((rows) => rows.map((r) => ({
  action: r.dataset.action, target: r.children[3].textContent, details: r.children[4].textContent,
})));

test('/portal is served with a strict CSP, no-store and no inline code', { timeout: 30_000 }, async () => {
  const res = await fetch(`${stack.origin}/portal`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const csp = res.headers.get('content-security-policy');
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) {
    assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
  }
  const html = await res.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)/, 'no inline <script>');
  assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline styles or event handlers');
  assert.doesNotMatch(html, /(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i, 'no external resources');
  for (const [asset, type] of [['portal.js', /^text\/javascript/], ['portal.css', /^text\/css/]]) {
    const r = await fetch(`${stack.origin}/portal/${asset}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), type);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.doesNotMatch(await r.text(), /https?:\/\/(?!www\.example\.com)/, `${asset} loads nothing from elsewhere`);
  }
});

test('an owner finds a widget conversation by a word, reads, exports and deletes it, purges, and sees it all audited', { timeout: 120_000 }, async () => {
  // A visitor chats through the widget on the demo page.
  const demo = await openPage(ctx, `${stack.origin}/`);
  widgetKey = await demo.locator('script[data-key]').getAttribute('data-key');
  const w = widget(demo);
  await w.launcher.click();
  const visitorText = `Do you sell <b>tents</b>? Looking for a ${WORD} for two.`;
  await w.input.fill(visitorText);
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: 'returns are free' }).waitFor();
  // Three more conversations, so the search has something to leave out.
  for (const text of ['Where is your shop?', 'Do you repair stoves?', 'Opening hours on Saturday?']) await conversationViaSocket(demo, text);

  // Sign in with the one-time password, then choose a new one.
  const page = await openPage(ctx, `${stack.origin}/portal`);
  await signIn(page, owner);
  await page.getByRole('heading', { name: 'Choose your own password' }).waitFor();
  await page.getByLabel('Current (one-time) password').fill(owner.password);
  await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Password changed' }).waitFor();

  // The list shows all four conversations, most recent first.
  const rows = page.locator('#conv-rows tr');
  await assert.doesNotReject(rows.nth(3).waitFor());
  assert.equal(await rows.count(), 4);
  await page.getByText('4 conversations, most recent first.').waitFor();
  await screenshot(page, 'portal-list.png');

  // Full-text search finds exactly the widget conversation.
  await page.getByLabel('Words in messages').fill(WORD);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('1 conversation matches your search.').waitFor();
  assert.equal(await rows.count(), 1);
  const id = await rows.first().getAttribute('data-id');

  // The date filter: nothing from tomorrow on; today, it is found again.
  await page.getByLabel('From', { exact: true }).fill(localDate(1));
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('No conversation matches.', { exact: false }).waitFor();
  await page.getByLabel('From', { exact: true }).fill(localDate(0));
  await page.getByLabel('To', { exact: true }).fill(localDate(0));
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('1 conversation matches your search.').waitFor();
  assert.equal(await rows.first().getAttribute('data-id'), id);

  // The transcript: both roles, the visitor's markup shown as text.
  await rows.first().getByRole('link').click();
  await page.waitForURL(/#conversations\//);
  const transcript = page.getByRole('list', { name: 'Messages' });
  await transcript.getByText(WORD).waitFor();
  const visitor = transcript.locator('.msg.visitor');
  assert.equal(await visitor.locator('.msg-role').textContent(), 'Visitor');
  assert.equal(await visitor.locator('.msg-text').textContent(), visitorText);
  assert.equal(await transcript.locator('b').count(), 0, 'conversation text is never HTML');
  assert.equal(await transcript.locator('.msg.assistant .msg-text').textContent(), REPLY);
  assert.equal(await page.locator('#transcript-id').textContent(), id);
  await screenshot(page, 'portal-transcript.png');

  // Export (from the list): NDJSON and CSV carry the conversation.
  await page.getByRole('link', { name: 'All conversations' }).click();
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  const ndjson = (await download(page, 'Export NDJSON')).trim().split('\n').map((l) => JSON.parse(l));
  const exported = ndjson.find((c) => c.id === id);
  assert.ok(exported, 'the conversation is in the NDJSON export');
  assert.deepEqual(exported.messages.map((m) => [m.role, m.text]), [['visitor', visitorText], ['assistant', REPLY]]);
  const csv = await download(page, 'Export CSV');
  assert.match(csv, /^conversation_id,message_id,role,at,text\n/);
  assert.ok(csv.includes(`${id},`) && csv.includes(WORD), 'the conversation is in the CSV export');

  // Delete it, through a confirmation dialog; Cancel first leaves it alone.
  await rows.first().getByRole('link').click();
  await transcript.getByText(WORD).waitFor();
  await page.getByRole('button', { name: 'Delete conversation' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete this conversation?' });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.getByRole('button', { name: 'Delete conversation' }).click();
  await dialog.getByRole('button', { name: 'Delete conversation' }).click();
  await page.getByRole('status').filter({ hasText: 'Conversation deleted.' }).waitFor();
  await page.waitForURL(/#conversations$/);
  await page.getByText('No conversation matches.', { exact: false }).waitFor();
  const gone = await page.evaluate((cid) => fetch(`/v1/conversations/${cid}`).then((r) => r.status), id);
  assert.equal(gone, 404);

  // One more conversation, then purge everything with a typed confirmation.
  await conversationViaSocket(demo, 'One more question about sleeping bags.');
  await page.getByRole('link', { name: 'Purge all', exact: true }).click();
  const purge = page.getByRole('button', { name: 'Purge all conversations' });
  assert.equal(await purge.isDisabled(), true);
  await page.getByLabel(/type the tenant ID/).fill('dem');
  assert.equal(await purge.isDisabled(), true, 'a wrong confirmation keeps the button disabled');
  await page.getByLabel(/type the tenant ID/).fill('demo');
  await purge.click();
  const result = page.locator('#purge-result');
  await result.getByText('Purge complete').waitFor();
  assert.match(await result.textContent(), /Erased 4 conversations and 8 messages at/);
  await page.getByRole('link', { name: 'Conversations', exact: true }).click();
  await page.getByText('No conversations yet.', { exact: false }).waitFor();

  // The audit log shows each action, newest first, without conversation content.
  await page.getByRole('link', { name: 'Audit log', exact: true }).click();
  await page.locator('#audit-rows tr').first().waitFor();
  const entries = await auditActions(page);
  const actions = entries.map((e) => e.action);
  for (const action of ['user.added', 'login', 'password.changed', 'history.exported', 'conversation.deleted', 'history.purged']) {
    assert.ok(actions.includes(action), `audit shows ${action}: ${actions.join(', ')}`);
  }
  assert.equal(entries.find((e) => e.action === 'conversation.deleted').target, id);
  assert.match(entries.find((e) => e.action === 'history.purged').details, /conversations: 4/);
  assert.equal(entries.filter((e) => e.action === 'history.exported').length, 2);
  assert.equal(actions[0], 'history.purged', 'newest first');
  assert.ok(!(await page.locator('#audit-rows').textContent()).includes(WORD), 'no conversation content in the audit log');
  await page.getByLabel('Filter by action, actor or target').fill('history.');
  assert.equal(await page.locator('#audit-rows tr').count(), 3);
  const auditCsv = await download(page, 'Export CSV');
  assert.match(auditCsv, /^seq,at,actor,action,target,details\n/);
  assert.match(auditCsv, /conversation\.deleted/);

  assert.deepEqual(page.problems, [], 'no console errors or CSP violations');
  await demo.close();
  await page.close();
});

test('settings save, and a refused value is explained next to the form', { timeout: 60_000 }, async () => {
  const page = await openPage(ctx, `${stack.origin}/portal#settings`);
  await page.getByRole('heading', { name: 'Settings', level: 2 }).waitFor();
  const origins = page.getByLabel('Allowed origins');
  await assert.doesNotReject(page.waitForFunction(() => document.getElementById('set-origins').value !== ''));
  assert.ok((await origins.inputValue()).split('\n').includes(stack.origin), 'the demo origin is listed');

  await page.getByLabel('Retention (days)').fill('99999');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByRole('alert').filter({ hasText: '“Retention (days)” must be at most 3650.' }).waitFor();
  assert.equal(await page.getByLabel('Retention (days)').getAttribute('aria-invalid'), 'true');

  await page.getByLabel('Retention (days)').fill('60');
  await page.getByLabel('System prompt').fill('You help visitors of Acme Outdoor Supply. Be brief.');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByRole('status').filter({ hasText: 'Settings saved' }).waitFor();
  const saved = await page.evaluate(() => fetch('/v1/settings').then((r) => r.json()));
  assert.equal(saved.retention_days, 60);
  assert.equal(saved.system_prompt, 'You help visitors of Acme Outdoor Supply. Be brief.');

  // A bad origin is refused with the server's message.
  await origins.fill(`${stack.origin}\nnot a url`);
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.locator('#settings-error').filter({ hasText: /origin/i }).waitFor();
  assert.equal(await origins.getAttribute('aria-invalid'), 'true');
  assert.deepEqual((await page.evaluate(() => fetch('/v1/settings').then((r) => r.json()))).allowed_origins.includes(stack.origin), true);

  // The embed snippet names this server and copies.
  await page.getByRole('link', { name: 'Embed snippet', exact: true }).click();
  // The snippet is filled in once the settings arrive; wait for it rather than race it.
  await page.locator('#embed-code').filter({ hasText: /widget\.js/ }).waitFor();
  const snippet = await page.locator('#embed-code').textContent();
  assert.match(snippet, new RegExp(`^<script src="${stack.origin}/widget\\.js" data-key="[^"]+" async></script>$`));
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.origin });
  await page.getByRole('button', { name: 'Copy snippet' }).click();
  await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), snippet);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('an API key is shown once, works, and stops working when revoked', { timeout: 60_000 }, async () => {
  const page = await openPage(ctx, `${stack.origin}/portal#keys`);
  await page.getByRole('heading', { name: 'API keys', level: 2 }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('nightly export');
  await page.getByRole('button', { name: 'Create key' }).click();
  const shown = page.locator('#new-key-value');
  await shown.filter({ hasText: /^cvk_/ }).waitFor();
  const key = await shown.textContent();
  const call = () => fetch(`${stack.origin}/v1/conversations`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
  assert.equal((await call()).status, 200);
  await page.getByRole('button', { name: 'I have stored it' }).click();
  assert.equal(await page.locator('#new-key').isHidden(), true);
  assert.ok(!(await page.content()).includes(key), 'the secret is gone from the page');

  const row = page.locator('#key-rows tr', { hasText: 'nightly export' });
  await row.getByRole('button', { name: 'Revoke key nightly export' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke key' }).click();
  await row.getByText('Revoked').waitFor();
  assert.equal((await call()).status, 401);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test('a member sees history but none of the admin tools', { timeout: 60_000 }, async () => {
  const member = await stack.cli(['user', 'add', 'demo', 'reader@example.com', '--role', 'member']);
  const other = await launchBrowser(stack, { viewport: { width: 1280, height: 800 } });
  const demo = await openPage(other, `${stack.origin}/`);
  const cid = await conversationViaSocket(demo, 'Can a member read this?');
  const page = await openPage(other, `${stack.origin}/portal`);
  await signIn(page, member);
  await page.getByLabel('Current (one-time) password').fill(member.password);
  await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.locator(`#conv-rows tr[data-id="${cid}"]`).waitFor();
  const nav = page.getByRole('navigation', { name: 'Portal sections' });
  for (const hidden of ['API keys', 'Users', 'Audit log', 'Purge all']) assert.equal(await nav.getByRole('link', { name: hidden }).count(), 0, `${hidden} is hidden`);
  await page.locator(`#conv-rows tr[data-id="${cid}"] a`).click();
  await page.getByText('Can a member read this?').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Delete conversation' }).count(), 0);
  await page.getByRole('link', { name: 'Settings', exact: true }).click();
  await page.getByText('an admin or owner can change them').waitFor();
  assert.equal(await page.getByLabel('System prompt').isDisabled(), true);
  // Typing a hidden section's address does not open it either.
  await page.goto(`${stack.origin}/portal#purge`);
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  assert.deepEqual(page.problems, []);
  await other.close();
});

test('signing out ends the session; a wrong password gets a generic error', { timeout: 60_000 }, async () => {
  const page = await openPage(ctx, `${stack.origin}/portal`);
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You have signed out.').waitFor();
  assert.deepEqual(await axe(page), [], 'sign-in page');
  assert.equal(await page.evaluate(() => fetch('/v1/session').then((r) => r.status)), 401);
  assert.equal(await page.locator('#conv-rows tr').count(), 0, 'nothing of the session is left in the page');
  await signIn(page, { email: owner.email, password: 'not the password' });
  await page.getByRole('alert').filter({ hasText: 'Wrong tenant, e-mail or password.' }).waitFor();
  await page.locator('#signin-form').getByLabel('Password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  await page.close();
});

test('"Load more" pages through a long list without repeats', { timeout: 90_000 }, async () => {
  const demo = await openPage(ctx, `${stack.origin}/`);
  for (let i = 1; i <= 27; i++) await conversationViaSocket(demo, `Question number ${i} about camping stoves`);
  const page = await openPage(ctx, `${stack.origin}/portal`);
  const rows = page.locator('#conv-rows tr');
  await rows.nth(24).waitFor();
  assert.equal(await rows.count(), 25, 'one page of 25');
  await page.getByText('25+ conversations, most recent first.').waitFor();
  await page.getByRole('button', { name: 'Load more' }).click();
  await rows.nth(27).waitFor();
  assert.equal(await rows.count(), 28, '27 new ones and the member test\'s one');
  await page.getByRole('button', { name: 'Load more' }).waitFor({ state: 'hidden' });
  const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  assert.equal(new Set(ids).size, 28, 'no conversation listed twice');
  // Keyboard users land on the first newly loaded row.
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.id), ids[25]);
  assert.deepEqual(page.problems, []);
  await demo.close();
  await page.close();
});

test('axe-core finds no violations; the page works on a narrow screen and from the keyboard', { timeout: 90_000 }, async () => {
  const page = await openPage(ctx, `${stack.origin}/portal`);
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  for (const section of ['conversations', 'usage', 'settings', 'keys', 'users', 'audit', 'embed', 'purge']) {
    await page.goto(`${stack.origin}/portal#${section}`);
    await page.locator(`#section-${section}`).waitFor();
    await page.waitForLoadState('networkidle');
    assert.deepEqual(await axe(page), [], `section ${section}`);
  }
  await page.goto(`${stack.origin}/portal#conversations`);
  await page.locator('#conv-rows tr a').first().click();
  await page.locator('#transcript-messages .msg').first().waitFor();
  assert.deepEqual(await axe(page), [], 'transcript');
  await page.getByRole('button', { name: 'Delete conversation' }).click();
  await page.getByRole('dialog').waitFor();
  assert.deepEqual(await axe(page), [], 'confirmation dialog');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'delete-conversation', 'focus returns to the button');
  // Narrow: nothing overflows sideways, the navigation still reaches every section.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(`${stack.origin}/portal#conversations`);
  await page.locator('#section-conversations').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal page scroll on a narrow screen (${overflow}px)`);
  await page.getByRole('link', { name: 'Usage', exact: true }).click();
  await page.getByRole('heading', { name: 'Usage', level: 2 }).waitFor();
  await screenshot(page, 'portal-narrow.png');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Keyboard: the skip link leads to the content; Enter on a nav link switches section and moves focus.
  await page.goto('about:blank');
  await page.goto(`${stack.origin}/portal`);
  await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await page.getByRole('link', { name: 'Audit log', exact: true }).focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.id === 'h-audit');
  assert.deepEqual(page.problems, []);
  await page.close();
});

/** Whole-page screenshot of a section (the new sections are taller than the window). */
async function fullScreenshot(page, name) {
  await page.locator('#status').evaluate((n) => n.classList.remove('show'));
  await page.evaluate(() => window.scrollTo(0, 0)); // else the sticky top bar is drawn mid-page
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name), animations: 'disabled', fullPage: true });
}

/** Empty when nothing scrolls sideways; else the page width and the chain of elements whose hiding fixes it. */
function sidewaysOverflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= width) return [];
    const culprits = [];
    const probe = (root) => {
      for (const n of root.children) {
        if (n.hidden) continue;
        n.hidden = true;
        const fixed = document.documentElement.scrollWidth <= width;
        n.hidden = false;
        if (fixed) { culprits.push(`${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ''}${[...n.classList].map((c) => `.${c}`).join('')}`); probe(n); }
      }
    };
    probe(document.body);
    return [`page ${document.documentElement.scrollWidth}px wide in a ${width}px window`, ...culprits];
  });
}

/** A local webhook receiver on 127.0.0.1 that records every POST and answers 204. */
async function startReceiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks/chatvault`,
    received,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// The tests below reuse the owner's session from the tests above: no further sign-ins (the file
// stays within the login rate limit for 127.0.0.1).

test('webhooks: the signing secret is shown once, a widget message is delivered signed and logged, the endpoint is removed', { timeout: 90_000 }, async () => {
  const receiver = await startReceiver();
  try {
    const page = await openPage(ctx, `${stack.origin}/portal`);
    await page.getByRole('heading', { name: 'Conversations', level: 2 }).waitFor();
    await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.getByRole('heading', { name: 'Webhooks', level: 2 }).waitFor();
    await page.getByText('No endpoint is set: nothing is sent.').waitFor();
    assert.match(await page.locator('#section-webhooks').textContent(), /X-Chatvault-Signature.*t=<unix seconds>,v1=<hex>.*X-Chatvault-Delivery/s);

    // Plain http:// to another host is refused with the server's message, next to the field.
    const url = page.getByLabel('Endpoint URL');
    await url.fill('http://hooks.example.com/chatvault');
    await page.getByRole('button', { name: 'Save endpoint' }).click();
    await page.getByRole('alert').filter({ hasText: 'The webhook URL must be https:// (or http:// to localhost).' }).waitFor();
    assert.equal(await url.getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#new-webhook').isHidden(), true);

    // A local receiver is accepted; the secret is shown once.
    await url.fill(receiver.url);
    await page.getByLabel('Include the message text').check();
    await page.getByRole('button', { name: 'Save endpoint' }).click();
    const shown = page.locator('#new-webhook-secret');
    await shown.filter({ hasText: /^whsec_/ }).waitFor();
    const secret = await shown.textContent();
    await page.getByRole('status').filter({ hasText: 'Endpoint saved.' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Copy', 'focus moves to the copy button');
    assert.equal(await url.getAttribute('aria-invalid'), null);
    assert.equal(await page.locator('#webhook-current-url').textContent(), receiver.url);
    await page.getByText('Message text is included in each delivery.').waitFor();
    assert.deepEqual(await axe(page), [], 'webhooks section with the secret shown');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    assert.equal(await page.locator('#new-webhook').isHidden(), true);
    assert.ok(!(await page.content()).includes(secret), 'the secret is gone from the page');
    const stored = await page.evaluate(() => fetch('/v1/webhook').then((r) => r.json()));
    assert.deepEqual(stored, { url: receiver.url, include_content: true });

    // A visitor message through the widget socket is delivered to the receiver, signed.
    const demo = await openPage(ctx, `${stack.origin}/`);
    const text = `Is the ${WORD} waterproof?`;
    const conversation = await conversationViaSocket(demo, text);
    await demo.close();
    const refresh = page.getByRole('button', { name: 'Refresh' });
    const delivered = page.locator('#delivery-rows tr[data-status="delivered"]');
    for (let i = 0; i < 40 && (await delivered.count()) < 2; i++) {
      await refresh.click();
      await page.waitForTimeout(250);
    }
    assert.equal(await delivered.count(), 2, 'the visitor message and the reply are delivered');
    assert.equal(await page.locator('#delivery-rows tr').count(), 2);
    const row = delivered.first();
    assert.equal(await row.locator('td').nth(1).textContent(), 'conversation.message');
    assert.equal(await row.locator('td').nth(2).textContent(), 'Delivered');
    assert.equal(await row.locator('td').nth(4).textContent(), 'HTTP 204');
    await page.getByText('2 deliveries, newest first: 2 delivered, 0 retrying, 0 failed.').waitFor();

    assert.equal(receiver.received.length, 2, 'each event was posted once');
    const logged = await delivered.evaluateAll((rows) => rows.map((r) => r.dataset.id));
    for (const got of receiver.received) {
      assert.equal(got.method, 'POST');
      assert.equal(got.headers['x-chatvault-event'], 'conversation.message');
      assert.ok(logged.includes(got.headers['x-chatvault-delivery']), 'the delivery ID is the one in the log');
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(got.headers['x-chatvault-signature']) || [];
      assert.ok(t, `signature header: ${got.headers['x-chatvault-signature']}`);
      assert.ok(Math.abs(Date.now() / 1000 - Number(t)) < 120, 'a fresh timestamp');
      assert.equal(v1, crypto.createHmac('sha256', secret).update(`${t}.${got.body}`).digest('hex'), 'HMAC-SHA256(secret, "<t>." + body)');
      const payload = JSON.parse(got.body);
      assert.equal(payload.id, got.headers['x-chatvault-delivery']);
      assert.equal(payload.data.conversation, conversation);
    }
    const visitorEvent = receiver.received.map((r) => JSON.parse(r.body)).find((p) => p.data.message.role === 'visitor');
    assert.equal(visitorEvent?.data.message.text, text, 'the text is included when opted in');
    assert.deepEqual(await axe(page), [], 'webhooks section with deliveries');
    await fullScreenshot(page, 'portal-webhooks.png');
    await page.setViewportSize({ width: 390, height: 800 });
    assert.deepEqual(await sidewaysOverflow(page), [], 'no sideways scroll on a narrow screen');
    await page.setViewportSize({ width: 1280, height: 800 });

    // Remove the endpoint, through a confirmation; Cancel first keeps it.
    await page.getByRole('button', { name: 'Remove endpoint' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove the webhook endpoint?' });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'webhook-remove', 'focus returns to the button');
    assert.equal(await page.evaluate(() => fetch('/v1/webhook').then((r) => r.status)), 200);
    await page.getByRole('button', { name: 'Remove endpoint' }).click();
    await dialog.getByRole('button', { name: 'Remove endpoint' }).click();
    await page.getByRole('status').filter({ hasText: 'Webhook endpoint removed.' }).waitFor();
    await page.getByText('No endpoint is set: nothing is sent.').waitFor();
    assert.equal(await page.evaluate(() => fetch('/v1/webhook').then((r) => r.status)), 404);
    assert.equal(await url.inputValue(), '');

    // Both changes are audited.
    const actions = (await page.evaluate(() => fetch('/v1/audit?format=json').then((r) => r.json()))).entries.map((e) => e.action);
    assert.ok(actions.includes('webhook.set') && actions.includes('webhook.removed'), actions.join(', '));
    assert.deepEqual(page.problems, []);
    await page.close();
  } finally {
    await receiver.close();
  }
});

test('knowledge base: upload from the text box and from a file, preview, delete and purge', { timeout: 90_000 }, async () => {
  const page = await openPage(ctx, `${stack.origin}/portal#knowledge`);
  await page.getByRole('heading', { name: 'Knowledge base', level: 2 }).waitFor();
  // The demo tenant comes with a few documents.
  const seeded = (await page.evaluate(() => fetch('/v1/documents').then((r) => r.json()))).items;
  const seededPassages = seeded.reduce((n, d) => n + d.passages, 0);
  assert.ok(seeded.length > 0, 'the demo has documents');
  const rows = page.locator('#doc-rows tr');
  await rows.nth(seeded.length - 1).waitFor();
  assert.equal(await rows.count(), seeded.length);
  const form = page.locator('#doc-form');
  const save = form.getByRole('button', { name: 'Save document' });

  // From the text box. Long enough for several passages; the markup in it stays text.
  const paragraphs = Array.from({ length: 40 }, (_, i) => `Section ${i + 1}. Tents bought from Acme Outdoor Supply may be returned within 30 days for a full refund, provided they are clean and dry. <b>Rule ${i + 1}</b> covers ${WORD} orders too.`);
  const returns = paragraphs.join('\n\n');
  await form.getByLabel('Title').fill('Tent returns policy');
  await form.getByLabel('Source URL').fill('https://www.example.com/returns');
  await form.getByLabel('Format').selectOption('text');
  await form.getByLabel('Text', { exact: true }).fill(returns);
  await save.click();
  await page.getByRole('status').filter({ hasText: /Document “Tent returns policy” saved as \d+ passages\./ }).waitFor();
  const listed = await page.evaluate(() => fetch('/v1/documents').then((r) => r.json()));
  assert.equal(listed.items.length, seeded.length + 1);
  const first = listed.items.find((d) => d.title === 'Tent returns policy');
  assert.ok(first.passages > 1, `several passages: ${first.passages}`);
  const returnsRow = rows.filter({ hasText: 'Tent returns policy' });
  await returnsRow.waitFor();
  assert.equal(await returnsRow.locator('td').nth(2).textContent(), String(first.passages));
  assert.equal(await returnsRow.getByRole('link').getAttribute('href'), 'https://www.example.com/returns');
  assert.equal(await form.getByLabel('Title').inputValue(), '', 'the form is cleared after saving');

  // From a local file: FileReader fills the text box, format and title; nothing is sent before Save.
  const md = `# Camping guide\n\nPitch the **tent** on level ground, away from water.\n\n- Bring a ${WORD} stove\n- Pack out what you pack in\n`;
  const posted = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/v1/documents')) posted.push(r.url()); });
  await form.getByLabel('Read from a file').setInputFiles({ name: 'camping-guide.md', mimeType: 'text/markdown', buffer: Buffer.from(md) });
  await page.waitForFunction((want) => document.getElementById('doc-text').value === want, md);
  assert.equal(await form.getByLabel('Format').inputValue(), 'markdown');
  assert.equal(await form.getByLabel('Title').inputValue(), 'camping-guide');
  await page.getByRole('status').filter({ hasText: 'Nothing is sent until you save.' }).waitFor();
  assert.equal(posted.length, 0, 'reading the file sent nothing');
  await save.click();
  await page.getByRole('status').filter({ hasText: 'Document “camping-guide” saved as 1 passage.' }).waitFor();
  await rows.nth(seeded.length + 1).waitFor();
  assert.equal(await rows.count(), seeded.length + 2);
  assert.equal(await rows.first().locator('td').nth(1).textContent(), 'Markdown', 'newest first');
  await page.getByText(`${seeded.length + 2} documents, ${seededPassages + first.passages + 1} passages in all.`).waitFor();

  // Refusals are explained next to the form: a missing title (400) and an oversized text (413).
  await form.getByLabel('Text', { exact: true }).fill('Some text without a title.');
  await save.click();
  await page.getByRole('alert').filter({ hasText: 'Title is 1-200 characters.' }).waitFor();
  assert.equal(await form.getByLabel('Title').getAttribute('aria-invalid'), 'true');
  await form.getByLabel('Title').fill('Too long');
  await form.getByLabel('Text', { exact: true }).fill('x'.repeat(1024 * 1024 + 10));
  await save.click();
  await page.getByRole('alert').filter({ hasText: 'A document may hold at most 1024 KiB of text; split it into smaller documents.' }).waitFor();
  assert.equal(await form.getByLabel('Text', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.equal(await form.getByLabel('Title').getAttribute('aria-invalid'), null);
  await form.getByRole('button', { name: 'Clear' }).click();
  assert.equal(await form.getByLabel('Text', { exact: true }).inputValue(), '');
  assert.equal(await page.locator('#doc-error').textContent(), '');

  // The preview shows the reduced text as text, scrollable and reachable by keyboard.
  await page.getByRole('button', { name: 'Preview Tent returns policy' }).click();
  const preview = page.getByRole('region', { name: 'Text of the document, as the assistant sees it' });
  await preview.getByText('Section 40.', { exact: false }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'doc-preview-title');
  assert.equal(await page.locator('#doc-preview-title').textContent(), 'Preview: Tent returns policy');
  assert.equal(await page.locator('#doc-preview-text b').count(), 0, 'document text is never HTML');
  assert.ok((await preview.textContent()).includes('<b>Rule 1</b>'), 'markup in a plain-text document is shown as typed');
  assert.ok(await preview.evaluate((n) => n.scrollHeight > n.clientHeight), 'long text scrolls inside the preview');
  assert.equal(await preview.getAttribute('tabindex'), '0');
  assert.deepEqual(await axe(page), [], 'knowledge base with a preview');
  await fullScreenshot(page, 'portal-knowledge.png');
  await page.setViewportSize({ width: 390, height: 800 });
  assert.deepEqual(await sidewaysOverflow(page), [], 'no sideways scroll on a narrow screen');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('button', { name: 'Close preview' }).click();
  assert.equal(await page.locator('#doc-preview').isHidden(), true);
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Preview Tent returns policy', 'focus returns to the row');

  // Delete one, through a confirmation.
  const guide = (await page.evaluate(() => fetch('/v1/documents').then((r) => r.json()))).items.find((d) => d.title === 'camping-guide');
  await page.getByRole('button', { name: 'Delete camping-guide' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete “camping-guide”?' });
  await dialog.getByRole('button', { name: 'Delete document' }).click();
  await page.getByRole('status').filter({ hasText: 'Document “camping-guide” deleted.' }).waitFor();
  await rows.filter({ hasText: 'camping-guide' }).waitFor({ state: 'detached' });
  assert.equal(await rows.count(), seeded.length + 1);
  assert.equal(await page.evaluate((id) => fetch(`/v1/documents/${id}`).then((r) => r.status), guide.id), 404);

  // Purge the whole knowledge base with a typed confirmation.
  const purge = page.getByRole('button', { name: 'Purge knowledge base' });
  assert.equal(await purge.isDisabled(), true);
  await page.getByLabel('Type demo to confirm').fill('dem');
  assert.equal(await purge.isDisabled(), true, 'a wrong confirmation keeps the button disabled');
  await page.getByLabel('Type demo to confirm').fill('demo');
  await purge.click();
  const result = page.locator('#doc-purge-result');
  await result.getByText('Knowledge base purged').waitFor();
  assert.match(await result.textContent(), new RegExp(`Erased ${seeded.length + 1} documents and ${seededPassages + first.passages} passages at`));
  await page.getByText('No documents yet.', { exact: false }).waitFor();
  assert.deepEqual((await page.evaluate(() => fetch('/v1/documents').then((r) => r.json()))).items, []);
  assert.deepEqual(await axe(page), [], 'knowledge base, empty');
  assert.deepEqual(page.problems, []);
  await page.close();
});

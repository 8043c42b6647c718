// The customer portal at /portal, in a real browser against the real server in demo mode: sign in,
// replace the one-time password, find a widget conversation by a word from it, read, export, delete,
// purge, and see every action in the audit log; settings errors, API keys, roles and accessibility.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
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

// A host page with a strict Content-Security-Policy: the widget works and causes no violation.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { hostPage, launchBrowser, startStack, widget } from './harness.mjs';

let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { reply: 'Strict pages are welcome. See https://example.com/csp for more.' } });
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

test('on a page with a strict CSP and Trusted Types the widget is styled, chats and violates nothing', { timeout: 60_000 }, async () => {
  const acme = stack.tenant.acme;
  const csp = [
    "default-src 'none'",
    `script-src http://${stack.addr}`,
    `connect-src ws://${stack.addr}`,
    "style-src 'none'",
    "img-src 'none'",
    "font-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join('; ');
  const url = acme.pages.page('/strict', hostPage(stack.addr, acme.widget_key, { accent: '#0f766e' }),
    { 'content-security-policy': csp });

  const page = await ctx.newPage();
  const problems = [];
  page.on('console', (m) => { if (/Content.Security.Policy|Refused|TrustedHTML|Trusted Type/i.test(m.text())) problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
  // Init scripts run outside the page's CSP, so the listener is in place before the widget loads.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await page.goto(url);
  const w = widget(page);
  await w.launcher.click();

  // The adopted stylesheet applied despite style-src 'none'.
  const look = await w.launcher.evaluate((el) => {
    const s = getComputedStyle(el);
    return { position: s.position, background: s.backgroundColor };
  });
  assert.deepEqual(look, { position: 'fixed', background: 'rgb(15, 118, 110)' });

  await w.input.fill('Does this work on a locked-down page?');
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: 'for more.' }).waitFor();
  assert.equal(await w.botMessages.nth(1).locator('a').getAttribute('href'), 'https://example.com/csp');
  const [download] = await Promise.all([page.waitForEvent('download'), w.button('Download transcript').click()]);
  assert.match(fs.readFileSync(await download.path(), 'utf8'), /Does this work on a locked-down page\?/);

  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  assert.deepEqual(problems, []);
  await page.close();
});

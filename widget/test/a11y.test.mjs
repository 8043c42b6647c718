// Accessibility: axe-core finds nothing in any state of the widget; focus, motion and RTL behave.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { hostPage, launchBrowser, startStack, widget } from './harness.mjs';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
let stack;
let ctx;

before(async () => {
  stack = await startStack({ llm: { reply: 'Sure. Our guide is at https://example.com/guide and it is short.' } });
  ctx = await launchBrowser(stack);
}, { timeout: 60_000 });
after(() => stack?.stop(), { timeout: 30_000 });

/** Runs axe on the widget (through its open shadow root) and returns the violations, summarised. */
async function axe(page) {
  // Let the panel's opening fade finish: mid-fade colours are not what a visitor reads.
  await page.evaluate(() => Promise.all(document.querySelector('chatvault-widget').shadowRoot
    .getAnimations().map((a) => a.finished)));
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(() => window.axe.run({ include: [['chatvault-widget']] }, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  }));
  return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' > ')).join(', ')})`);
}

async function open(attrs = {}, options = {}) {
  const acme = stack.tenant.acme;
  const page = await ctx.newPage();
  await page.goto(acme.pages.page(`/a11y-${Math.random().toString(36).slice(2)}`, hostPage(stack.addr, acme.widget_key, attrs, options)));
  await page.locator('chatvault-widget').waitFor({ state: 'attached' });
  return page;
}

test('axe-core reports no violations, closed, open mid-conversation, confirming and with a light accent', { timeout: 90_000 }, async () => {
  for (const attrs of [{}, { accent: '#ffd400', 'privacy-url': 'https://example.com/privacy' }]) {
    const page = await open(attrs);
    const w = widget(page);
    assert.deepEqual(await axe(page), [], 'launcher only');
    await w.launcher.click();
    assert.deepEqual(await axe(page), [], 'open, greeting only');
    await w.input.fill('Where is the guide?');
    await w.input.press('Enter');
    await w.botMessages.filter({ hasText: 'it is short.' }).waitFor();
    assert.deepEqual(await axe(page), [], 'open, mid-conversation');
    await w.button('Delete this conversation').click();
    assert.deepEqual(await axe(page), [], 'confirming deletion');
    await page.close();
  }
});

test('focus moves into the panel, Escape returns it to the launcher, and focus is visible', { timeout: 60_000 }, async () => {
  const page = await open();
  const w = widget(page);
  await page.keyboard.press('Tab');
  const ring = await w.launcher.evaluate((el) => {
    const s = getComputedStyle(el);
    return { style: s.outlineStyle, width: s.outlineWidth };
  });
  assert.deepEqual(ring, { style: 'solid', width: '3px' });
  await page.keyboard.press('Enter');
  assert.equal(await w.input.evaluate((el) => el.getRootNode().activeElement === el), true);
  assert.equal(await w.host.getByRole('dialog', { name: 'Chat with us' }).isVisible(), true);
  await page.keyboard.press('Escape');
  assert.equal(await w.launcher.evaluate((el) => el.getRootNode().activeElement === el), true);
  assert.equal(await w.launcher.getAttribute('aria-expanded'), 'false');

  // With the delete confirmation open, Escape first cancels it and focus goes back to its button.
  await page.keyboard.press('Enter');
  await w.input.fill('hello');
  await w.input.press('Enter');
  await w.botMessages.filter({ hasText: 'it is short.' }).waitFor();
  await w.button('Delete this conversation').focus();
  await page.keyboard.press('Enter');
  assert.equal(await w.button('Cancel').evaluate((el) => el.getRootNode().activeElement === el), true);
  await page.keyboard.press('Escape');
  assert.equal(await w.host.getByRole('group').isHidden(), true);
  assert.equal(await w.button('Delete this conversation').evaluate((el) => el.getRootNode().activeElement === el), true);
  assert.equal(await w.host.getByRole('dialog').isVisible(), true, 'the panel stays open');
  await page.keyboard.press('Escape');
  assert.equal(await w.host.getByRole('dialog').isHidden(), true);
  await page.close();
});

test('replies are announced once, complete, by a polite live region', { timeout: 60_000 }, async () => {
  const page = await open();
  const w = widget(page);
  await w.launcher.click();
  assert.equal(await w.log.getAttribute('aria-live'), 'off', 'the streaming log itself stays quiet');
  await w.input.fill('Where is the guide?');
  await w.input.press('Enter');
  await w.reply('it is short.');
  const live = w.host.locator('[aria-live="polite"]');
  assert.equal(await live.count(), 1);
  assert.equal(await live.textContent(), 'Sure. Our guide is at https://example.com/guide and it is short.');
  await page.close();
});

test('prefers-reduced-motion turns animation off', { timeout: 60_000 }, async () => {
  const animation = async (reducedMotion) => {
    const page = await open();
    await page.emulateMedia({ reducedMotion });
    await widget(page).launcher.click();
    const name = await page.locator('chatvault-widget').locator('section').evaluate((el) => getComputedStyle(el).animationName);
    await page.close();
    return name;
  };
  assert.equal(await animation('no-preference'), 'cv-in');
  assert.equal(await animation('reduce'), 'none');
});

test('an RTL language lays the widget out right to left, with its own strings', { timeout: 60_000 }, async () => {
  const i18n = JSON.stringify({ open: 'افتح الدردشة', close: 'أغلق الدردشة', label: 'رسالتك', send: 'إرسال', log: 'المحادثة' });
  const page = await open({ lang: 'ar', title: 'تحدث معنا', greeting: 'مرحبا!', i18n }, { lang: 'en' });
  const host = page.locator('chatvault-widget');
  const launcher = host.getByRole('button', { name: 'افتح الدردشة' });
  await launcher.click();
  const wrap = host.locator('.w');
  assert.equal(await wrap.getAttribute('dir'), 'rtl');
  assert.equal(await wrap.getAttribute('lang'), 'ar');
  await host.getByRole('textbox', { name: 'رسالتك' }).fill('سؤال');
  await host.getByRole('button', { name: 'إرسال' }).click();
  await host.locator('.m.b').nth(1).filter({ hasText: 'it is short.' }).waitFor();

  const box = await host.locator('section').boundingBox();
  assert.ok(box.x < 100, `panel sits on the left in RTL, x=${box.x}`);
  const user = await host.locator('.m.u').boundingBox();
  const bot = await host.locator('.m.b').first().boundingBox();
  assert.ok(user.x < bot.x, 'the visitor\'s messages sit at the inline end (left) in RTL');
  assert.deepEqual(await axe(page), []);
  await page.close();
});

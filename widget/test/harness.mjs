// Test harness: the real chatvault binary, a fake LLM, static host pages and Debian's chromium,
// all on 127.0.0.1 with ports chosen by the OS. Everything started here is stopped by stop().
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFakeLlm } from './fake-llm.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TARGET = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/chatvault/target');
export const BIN = path.resolve(HERE, '..', process.env.CHATVAULT_BIN || path.join(TARGET, 'debug/chatvault'));
export const SCREENSHOTS = path.join(HERE, 'screenshots');
const WIDGET_FILE = path.join(HERE, '..', 'chatvault.js');
// Development aid: serve widget/chatvault.js from disk instead of the copy built into the binary.
const WIDGET_FROM_DISK = process.env.CHATVAULT_WIDGET_FROM_DISK === '1';
const STARTUP_MS = 30_000;

/** Spawns the binary (or a .mjs stand-in through node) with the test's environment. */
function run(args, env) {
  const [cmd, argv] = BIN.endsWith('.mjs') ? [process.execPath, [BIN, ...args]] : [BIN, args];
  return spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a one-shot CLI command and returns its stdout, failing with its stderr. */
function cli(args, env) {
  return new Promise((resolve, reject) => {
    const child = run(args, env);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), STARTUP_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`chatvault ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

/** A static server for host pages: register routes with page(path, html, headers). */
async function startPageServer() {
  const routes = new Map();
  const server = http.createServer((req, res) => {
    const route = routes.get(new URL(req.url, 'http://x').pathname);
    if (!route) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...route.headers });
    res.end(route.html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    page(pathname, html, headers = {}) { routes.set(pathname, { html, headers }); return origin + pathname; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Host page HTML that embeds the widget exactly as a customer would. */
export function hostPage(addr, widgetKey, attrs = {}, { lang = 'en', body = '' } = {}) {
  const extra = Object.entries(attrs)
    .map(([k, v]) => ` data-${k}="${String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"`).join('');
  return `<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><title>Host page</title></head>
<body><main><h1>Acme Widgets</h1><p>The host site's own content.</p>${body}</main>
<script src="http://${addr}/widget.js" data-key="${widgetKey}"${extra} async></script></body></html>`;
}

/**
 * Starts a fake LLM, one page server per tenant (each its own origin), the tenants and the server.
 * Returns handles; call stop() in after().
 */
export async function startStack({ tenants = ['acme'], llm: llmOptions } = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`chatvault binary not found at ${BIN}: build it (cargo build) or set CHATVAULT_BIN`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatvault-widget-data-'));
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: process.env.RUST_LOG || 'warn',
    CHATVAULT_MASTER_KEY: crypto.randomBytes(32).toString('hex'),
    OPENAI_API_KEY: 'sk-fake-test-key',
  };
  const stack = { dataDir, env, tenant: {}, servers: [], children: new Set(), contexts: [] };
  stack.llm = await startFakeLlm(llmOptions);
  for (const id of tenants) {
    const pages = await startPageServer();
    stack.servers.push(pages);
    const out = await cli(['tenant', 'create', id, '--origin', pages.origin, '--json', '--data-dir', dataDir], env);
    stack.tenant[id] = { ...JSON.parse(out), pages, origin: pages.origin };
  }
  await startServer(stack, '127.0.0.1:0');
  if (!WIDGET_FROM_DISK) await checkServedWidget(stack);
  stack.stop = () => stopStack(stack);
  stack.kill = () => killServer(stack);
  stack.restart = () => startServer(stack, stack.addr);
  stack.api = (pathname, apiKey, init = {}) => fetch(`http://${stack.addr}${pathname}`, {
    ...init, headers: { authorization: `Bearer ${apiKey}`, ...init.headers }, signal: AbortSignal.timeout(10_000),
  });
  return stack;
}

/** Spawns `chatvault serve` and resolves once it prints `listening on http://ADDR`. */
function startServer(stack, bind) {
  const args = ['serve', '--bind', bind, '--data-dir', stack.dataDir, '--llm-base-url', stack.llm.url, '--llm-model', 'fake'];
  const child = run(args, stack.env);
  stack.children.add(child);
  stack.proc = child;
  stack.log = '';
  child.stderr.on('data', (d) => { stack.log += d; });
  child.on('exit', () => stack.children.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no "listening on" line within ${STARTUP_MS} ms; stderr:\n${stack.log}`));
    }, STARTUP_MS);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited ${code}:\n${stack.log}`)); });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /listening on http:\/\/(\S+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      stack.addr = m[1];
      resolve(stack.addr);
    });
  });
}

/** The binary embeds the widget at build time: refuse to test a stale copy. */
async function checkServedWidget(stack) {
  const res = await fetch(`http://${stack.addr}/widget.js`, { signal: AbortSignal.timeout(10_000) });
  const served = await res.text();
  if (res.status !== 200 || served !== fs.readFileSync(WIDGET_FILE, 'utf8')) {
    await stopStack(stack);
    throw new Error(`GET /widget.js (${res.status}) differs from widget/chatvault.js: rebuild the binary ` +
      '(cargo build), or set CHATVAULT_WIDGET_FROM_DISK=1 to test the file on disk');
  }
}

/** Kills the server abruptly (SIGKILL), as a crash or a dropped network would. */
function killServer(stack) {
  const child = stack.proc;
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.on('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function stopStack(stack) {
  for (const ctx of stack.contexts) await ctx.close().catch(() => {});
  for (const child of stack.children) child.kill('SIGKILL');
  await stack.llm.close();
  for (const s of stack.servers) await s.close();
  for (const dir of [stack.dataDir, ...stack.contexts.map((c) => c.userDataDir)]) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Debian's chromium with a fresh profile; never downloads a browser. */
export async function launchBrowser(stack, options = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatvault-widget-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
      '--disable-quic', '--disable-component-update', '--disable-sync'],
    acceptDownloads: true,
    viewport: { width: 1024, height: 760 },
    timeout: STARTUP_MS,
    ...options,
  });
  context.userDataDir = userDataDir;
  if (WIDGET_FROM_DISK) {
    await context.route((url) => url.host === stack.addr && url.pathname === '/widget.js', (route) => route.fulfill({
      status: 200, contentType: 'text/javascript; charset=utf-8', body: fs.readFileSync(WIDGET_FILE, 'utf8'),
    }));
  }
  context.setDefaultTimeout(15_000);
  stack.contexts.push(context);
  return context;
}

/** Records every WebSocket frame the page exchanges with the chatvault server. */
export function recordFrames(page) {
  const frames = { sent: [], received: [], sockets: [] };
  page.on('websocket', (ws) => {
    frames.sockets.push(ws);
    ws.on('framesent', (f) => frames.sent.push(JSON.parse(f.payload)));
    ws.on('framereceived', (f) => frames.received.push(JSON.parse(f.payload)));
  });
  return frames;
}

/** The widget's shadow root helpers: locators pierce open shadow roots. */
export function widget(page) {
  const host = page.locator('chatvault-widget');
  return {
    host,
    launcher: host.getByRole('button', { name: /chat/i }).last(),
    input: host.getByRole('textbox'),
    log: host.getByRole('log'),
    userMessages: host.locator('.m.u'),
    botMessages: host.locator('.m.b'),
    status: host.locator('.st'),
    button: (name) => host.getByRole('button', { name }),
    /** Waits until the newest message is a finished reply (log no longer aria-busy) containing `text`. */
    reply: (text) => page.waitForFunction((want) => {
      const root = document.querySelector('chatvault-widget').shadowRoot;
      const last = [...root.querySelectorAll('.m')].at(-1);
      return root.querySelector('[role=log]').getAttribute('aria-busy') === 'false' &&
        last.matches('.b:not(.d)') && last.textContent.includes(want);
    }, text),
  };
}

/** Wraps the visitor text exactly as CONTRACT §4 says the server sends it to the LLM. */
export function unwrapVisitorTurns(request) {
  return (request.messages || []).filter((m) => m.role === 'user').map((m) => {
    const match = /^<untrusted_document id="[0-9a-f]+">\n([\s\S]*)\n<\/untrusted_document>$/.exec(m.content);
    return match ? match[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') : m.content;
  });
}

/**
 * Opens a raw WebSocket from the page (so the browser sets the page's own Origin), sends `frames`
 * after hello and resolves with every frame received until one whose type is in `untilTypes`.
 */
export function exchange(page, addr, key, frames, untilTypes) {
  return page.evaluate(([url, frames, untilTypes]) => new Promise((resolve, reject) => {
    const got = [];
    const ws = new WebSocket(url);
    const timer = setTimeout(() => { ws.close(); reject(new Error('no answer: ' + JSON.stringify(got))); }, 10000);
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      got.push(f);
      if (f.type === 'hello') for (const x of frames) ws.send(JSON.stringify(x));
      else if (untilTypes.includes(f.type)) { clearTimeout(timer); ws.close(); resolve(got); }
    };
    ws.onclose = (e) => { clearTimeout(timer); resolve([...got, { closed: e.code }]); };
  }), [`ws://${addr}/v1/widget/ws?key=${encodeURIComponent(key)}`, frames, untilTypes]);
}

/**
 * Runs `chatvault demo` (tenant `demo`, plain-http cookies, demo page at `/`) on a free port against
 * a fake LLM. The returned stack works with launchBrowser(); `stack.cli(args)` runs a CLI command
 * on the same data directory while the server runs. Call stop() in after().
 */
export async function startDemo({ llm: llmOptions } = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`chatvault binary not found at ${BIN}: build it (cargo build) or set CHATVAULT_BIN`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatvault-demo-data-'));
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    RUST_LOG: process.env.RUST_LOG || 'warn',
    CHATVAULT_MASTER_KEY: crypto.randomBytes(32).toString('hex'),
    OPENAI_API_KEY: 'sk-fake-test-key',
  };
  const stack = { dataDir, env, tenant: {}, servers: [], children: new Set(), contexts: [], log: '' };
  stack.llm = await startFakeLlm(llmOptions);
  stack.stop = () => stopStack(stack);
  const child = run(['demo', '--bind', '127.0.0.1:0', '--data-dir', dataDir, '--llm-base-url', stack.llm.url, '--llm-model', 'fake'], env);
  stack.children.add(child);
  stack.proc = child;
  child.stderr.on('data', (d) => { stack.log += d; });
  child.on('exit', () => stack.children.delete(child));
  try {
    stack.addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo printed no "listening on" line within ${STARTUP_MS} ms:\n${stack.log}`)), STARTUP_MS);
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`demo exited ${code}:\n${stack.log}`)); });
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /listening on http:\/\/(\S+)/.exec(line);
        if (m) { clearTimeout(timer); resolve(m[1]); }
      });
    });
  } catch (error) {
    await stopStack(stack);
    throw error;
  }
  stack.origin = `http://${stack.addr}`;
  stack.cli = async (args) => JSON.parse(await cli([...args, '--json', '--data-dir', dataDir], env));
  if (!WIDGET_FROM_DISK) await checkServedWidget(stack);
  return stack;
}

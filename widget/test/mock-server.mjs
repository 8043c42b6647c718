#!/usr/bin/env node
// Development-only stand-in for the chatvault binary (CONTRACT §2 `tenant create`/`serve`, §3 WebSocket),
// used to iterate on the widget before the Rust gateway existed. Run the tests against it with
// CHATVAULT_BIN=test/mock-server.mjs; the committed tests are meant for the real binary.
// State is a plain JSON file in the data dir: never use this for anything real.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const all = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
const dataDir = opt('--data-dir') || './tenants';
const stateFile = path.join(dataDir, 'mock-state.json');
const load = () => (fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, 'utf8')) : { tenants: {}, conversations: {} });
const store = (s) => fs.writeFileSync(stateFile, JSON.stringify(s), { mode: 0o600 });
const rand = (n) => crypto.randomBytes(n).toString('hex');
const hash = (s) => crypto.createHash('sha256').update(s).digest('hex');

if (args[0] === 'tenant' && args[1] === 'create') {
  const s = load();
  const id = args[2];
  const t = { id, origins: all('--origin'), widget_key: 'wk_' + rand(16), api_key: 'ak_' + rand(24) };
  s.tenants[id] = t;
  fs.mkdirSync(dataDir, { recursive: true });
  store(s);
  console.log(JSON.stringify({ tenant: id, widget_key: t.widget_key, api_key: t.api_key }));
} else if (args[0] === 'serve') {
  serve();
} else {
  console.error('error: mock supports only `tenant create` and `serve`');
  process.exit(2);
}

function serve() {
  const [host, port] = (opt('--bind') || '127.0.0.1:8080').split(':');
  const llmBase = opt('--llm-base-url');
  const widget = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'chatvault.js');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/widget.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      return res.end(fs.readFileSync(widget));
    }
    if (url.pathname === '/v1/conversations') {
      const s = load();
      const t = Object.values(s.tenants).find((x) => req.headers.authorization === 'Bearer ' + x.api_key);
      if (!t) { res.writeHead(401); return res.end('{"error":{"code":"unauthorized","message":"no"}}'); }
      const items = Object.entries(s.conversations).filter(([, c]) => c.tenant === t.id)
        .map(([id, c]) => ({ id, started_at: c.messages[0]?.at, last_at: c.messages.at(-1)?.at, message_count: c.messages.length }));
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ items, next_cursor: null }));
    }
    res.writeHead(404);
    res.end();
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 65536 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://x');
    const t = Object.values(load().tenants).find((x) => x.widget_key === url.searchParams.get('key'));
    const refuse = (code) => { socket.end(`HTTP/1.1 ${code} No\r\ncontent-length: 0\r\n\r\n`); };
    if (url.pathname !== '/v1/widget/ws') return refuse(404);
    if (!t) return refuse(401);
    if (!t.origins.includes(req.headers.origin)) return refuse(403);
    wss.handleUpgrade(req, socket, head, (ws) => session(ws, t));
  });
  function session(ws, tenant) {
    let conv = null;
    const stamps = [];
    const out = (f) => ws.readyState === 1 && ws.send(JSON.stringify(f));
    const err = (code, id) => out({ type: 'error', code, message: code, ...(id ? { id } : {}) });
    out({ type: 'hello', protocol: 1, limits: { max_message_chars: 2000, messages_per_minute: 20 } });
    ws.on('message', async (data, isBinary) => {
      let f;
      try { f = JSON.parse(String(data)); } catch { return err('invalid_frame'); }
      if (isBinary) return err('invalid_frame');
      const s = load();
      if (f.type === 'submit') {
        const text = String(f.text || '').trim();
        if (!text) return err('empty_message', f.id);
        if (text.length > 2000) return err('too_large', f.id);
        const now = Date.now();
        while (stamps.length && now - stamps[0] > 10000) stamps.shift();
        if (stamps.length >= 20) {
          return out({ type: 'error', code: 'rate_limited', message: 'slow down', id: f.id, retry_after_ms: 10000 - (now - stamps[0]) });
        }
        stamps.push(now);
        let token;
        if (!conv) {
          conv = 'c_' + rand(8);
          token = rand(16);
          s.conversations[conv] = { tenant: tenant.id, tokenHash: hash(token), messages: [], ids: {} };
        }
        const c = s.conversations[conv];
        if (!c) return err('no_conversation', f.id);
        if (!c.ids[f.id]) {
          c.ids[f.id] = { reply: null };
          c.messages.push({ role: 'visitor', text, at: new Date().toISOString() });
        }
        store(s);
        out({ type: 'accepted', id: f.id, conversation: conv, ...(token ? { token } : {}) });
        if (c.ids[f.id].reply) {
          out({ type: 'delta', id: f.id, text: c.ids[f.id].reply });
          return out({ type: 'done', id: f.id, message: 'm_' + rand(4) });
        }
        const history = c.messages.map((m) => ({ role: m.role === 'visitor' ? 'user' : m.role, content: m.text }));
        let reply = '';
        try {
          const r = await fetch(llmBase + '/chat/completions', {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'fake', stream: true, messages: history }),
          });
          if (!r.ok) throw new Error('upstream ' + r.status);
          const dec = new TextDecoder();
          let buf = '';
          for await (const part of r.body) {
            buf += dec.decode(part, { stream: true });
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const line = buf.slice(0, i).replace(/^data: /, '');
              buf = buf.slice(i + 2);
              if (line === '[DONE]') continue;
              const d = JSON.parse(line).choices[0].delta.content;
              if (d) { reply += d; out({ type: 'delta', id: f.id, text: d }); }
            }
          }
        } catch { return err('upstream_unavailable', f.id); }
        const s2 = load();
        const c2 = s2.conversations[conv];
        if (!c2) return;
        c2.ids[f.id].reply = reply;
        c2.messages.push({ role: 'assistant', text: reply, at: new Date().toISOString() });
        store(s2);
        out({ type: 'done', id: f.id, message: 'm_' + rand(4) });
      } else if (f.type === 'resume') {
        const c = s.conversations[f.conversation];
        if (!c || c.tenant !== tenant.id || c.tokenHash !== hash(String(f.token))) return err('invalid_token');
        conv = f.conversation;
        out({ type: 'resumed', conversation: conv, messages: c.messages });
      } else if (f.type === 'transcript' || f.type === 'erase') {
        const c = conv && s.conversations[conv];
        if (!c) return err('no_conversation');
        if (f.type === 'transcript') return out({ type: 'transcript', conversation: conv, messages: c.messages });
        delete s.conversations[conv];
        store(s);
        out({ type: 'erased', conversation: conv });
        conv = null;
      } else {
        err('unsupported_frame');
      }
    });
  }
  server.listen(Number(port), host, () => {
    console.log(`listening on http://${host}:${server.address().port}`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

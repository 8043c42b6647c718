/*! chatvault widget: privacy-first embeddable chat. Plain JS, no dependencies, no globals.
 * Nothing leaves the page until the visitor presses Send. See widget/README.md. */
(() => {
  'use strict';
  const TAG = 'chatvault-widget';
  const script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-key]');
  if (!script || customElements.get(TAG)) return;

  // ---------------------------------------------------------------- configuration
  const ds = script.dataset;
  const server = new URL(script.src, location.href).origin;
  const WS_URL = server.replace(/^http/, 'ws') + '/v1/widget/ws?key=' + encodeURIComponent(ds.key || '');
  const EN = {
    title: 'Chat with us',
    greeting: 'Hi! How can we help you today?',
    open: 'Open chat',
    close: 'Close chat',
    label: 'Your message',
    placeholder: 'Type your message…',
    send: 'Send',
    log: 'Conversation',
    you: 'You',
    bot: 'Assistant',
    typing: 'The assistant is typing…',
    sending: 'Sending…',
    privacy: 'Nothing is sent until you press Send. This site stores the messages you send to answer you; you can download or delete them here.',
    privacyLink: 'Privacy policy',
    download: 'Download transcript',
    erase: 'Delete this conversation',
    confirm: 'Delete this whole conversation? This cannot be undone.',
    yes: 'Delete',
    no: 'Cancel',
    erased: 'The conversation was deleted.',
    sources: 'Sources',
    retry: 'Retry',
    offline: 'You are offline. Your message will be sent when the connection is back.',
    disconnected: 'The connection was lost. Reconnecting…',
    unreachable: 'The chat cannot be reached right now. Trying again…',
    busy: 'The assistant is busy right now. Please try again in a moment.',
    rate_limited: 'You are sending messages too quickly. Please try again in {s} seconds.',
    quota_exceeded: 'This chat has reached its limit for now. Please try again later.',
    upstream: 'The assistant is not answering right now. Please try again.',
    content_blocked: 'Sorry, this message cannot be answered here.',
    too_large: 'Your message is too long. Please keep it under {n} characters.',
    empty_message: 'Please type a message first.',
    gone: 'This conversation is no longer available. Your next message starts a new one.',
    failed: 'Something went wrong. Please try again.',
    file: 'chat-transcript',
  };
  let custom = {};
  try { custom = JSON.parse(ds.i18n || '{}'); } catch { /* ignore malformed JSON */ }
  const S = { ...EN };
  for (const k in custom) if (typeof custom[k] === 'string') S[k] = custom[k];
  for (const [attr, k] of [['title', 'title'], ['greeting', 'greeting'],
    ['privacyText', 'privacy'], ['privacyLinkText', 'privacyLink']]) {
    if (ds[attr] != null) S[k] = ds[attr];
  }
  const t = (k, vars = {}) => S[k].replace(/\{(\w+)\}/g, (_, v) => vars[v] ?? '');

  const lang = ds.lang || document.documentElement.lang || 'en';
  const RTL = /^(ar|arc|ckb|dv|fa|he|iw|ks|ku-arab|pa-arab|ps|sd|ug|ur|yi)(-|$)/i;
  const dir = ds.dir === 'rtl' || ds.dir === 'ltr' ? ds.dir : RTL.test(lang) ? 'rtl' : 'ltr';
  const side = ds.position === 'left' || ds.position === 'right' ? ds.position
    : dir === 'rtl' ? 'left' : 'right';
  const accent = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(ds.accent || '') ? ds.accent : '#1d4ed8';
  const privacyUrl = safeUrl(ds.privacyUrl);
  const persist = ds.persist === 'session';
  const STORE = 'chatvault:' + (ds.key || '');

  // Text on the accent colour: whichever of near-black or white contrasts more.
  function luminance(hex) {
    const n = hex.length === 4 ? hex.replace(/\w/g, '$&$&') : hex;
    return [1, 3, 5].map((i) => parseInt(n.slice(i, i + 2), 16) / 255)
      .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
      .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  }
  const L = luminance(accent);
  const onAccent = 1.05 / (L + 0.05) >= (L + 0.05) / 0.0556 ? '#fff' : '#111';
  // The focus ring sits on white: use the accent only where it keeps 3:1 there.
  const ring = 1.05 / (L + 0.05) >= 3 ? accent : '#111';

  // ---------------------------------------------------------------- styles
  const CSS = `:host{all:initial}
*{box-sizing:border-box}
.w{--a:${accent};--f:${onAccent};--ring:${ring};font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;border:0;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
button,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
[hidden]{display:none!important}
:focus-visible{outline:3px solid var(--ring);outline-offset:2px}
.l{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;background:var(--a);color:var(--f);box-shadow:0 4px 14px #0004;display:grid;place-items:center}
.l:focus-visible{box-shadow:0 0 0 2px #fff}
.l[aria-expanded=true] svg:first-child,.l[aria-expanded=false] svg+svg{display:none}
.x svg,.l svg{width:28px;height:28px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
.p{position:fixed;bottom:88px;right:20px;z-index:2147483000;width:min(380px,calc(100vw - 32px));height:min(600px,calc(100vh - 108px));background:#fff;border-radius:14px;box-shadow:0 10px 40px #0004;display:flex;flex-direction:column;overflow:hidden;animation:cv-in .18s ease-out}
.left .l,.left .p{right:auto;left:20px}
@media (max-width:480px),(max-height:560px){.w .p{inset:0;width:auto;height:auto;border-radius:0}.l[aria-expanded=true]{display:none}}
@keyframes cv-in{from{opacity:0;transform:translateY(8px)}}
@keyframes cv-dot{50%{opacity:.25}}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}
header{display:flex;align-items:center;gap:8px;padding-block:10px;padding-inline:16px 8px;background:var(--a);color:var(--f)}
h2{margin:0;flex:1;font-size:17px;font-weight:600}
.x{background:none;border:0;width:40px;height:40px;border-radius:8px;display:grid;place-items:center;color:inherit}
.x svg{width:22px;height:22px}
.x:focus-visible,.s:focus-visible{outline-color:var(--ring);box-shadow:0 0 0 2px #fff}
.n{margin:0;padding:8px 16px;font-size:13px;color:#444;background:#f6f7f9;border-bottom:1px solid #e2e4e8}
a{color:#0b57d0}
.log{flex:1;overflow-y:auto;padding:16px;display:flex;flex-direction:column;gap:10px}
.m{max-width:85%;padding:9px 13px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere}
.u{align-self:flex-end;background:var(--a);color:var(--f);border-end-end-radius:4px}
.u a{color:inherit}
.b{align-self:flex-start;background:#eff1f4;border-end-start-radius:4px}
.q{opacity:.8}
.src{margin:6px 0 0;padding:6px 0 0;border-top:1px solid #d5d8dd;font-size:13px}
.src ul{margin:2px 0 0;padding-inline-start:18px}
.d span{animation:cv-dot 1.2s infinite}.d span+span{animation-delay:.2s}.d span+span+span{animation-delay:.4s}
.st{display:flex;flex-wrap:wrap;align-items:center;gap:6px 10px;padding:8px 16px;font-size:14px;background:#fff4e0;color:#4d3100;border-top:1px solid #f0d9a8}
.st button,.c button{border:1px solid currentColor;background:#fff;border-radius:8px;padding:3px 12px;min-height:32px}
.c{padding:12px 16px;background:#fdecec;color:#6b0f0f;border-top:1px solid #f3c2c2}
.c p{margin:0 0 8px}
.c div{display:flex;gap:8px}
.c .y{background:#b3261e;border-color:#b3261e;color:#fff}
form{display:flex;align-items:flex-end;gap:8px;padding:10px 12px 8px;border-top:1px solid #e2e4e8}
textarea{flex:1;resize:none;min-height:42px;max-height:132px;padding:9px 11px;border:1px solid #767b84;border-radius:10px;background:#fff}
.s{height:42px;padding:0 16px;border:0;border-radius:10px;background:var(--a);color:var(--f);font-weight:600}
.r{display:flex;flex-wrap:wrap;gap:2px 12px;padding:0 10px 8px}
.r button{background:none;border:0;padding:4px 6px;min-height:28px;font-size:13px;color:#3d3d3d;text-decoration:underline;border-radius:4px}`;

  // ---------------------------------------------------------------- DOM helpers
  function h(tag, props = {}, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k.includes('-') || k === 'role') el.setAttribute(k, v);
      else el[k] = v;
    }
    el.append(...kids);
    return el;
  }

  function safeUrl(raw) {
    if (!raw) return null;
    try {
      const u = new URL(raw, location.href);
      return /^https?:$/.test(u.protocol) ? u.href : null;
    } catch { return null; }
  }

  /** Text with http(s) links made clickable; never parses markup. */
  function linkify(text) {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(/https?:\/\/[^\s<>"']+/g)) {
      const url = m[0].replace(/[.,;:!?)\]}]+$/, '');
      out.push(text.slice(last, m.index), link(url, url));
      last = m.index + url.length;
    }
    out.push(text.slice(last));
    return out;
  }
  const link = (href, text) => h('a', { href, textContent: text, target: '_blank', rel: 'noopener noreferrer nofollow' });

  const newId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[b & 63]).join('');

  // ---------------------------------------------------------------- the element
  customElements.define(TAG, class extends HTMLElement {});
  const host = document.createElement(TAG);
  const root = host.attachShadow({ mode: 'open' });
  if (root.adoptedStyleSheets && 'replaceSync' in CSSStyleSheet.prototype) {
    // Constructable stylesheets work under a strict CSP (no 'unsafe-inline' needed).
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(h('style', { textContent: CSS }));
  }

  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.6A8 8 0 1 1 21 12z');
  svg.append(path);
  const svgClose = svg.cloneNode();
  const cross = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  cross.setAttribute('d', 'M6 6l12 12M18 6 6 18');
  svgClose.append(cross);

  const launcher = h('button', { type: 'button', className: 'l', 'aria-label': t('open'), 'aria-expanded': 'false', 'aria-controls': 'cv-panel' }, svg, svgClose);
  const closeBtn = h('button', { type: 'button', className: 'x', 'aria-label': t('close') }, svgClose.cloneNode(true));
  const log = h('div', { className: 'log', role: 'log', 'aria-live': 'off', 'aria-label': t('log'), tabIndex: 0 });
  // Replies are announced once, complete, here (the log itself stays quiet while streaming).
  const announcer = h('div', { className: 'sr', role: 'status', 'aria-live': 'polite' });
  const statusText = h('span');
  const retryBtn = h('button', { type: 'button', textContent: t('retry'), hidden: true });
  const status = h('div', { className: 'st', hidden: true }, statusText, retryBtn);
  const input = h('textarea', { id: 'cv-input', rows: 1, placeholder: t('placeholder'), autocomplete: 'off' });
  const sendBtn = h('button', { type: 'submit', className: 's', textContent: t('send') });
  const form = h('form', {}, h('label', { className: 'sr', htmlFor: 'cv-input', textContent: t('label') }), input, sendBtn);
  const downloadBtn = h('button', { type: 'button', textContent: t('download'), hidden: true });
  const eraseBtn = h('button', { type: 'button', textContent: t('erase'), hidden: true });
  const noBtn = h('button', { type: 'button', textContent: t('no') });
  const yesBtn = h('button', { type: 'button', className: 'y', textContent: t('yes') });
  const confirmBox = h('div', { className: 'c', role: 'group', 'aria-labelledby': 'cv-confirm', hidden: true },
    h('p', { id: 'cv-confirm', textContent: t('confirm') }), h('div', {}, yesBtn, noBtn));
  const notice = h('p', { className: 'n' }, t('privacy'));
  if (privacyUrl) notice.append(' ', link(privacyUrl, t('privacyLink')));
  const panel = h('section', { id: 'cv-panel', className: 'p', role: 'dialog', 'aria-labelledby': 'cv-title', hidden: true },
    h('header', {}, h('h2', { id: 'cv-title', textContent: t('title') }), closeBtn),
    notice, log, announcer, status, confirmBox, form,
    h('div', { className: 'r' }, downloadBtn, eraseBtn));
  root.append(h('div', { className: 'w' + (side === 'left' ? ' left' : ''), lang, dir }, panel, launcher));

  // ---------------------------------------------------------------- view
  function bubble(role, text = '') {
    const el = h('div', { className: 'm ' + (role === 'user' ? 'u' : 'b') });
    setText(el, role, text);
    log.append(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }
  function setText(el, role, text) {
    el.replaceChildren(h('span', { className: 'sr', textContent: t(role === 'user' ? 'you' : 'bot') + ': ' }), ...linkify(text));
  }
  function typing() {
    const el = bubble('assistant');
    el.classList.add('d');
    el.replaceChildren(h('span', { className: 'sr', textContent: t('typing') }),
      ...[0, 1, 2].map(() => h('span', { 'aria-hidden': 'true', textContent: '•' })));
    return el;
  }
  function renderLog(messages) {
    log.replaceChildren();
    if (S.greeting) bubble('assistant', S.greeting);
    return messages.map((m) => bubble(m.role === 'assistant' ? 'assistant' : 'user', String(m.text)));
  }
  function showStatus(text, retry) {
    statusText.textContent = text;
    if (text) announcer.textContent = text;
    status.hidden = !text;
    retryBtn.hidden = !retry;
    retryBtn.onclick = retry || null;
  }
  function showRights() {
    downloadBtn.hidden = eraseBtn.hidden = !conversation;
  }
  function autosize() {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight + 2, 132) + 'px';
  }

  function openPanel() {
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    launcher.setAttribute('aria-label', t('close'));
    log.scrollTop = log.scrollHeight;
    input.focus();
  }
  function closePanel() {
    panel.hidden = true;
    confirmBox.hidden = true;
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-label', t('open'));
    launcher.focus();
  }

  // ---------------------------------------------------------------- protocol state (memory only)
  let ws = null;
  let ready = false; // hello received and, when there is a conversation, resumed
  let limits = {};
  let conversation = null;
  let token = null;
  let attempt = 0;
  let reached = false; // a hello arrived at least once in this page
  let timer = 0;
  let outbox = []; // control frames waiting for a ready socket
  /** Submits sent but not finished: {id, text, el, accepted, reply, replyText, waiting} */
  let inflight = [];

  function save() {
    if (!persist) return;
    try {
      if (conversation && token) sessionStorage.setItem(STORE, JSON.stringify({ conversation, token }));
      else sessionStorage.removeItem(STORE);
    } catch { /* storage unavailable: keep in memory only */ }
  }

  function connect() {
    clearTimeout(timer);
    if (ws) return;
    ready = false;
    const sock = ws = new WebSocket(WS_URL);
    const helloTimer = setTimeout(() => sock.close(), 15000);
    sock.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch { return; }
      if (f.type === 'hello') clearTimeout(helloTimer);
      if (ws === sock) handle(f);
    };
    sock.onclose = () => {
      clearTimeout(helloTimer);
      if (ws !== sock) return;
      ws = null;
      ready = false;
      if (busy()) reconnectLater();
    };
  }

  function reconnectLater() {
    const offline = navigator.onLine === false;
    showStatus(t(offline ? 'offline' : reached ? 'disconnected' : 'unreachable'), offline ? null : () => { attempt = 0; connect(); });
    if (offline) return; // the 'online' event reconnects
    const delay = Math.min(30000, 500 * 2 ** attempt++) * (0.75 + Math.random() / 2);
    timer = setTimeout(connect, delay);
  }
  addEventListener('online', () => { if (!ws && busy()) { attempt = 0; connect(); } });
  /** Is there work that needs a socket? (A failed message waits for the visitor's Retry.) */
  function busy() {
    return outbox.length > 0 || inflight.some((m) => !m.error);
  }

  function send(frame) {
    if (ws && ws.readyState === 1 && ready) ws.send(JSON.stringify(frame));
    else { outbox.push(frame); connect(); }
  }

  function sendSubmit(m) {
    if (ws && ws.readyState === 1 && ready) ws.send(JSON.stringify({ type: 'submit', id: m.id, text: m.text }));
    else connect(); // flush() sends it once the socket is ready
  }

  function flush() {
    ready = true;
    attempt = 0;
    showStatus('');
    for (const m of inflight) if (!m.error) ws.send(JSON.stringify({ type: 'submit', id: m.id, text: m.text }));
    for (const f of outbox.splice(0)) ws.send(JSON.stringify(f));
  }

  const find = (id) => inflight.find((m) => m.id === id);
  function finish(m) {
    inflight = inflight.filter((x) => x !== m);
  }

  function handle(f) {
    // An error without an id about a submit belongs to the one message in flight.
    const m = f.id != null ? find(f.id)
      : f.type === 'error' && /^(too_large|empty|rate|quota|content|busy|upstream)/.test(f.code) ? inflight.find((x) => !x.error) : null;
    switch (f.type) {
      case 'hello':
        reached = true;
        limits = f.limits || {};
        if (conversation && token) ws.send(JSON.stringify({ type: 'resume', conversation, token }));
        else flush();
        break;
      case 'resumed':
        conversation = f.conversation;
        resumed(f.messages || []);
        flush();
        break;
      case 'accepted':
        conversation = f.conversation;
        if (f.token) token = f.token;
        save();
        showRights();
        if (m) {
          m.accepted = true;
          m.el.classList.remove('q');
          if (!m.reply) m.reply = typing();
        }
        break;
      case 'delta':
        if (!m) break;
        if (!m.reply) m.reply = bubble('assistant');
        m.reply.classList.remove('d'); // the typing dots become the reply, in place
        m.replyText = (m.replyText || '') + f.text;
        setText(m.reply, 'assistant', m.replyText);
        log.scrollTop = log.scrollHeight;
        break;
      case 'done':
        if (!m) break;
        if (!m.reply) m.reply = bubble('assistant');
        if (!m.replyText) setText(m.reply, 'assistant', '');
        m.reply.classList.remove('d');
        addSources(m.reply, f.sources);
        announcer.textContent = m.replyText || '';
        showStatus('');
        finish(m);
        break;
      case 'transcript':
        download(f);
        break;
      case 'erased':
        forget();
        renderLog([]);
        showStatus(t('erased'));
        ws?.close(); // nothing left to talk about; the next Send opens a fresh socket
        ws = null;
        break;
      case 'error':
        fail(f, m);
        break;
    }
    // Tells assistive technology (and tests) whether a reply is still being written.
    log.setAttribute('aria-busy', String(inflight.some((x) => x.accepted && !x.error)));
  }

  /** Re-render from the server's copy; keep our unconfirmed submits without duplicating them. */
  function resumed(messages) {
    const els = renderLog(messages);
    const claimed = new Set();
    for (const m of inflight) {
      m.reply?.remove();
      m.reply = null;
      m.replyText = '';
      m.error = null;
      let i = messages.length;
      while (--i >= 0 && !(messages[i].role !== 'assistant' && !claimed.has(i) && String(messages[i].text).trim() === m.text));
      if (i >= 0) {
        claimed.add(i);
        m.el = els[i];
        // Its reply is already stored: nothing to re-send.
        if (messages.slice(i + 1).some((x) => x.role === 'assistant')) { m.done = true; continue; }
      } else {
        m.el = bubble('user', m.text);
        m.el.classList.add('q');
      }
    }
    inflight = inflight.filter((m) => !m.done);
  }

  function addSources(el, sources) {
    const items = (Array.isArray(sources) ? sources : []).map((s) => {
      const url = safeUrl(s.url);
      const title = String(s.title || s.url || s.id);
      return h('li', {}, url ? link(url, title) : title);
    });
    if (items.length) el.append(h('div', { className: 'src' }, t('sources') + ':', h('ul', {}, ...items)));
  }

  function fail(f, m) {
    const retry = m && (() => { m.error = null; showStatus(t('sending')); sendSubmit(m); });
    if (m) {
      m.error = f.code;
      // A reply cut off by an error is not stored: drop the partial text, as the server did.
      m.reply?.remove();
      m.reply = null;
      m.replyText = '';
    }
    switch (f.code) {
      case 'rate_limited':
        return showStatus(t('rate_limited', { s: Math.max(1, Math.ceil((f.retry_after_ms || 1000) / 1000)) }), retry);
      case 'busy':
        return showStatus(t('busy'), retry);
      case 'upstream_unavailable':
      case 'upstream_timeout':
        return showStatus(t('upstream'), retry);
      case 'quota_exceeded':
      case 'content_blocked':
      case 'too_large':
      case 'empty_message':
        // Final for this message. If it was never stored, give the text back for editing.
        if (m) {
          finish(m);
          if (!m.accepted) { m.el.remove(); if (!input.value) input.value = m.text; }
        }
        return showStatus(t(f.code, { n: limits.max_message_chars || '' }));
      case 'invalid_token':
      case 'no_conversation':
      {
        // Unfinished submits start a fresh conversation on this same socket.
        const waiting = inflight;
        forget();
        renderLog([]);
        outbox = [];
        inflight = waiting.map((x) => ({ id: x.id, text: x.text, el: bubble('user', x.text) }));
        if (ws && ws.readyState === 1) flush();
        return showStatus(t('gone'));
      }
      default:
        return showStatus(t('failed'), retry);
    }
  }

  function forget() {
    conversation = token = null;
    inflight = [];
    save();
    showRights();
    confirmBox.hidden = true;
  }

  function download(f) {
    const lines = [S.title, location.origin, new Date().toISOString(), ''];
    for (const msg of f.messages || []) {
      const who = t(msg.role === 'assistant' ? 'bot' : 'you');
      const at = typeof msg.at === 'number' ? new Date(msg.at < 1e12 ? msg.at * 1000 : msg.at).toISOString() : msg.at;
      lines.push(`[${at}] ${who}:`, String(msg.text), '');
    }
    const url = URL.createObjectURL(new Blob([lines.join('\n')], { type: 'text/plain;charset=utf-8' }));
    const a = h('a', { href: url, download: `${S.file}-${new Date().toISOString().slice(0, 10)}.txt`, hidden: true });
    root.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---------------------------------------------------------------- interactions
  function submit() {
    const text = input.value.trim();
    // The server queues a few messages behind a reply in progress; more than that waits here.
    if (!text || inflight.filter((m) => !m.error).length >= 3) return;
    // Over the server's limit, or too big for one 64 KiB frame: refuse here, keep the draft.
    if (text.length > (limits.max_message_chars || Infinity) || new Blob([text]).size > 60000) {
      return showStatus(t('too_large', { n: limits.max_message_chars || 20000 }));
    }
    // A new message replaces a failed one; one that was never stored is not shown either.
    for (const m of inflight) if (m.error && !m.accepted) m.el.remove();
    inflight = inflight.filter((m) => !m.error);
    const m = { id: newId(), text, el: bubble('user', text) };
    m.el.classList.add('q');
    inflight.push(m);
    input.value = '';
    autosize();
    showStatus('');
    sendSubmit(m); // the first Send is the first network request this widget makes
  }

  launcher.addEventListener('click', () => (panel.hidden ? openPanel() : closePanel()));
  closeBtn.addEventListener('click', closePanel);
  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  input.addEventListener('input', autosize);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  root.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || panel.hidden) return;
    e.stopPropagation();
    if (!confirmBox.hidden) { confirmBox.hidden = true; eraseBtn.focus(); } else closePanel();
  });
  downloadBtn.addEventListener('click', () => send({ type: 'transcript' }));
  eraseBtn.addEventListener('click', () => { confirmBox.hidden = false; noBtn.focus(); });
  noBtn.addEventListener('click', () => { confirmBox.hidden = true; eraseBtn.focus(); });
  yesBtn.addEventListener('click', () => { confirmBox.hidden = true; send({ type: 'erase' }); input.focus(); });

  if (S.greeting) bubble('assistant', S.greeting);
  const mount = () => document.body.append(host);
  if (document.body) mount(); else addEventListener('DOMContentLoaded', mount);

  // Opt-in only: continue a conversation from an earlier page load in this tab.
  if (persist) {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORE) || 'null');
      if (saved && saved.conversation && saved.token) {
        ({ conversation, token } = saved);
        showRights();
        connect();
      }
    } catch { /* storage unavailable */ }
  }
})();

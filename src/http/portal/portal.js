// The chatvault customer portal: plain DOM code, no framework, no build step. It talks only to
// this server's /v1 API with the session cookie, and sends the CSRF token on every mutation.
// Conversation text and anything else from the server is only ever set with textContent.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ROLE_RANK = { member: 0, admin: 1, owner: 2 };
  /** Each section and the least role that may open it. */
  const SECTIONS = {
    conversations: 'member', usage: 'member', settings: 'member', keys: 'admin',
    users: 'owner', audit: 'admin', embed: 'member', purge: 'admin', webhooks: 'admin', knowledge: 'admin',
  };
  const PAGE_SIZE = 25;

  const state = {
    session: null,
    list: null, // { items, cursor, query }
    settings: null,
    audit: [],
    current: null, // the conversation on screen
  };

  // ---------- small helpers ----------

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  /** One call to the API; resolves with the parsed JSON (null for 204), rejects with ApiError. */
  async function api(method, path, body, extraHeaders = {}) {
    const headers = { accept: 'application/json', ...extraHeaders };
    if (method !== 'GET' && state.session) headers['x-csrf-token'] = state.session.csrf_token;
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'The server could not be reached. Check the connection and try again.');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (res.ok) return data;
    const err = (data && data.error) || {};
    const failure = new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || `The server answered ${res.status}.`, res.headers.get('retry-after'));
    if (state.session && path !== '/v1/session') {
      if (res.status === 401) sessionEnded();
      else if (res.status === 403 && failure.code === 'password_change_required') showPasswordView();
    }
    throw failure;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
  const withSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const dayOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });

  function timeEl(iso, format = dateTime) {
    if (!iso) return el('span', { class: 'muted', text: '—' });
    const at = new Date(iso);
    return el('time', { dateTime: iso, title: iso, text: Number.isNaN(at.getTime()) ? iso : format.format(at) });
  }

  const num = (n) => (typeof n === 'number' ? n.toLocaleString() : '—');
  const plural = (n, one, many) => `${num(n)} ${n === 1 ? one : many}`;

  let statusTimer = 0;
  /** Announces a short message in the live region (and shows it as a toast). */
  function announce(message, kind = 'ok') {
    const box = $('status');
    box.textContent = message;
    box.className = `toast show ${kind}`;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => {
      box.className = 'toast';
      // Once faded, leave nothing stale for a screen reader that walks the page.
      statusTimer = setTimeout(() => { box.textContent = ''; }, 300);
    }, kind === 'error' ? 9000 : 5000);
  }

  function showError(targetId, error) {
    $(targetId).textContent = error ? messageOf(error) : '';
  }

  function messageOf(error) {
    if (error instanceof ApiError) {
      if (error.status === 429) {
        const secs = Number(error.retryAfter);
        const wait = secs > 90 ? `${Math.ceil(secs / 60)} minutes` : secs > 0 ? `${secs} seconds` : 'a while';
        return `Too many attempts. Try again in ${wait}.`;
      }
      return sentence(error.message);
    }
    return 'Something went wrong in the page. Reload it and try again.';
  }

  const sentence = (s) => { const t = String(s || '').trim(); return t ? t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.') : ''; };

  /** Disables a button (or a form's submit buttons) while `work` runs. */
  async function busy(target, work) {
    const buttons = target instanceof HTMLFormElement ? [...target.querySelectorAll('button[type=submit], button:not([type])')] : [target];
    buttons.forEach((b) => { b.disabled = true; b.setAttribute('aria-busy', 'true'); });
    try {
      return await work();
    } finally {
      buttons.forEach((b) => { b.disabled = false; b.removeAttribute('aria-busy'); });
    }
  }

  const can = (role) => state.session && ROLE_RANK[state.session.role] >= ROLE_RANK[role];

  // ---------- views and session ----------

  function showView(id) {
    for (const view of ['boot-view', 'signin-view', 'password-view', 'app-view']) $(view).hidden = view !== id;
  }

  function showSignIn(notice) {
    state.session = null;
    resetData();
    showView('signin-view');
    $('signin-notice').hidden = !notice;
    $('signin-notice').textContent = notice || '';
    $('signin-password').value = '';
    const tenant = $('signin-tenant');
    if (!tenant.value) tenant.value = localStorage.getItem('chatvault-portal-tenant') || '';
    (tenant.value ? $('signin-email') : tenant).focus();
  }

  function showPasswordView() {
    $('password-username').value = state.session?.email || '';
    showView('password-view');
    $('password-current').focus();
  }

  function sessionEnded() {
    showSignIn('Your session has ended. Sign in again to continue.');
  }

  function enterApp(firstTime) {
    const s = state.session;
    $('who-tenant').textContent = s.tenant;
    $('who-email').textContent = s.email;
    $('who-role').textContent = s.role;
    document.querySelectorAll('.js-tenant').forEach((n) => { n.textContent = s.tenant; });
    document.querySelectorAll('[data-min-role]').forEach((n) => { n.hidden = !can(n.dataset.minRole); });
    showView('app-view');
    route(!firstTime);
  }

  function acceptSession(body) {
    state.session = body;
    localStorage.setItem('chatvault-portal-tenant', body.tenant);
    if (body.must_change_password) showPasswordView();
    else enterApp(true);
  }

  /** Forgets everything shown for the previous session. */
  function resetData() {
    state.list = null;
    state.settings = null;
    state.audit = [];
    state.current = null;
    for (const id of ['conv-rows', 'transcript-messages', 'usage-rows', 'usage-stats', 'key-rows', 'user-rows', 'audit-rows', 'delivery-rows', 'doc-rows']) $(id).replaceChildren();
    for (const id of ['new-key', 'new-user', 'purge-result', 'new-webhook', 'webhook-current', 'doc-preview', 'doc-purge-result']) $(id).hidden = true;
    $('new-key-value').textContent = '';
    $('new-user-password').textContent = '';
    $('new-webhook-secret').textContent = '';
    $('doc-preview-text').textContent = '';
    for (const id of ['webhook-current-url', 'deliveries-summary', 'doc-summary', 'doc-size']) $(id).textContent = '';
    $('doc-purge-button').disabled = true;
    for (const id of ['transcript-started', 'transcript-count', 'transcript-id', 'list-summary', 'audit-summary', 'usage-day', 'embed-code']) $(id).textContent = '';
    for (const id of ['search-form', 'purge-form', 'settings-form', 'key-form', 'user-form', 'webhook-form', 'doc-form', 'doc-purge-form']) $(id).reset();
  }

  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    showError('signin-error', null);
    busy(form, async () => {
      try {
        const tenant = $('signin-tenant').value.trim();
        // The header lets a load balancer send the sign-in to the tenant's node (docs/operations.md).
        const body = await api('POST', '/v1/session', {
          tenant,
          email: $('signin-email').value.trim(),
          password: $('signin-password').value,
        }, /^[a-z0-9-]{1,63}$/.test(tenant) ? { 'x-chatvault-tenant': tenant } : {});
        $('signin-password').value = '';
        $('signin-notice').hidden = true;
        resetData();
        acceptSession(body);
      } catch (error) {
        showError('signin-error', error);
        $('signin-password').select();
      }
    });
  });

  $('password-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const [current, next, repeat] = ['password-current', 'password-new', 'password-repeat'].map((id) => $(id).value);
    if (next.length < 12) return showError('password-error', new ApiError(400, 'weak', 'The new password needs at least 12 characters'));
    if (next !== repeat) return showError('password-error', new ApiError(400, 'mismatch', 'The two new passwords differ'));
    showError('password-error', null);
    busy(form, async () => {
      try {
        const body = await api('POST', '/v1/session/password', { current, new: next });
        form.reset();
        acceptSession(body);
        announce('Password changed. Welcome to your portal.');
      } catch (error) {
        showError('password-error', error);
      }
    });
  });

  document.querySelectorAll('.js-signout').forEach((button) => button.addEventListener('click', () => {
    busy(button, async () => {
      try {
        await api('DELETE', '/v1/session');
      } catch {
        // Signed out already, or the server is gone: either way the page forgets the session.
      }
      showSignIn('You have signed out.');
    });
  }));

  // ---------- routing ----------

  function route(moveFocus = true) {
    if (!state.session || state.session.must_change_password) return;
    let hash = '';
    try { hash = decodeURIComponent(location.hash.slice(1)); } catch { /* a mangled address opens the default section */ }
    const [name, arg] = hash.split('/');
    const section = SECTIONS[name] && can(SECTIONS[name]) ? name : 'conversations';
    const shown = section === 'conversations' && arg ? 'transcript' : section;
    document.querySelectorAll('#main > section').forEach((s) => { s.hidden = s.id !== `section-${shown}`; });
    document.querySelectorAll('[data-nav]').forEach((a) => {
      if (a.dataset.nav === section) {
        a.setAttribute('aria-current', 'page');
        // On a narrow screen the navigation scrolls sideways: keep the current section in view.
        a.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      } else {
        a.removeAttribute('aria-current');
      }
    });
    const loaders = { conversations: loadConversations, usage: loadUsage, settings: loadSettings, keys: loadKeys, users: loadUsers, audit: loadAudit, embed: loadEmbed, purge: () => {}, webhooks: loadWebhook, knowledge: loadDocuments };
    if (shown === 'transcript') openConversation(arg);
    else loaders[section]();
    document.title = `${$(`h-${shown}`).textContent} — chatvault portal`;
    if (moveFocus) $(`h-${shown}`).focus();
  }

  window.addEventListener('hashchange', () => route(true));

  // ---------- conversations ----------

  function readQuery() {
    const query = {};
    const q = $('search-q').value.trim();
    if (q) query.q = q;
    // The date fields mean the user's own days: send the local midnights as exact instants.
    const from = $('search-from').valueAsDate;
    const to = $('search-to').valueAsDate;
    if (from) query.from = localDay(from).toISOString();
    if (to) query.to = new Date(localDay(to).getTime() + 86_400_000 - 1).toISOString();
    return query;
  }

  /** `valueAsDate` is midnight UTC of the picked day; the same calendar day at local midnight. */
  const localDay = (utc) => new Date(utc.getUTCFullYear(), utc.getUTCMonth(), utc.getUTCDate());

  function loadConversations(force = false) {
    if (state.list && !force) return Promise.resolve();
    state.list = { items: [], cursor: null, query: readQuery() };
    $('conv-rows').replaceChildren();
    return fetchPage();
  }

  async function fetchPage() {
    const list = state.list;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), ...list.query });
    if (list.cursor) params.set('cursor', list.cursor);
    showError('search-error', null);
    $('list-summary').textContent = 'Loading…';
    try {
      const page = await api('GET', `/v1/conversations?${params}`);
      if (state.list !== list) return; // a newer search replaced this one
      list.items.push(...page.items);
      list.cursor = page.next_cursor;
      $('conv-rows').append(...page.items.map(conversationRow));
      renderListSummary();
    } catch (error) {
      if (state.list !== list) return;
      $('list-summary').textContent = '';
      showError('search-error', error);
    }
  }

  function conversationRow(c) {
    const link = el('a', { href: `#conversations/${encodeURIComponent(c.id)}`, class: 'conv-link' }, timeEl(c.started_at));
    return el('tr', { 'data-id': c.id },
      el('td', {}, link),
      el('td', {}, timeEl(c.last_at)),
      el('td', { class: 'num', text: num(c.message_count) }),
      el('td', {}, el('code', { class: 'conv-id', title: c.id, text: shortId(c.id) })));
  }

  const shortId = (id) => (id.length > 14 ? `${id.slice(0, 12)}…` : id);

  function renderListSummary() {
    const { items, cursor, query } = state.list;
    const filtered = Object.keys(query).length > 0;
    const count = `${items.length}${cursor ? '+' : ''}`;
    $('list-summary').textContent = items.length === 0 ? '' : filtered
      ? `${count} ${items.length === 1 && !cursor ? 'conversation matches' : 'conversations match'} your search.`
      : `${count} ${items.length === 1 && !cursor ? 'conversation' : 'conversations'}, most recent first.`;
    $('conv-empty').hidden = items.length > 0;
    $('conv-empty').textContent = filtered
      ? 'No conversation matches. Try fewer or different words, or a wider date range.'
      : 'No conversations yet. They appear here as soon as a visitor sends a message through your widget.';
    $('conv-table').hidden = items.length === 0;
    $('load-more').hidden = !cursor;
  }

  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const from = $('search-from').value;
    const to = $('search-to').value;
    if (from && to && from > to) return showError('search-error', new ApiError(400, 'range', '"From" is after "To"'));
    busy(event.currentTarget, () => loadConversations(true));
  });

  $('search-clear').addEventListener('click', () => {
    $('search-form').reset();
    loadConversations(true);
    $('search-q').focus();
  });

  $('conv-refresh').addEventListener('click', (event) => busy(event.currentTarget, () => loadConversations(true)));

  $('load-more').addEventListener('click', (event) => {
    const before = state.list.items.length;
    busy(event.currentTarget, async () => {
      await fetchPage();
      // Keep keyboard users in place: focus the first newly loaded row.
      const row = $('conv-rows').children[before];
      if (row) row.querySelector('a').focus();
      else $('h-conversations').focus();
    });
  });

  let openTicket = 0;
  async function openConversation(id) {
    const ticket = ++openTicket;
    state.current = null;
    $('h-transcript').textContent = 'Conversation';
    $('transcript-messages').replaceChildren();
    for (const f of ['transcript-started', 'transcript-count', 'transcript-id']) $(f).textContent = '';
    $('transcript-meta').hidden = true;
    $('delete-conversation').disabled = true;
    showError('transcript-error', null);
    try {
      const c = await api('GET', `/v1/conversations/${encodeURIComponent(id)}`);
      if (ticket !== openTicket) return; // another conversation was opened meanwhile
      state.current = c;
      $('h-transcript').textContent = `Conversation of ${dateTime.format(new Date(c.started_at))}`;
      $('transcript-started').replaceChildren(timeEl(c.started_at));
      $('transcript-count').textContent = num(c.messages.length);
      $('transcript-id').textContent = c.id;
      $('transcript-meta').hidden = false;
      $('delete-conversation').disabled = false;
      let day = '';
      const items = [];
      for (const m of c.messages) {
        const d = new Date(m.at).toDateString();
        if (d !== day) {
          day = d;
          items.push(el('li', { class: 'day', text: new Intl.DateTimeFormat(undefined, { dateStyle: 'full' }).format(new Date(m.at)) }));
        }
        items.push(messageItem(m));
      }
      $('transcript-messages').replaceChildren(...items);
      if (c.messages.length === 0) $('transcript-messages').append(el('li', { class: 'empty', text: 'This conversation has no messages.' }));
    } catch (error) {
      if (ticket !== openTicket) return;
      $('h-transcript').textContent = 'Conversation not available';
      showError('transcript-error', error.status === 404 ? new ApiError(404, 'gone', 'This conversation does not exist any more') : error);
    }
  }

  function messageItem(m) {
    const visitor = m.role === 'visitor';
    return el('li', { class: `msg ${visitor ? 'visitor' : 'assistant'}` },
      el('div', { class: 'msg-head' },
        el('span', { class: 'msg-role', text: visitor ? 'Visitor' : 'Assistant' }),
        timeEl(m.at, timeOnly),
        ...(m.flags || []).map((f) => el('span', { class: 'msg-flag', text: `flagged: ${f}`, title: 'Advisory flag from the content-safety floor' }))),
      el('p', { class: 'msg-text', text: m.text }));
  }

  $('delete-conversation').addEventListener('click', async (event) => {
    const c = state.current;
    if (!c) return;
    const ok = await confirmAction({
      title: 'Delete this conversation?',
      body: `All ${plural(c.messages.length, 'message', 'messages')} of this conversation will be erased for good. The visitor can no longer resume it.`,
      confirm: 'Delete conversation',
    });
    if (!ok) return;
    busy(event.target, async () => {
      try {
        await api('DELETE', `/v1/conversations/${encodeURIComponent(c.id)}`);
        if (state.list) {
          state.list.items = state.list.items.filter((i) => i.id !== c.id);
          $('conv-rows').querySelector(`tr[data-id="${CSS.escape(c.id)}"]`)?.remove();
          renderListSummary();
        }
        announce('Conversation deleted.');
        location.hash = '#conversations';
      } catch (error) {
        showError('transcript-error', error);
      }
    });
  });

  // ---------- confirmation dialog ----------

  function confirmAction({ title, body, confirm }) {
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-body').textContent = body;
    $('confirm-ok').textContent = confirm;
    dialog.returnValue = '';
    const opener = document.activeElement;
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => {
        if (opener && opener.isConnected) opener.focus();
        resolve(dialog.returnValue === 'ok');
      }, { once: true });
    });
  }

  // ---------- purge ----------

  $('purge-confirm').addEventListener('input', (event) => {
    $('purge-button').disabled = event.target.value.trim() !== state.session.tenant;
  });

  $('purge-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    if ($('purge-confirm').value.trim() !== state.session.tenant) return;
    showError('purge-error', null);
    busy(form, async () => {
      try {
        const r = await api('DELETE', '/v1/conversations');
        form.reset();
        $('search-form').reset();
        state.list = null;
        const result = $('purge-result');
        result.replaceChildren(
          el('h3', { text: 'Purge complete' }),
          el('p', {}, `Erased ${plural(r.conversations, 'conversation', 'conversations')} and ${plural(r.messages, 'message', 'messages')} at `, timeEl(r.purged_at), '.'));
        result.hidden = false;
        announce(`Purged ${plural(r.conversations, 'conversation', 'conversations')} and ${plural(r.messages, 'message', 'messages')}.`);
      } catch (error) {
        showError('purge-error', error);
      }
    }).then(() => {
      $('purge-button').disabled = $('purge-confirm').value.trim() !== state.session?.tenant;
    });
  });

  // ---------- usage ----------

  async function loadUsage() {
    try {
      const u = await api('GET', '/v1/usage');
      const t = u.today || {};
      $('usage-day').textContent = `Today (${t.day || 'UTC'}, UTC). Stored now: ${plural(u.stored?.conversations ?? 0, 'conversation', 'conversations')}, ${plural(u.stored?.messages ?? 0, 'message', 'messages')}.`;
      const stat = (label, value) => el('div', { class: 'stat card' }, el('p', { class: 'stat-value', text: num(value) }), el('p', { class: 'stat-label', text: label }));
      $('usage-stats').replaceChildren(
        stat('Visitor messages today', t.messages), stat('Replies today', t.replies),
        stat('Tokens in today', t.tokens_in), stat('Tokens out today', t.tokens_out));
      const budget = u.daily_token_budget;
      $('usage-budget').hidden = !budget;
      if (budget) {
        const used = (t.tokens_in || 0) + (t.tokens_out || 0);
        const share = Math.min(100, Math.round((used / budget) * 100));
        $('budget-label').textContent = `${num(used)} of ${num(budget)} daily tokens used (${share}%).`;
        $('budget-fill').style.width = `${share}%`;
        $('budget-fill').classList.toggle('high', share >= 85);
      }
      const days = [...(u.days || [])].sort((a, b) => (a.day < b.day ? 1 : -1));
      $('usage-rows').replaceChildren(...days.map((d) => el('tr', {},
        el('td', {}, el('time', { dateTime: d.day, text: dayOnly.format(new Date(`${d.day}T00:00:00Z`)) })),
        el('td', { class: 'num', text: num(d.messages) }), el('td', { class: 'num', text: num(d.replies) }),
        el('td', { class: 'num', text: num(d.tokens_in) }), el('td', { class: 'num', text: num(d.tokens_out) }))));
      $('usage-empty').hidden = days.length > 0;
    } catch (error) {
      announce(messageOf(error), 'error');
    }
  }

  $('usage-refresh').addEventListener('click', (event) => busy(event.currentTarget, loadUsage));

  $('usage-reset').addEventListener('click', async (event) => {
    const ok = await confirmAction({
      title: 'Reset the usage counters?',
      body: 'Message and token counts for every day go back to zero. Conversations are not touched.',
      confirm: 'Reset counters',
    });
    if (!ok) return;
    busy(event.target, async () => {
      try {
        await api('DELETE', '/v1/usage');
        announce('Usage counters reset.');
        await loadUsage();
      } catch (error) {
        announce(messageOf(error), 'error');
      }
    });
  });

  // ---------- settings ----------

  const settingInputs = () => [...document.querySelectorAll('[data-setting]')];

  async function fetchSettings() {
    if (!state.settings) state.settings = await api('GET', '/v1/settings');
    return state.settings;
  }

  async function loadSettings() {
    const readOnly = !can('admin');
    $('settings-readonly').hidden = !readOnly;
    $('settings-fieldset').disabled = readOnly;
    try {
      // Always fresh: another admin, or an API key, may have changed them since.
      state.settings = await api('GET', '/v1/settings');
      fillSettings(state.settings);
    } catch (error) {
      showError('settings-error', error);
    }
  }

  function fillSettings(s) {
    for (const input of settingInputs()) {
      const key = input.dataset.setting;
      const value = s[key];
      if (key === 'allowed_origins') input.value = (value || []).join('\n');
      else input.value = value == null ? '' : String(value);
      input.removeAttribute('aria-invalid');
    }
    $('set-redaction-field').hidden = !('redaction' in s);
    showError('settings-error', null);
  }

  /** The fields whose form value differs from the saved settings, as PATCH wants them. */
  function settingsChanges() {
    const changes = {};
    for (const input of settingInputs()) {
      const key = input.dataset.setting;
      if (!(key in state.settings)) continue;
      let value;
      if (key === 'allowed_origins') value = input.value.split('\n').map((o) => o.trim()).filter(Boolean);
      else if (key === 'model') value = input.value.trim() || null;
      else if ('number' in input.dataset) {
        value = input.value.trim() === '' ? NaN : Number(input.value);
        if (!Number.isInteger(value) || value < 0) throw Object.assign(new ApiError(400, 'invalid_settings', `${input.labels[0].textContent} must be a whole number`), { field: input });
      } else value = input.value;
      if (JSON.stringify(value) !== JSON.stringify(state.settings[key])) changes[key] = value;
    }
    return changes;
  }

  $('settings-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    settingInputs().forEach((i) => i.removeAttribute('aria-invalid'));
    showError('settings-error', null);
    let changes;
    try {
      changes = settingsChanges();
    } catch (error) {
      error.field.setAttribute('aria-invalid', 'true');
      error.field.focus();
      return showError('settings-error', error);
    }
    if (Object.keys(changes).length === 0) return announce('Nothing to save: no setting was changed.');
    busy(form, async () => {
      try {
        state.settings = await api('PATCH', '/v1/settings', changes);
        fillSettings(state.settings);
        announce(`Settings saved (${Object.keys(changes).join(', ').replace(/_/g, ' ')}).`);
      } catch (error) {
        const field = fieldNamedIn(error.message);
        if (field) {
          // Name the field as the form labels it, not by its API name.
          error.message = error.message.replace(field.dataset.setting, `“${field.labels[0].textContent}”`);
          field.setAttribute('aria-invalid', 'true');
          field.focus();
        }
        showError('settings-error', error);
      }
    });
  });

  /** The input an error message is about, when it names a setting. */
  function fieldNamedIn(message) {
    const text = String(message || '');
    if (/origin/i.test(text)) return $('set-origins');
    return settingInputs()
      .sort((a, b) => b.dataset.setting.length - a.dataset.setting.length)
      .find((i) => text.includes(i.dataset.setting)) || null;
  }

  $('settings-revert').addEventListener('click', () => {
    if (state.settings) fillSettings(state.settings);
    announce('Changes undone.');
  });

  // ---------- API keys ----------

  async function loadKeys() {
    try {
      const { keys } = await api('GET', '/v1/api-keys');
      keys.sort((a, b) => (!!a.revoked_at - !!b.revoked_at) || (a.created_at < b.created_at ? 1 : -1));
      $('key-rows').replaceChildren(...keys.map(keyRow));
      $('keys-empty').hidden = keys.length > 0;
    } catch (error) {
      announce(messageOf(error), 'error');
    }
  }

  function keyRow(k) {
    const scopes = el('ul', { class: 'tags' }, ...(k.scopes || []).map((s) => el('li', {}, el('code', { text: s }))));
    const status = k.revoked_at
      ? el('span', { class: 'badge muted-badge' }, 'Revoked ', timeEl(k.revoked_at))
      : el('span', { class: 'badge ok-badge', text: 'Active' });
    const revoke = k.revoked_at ? null : el('button', { type: 'button', class: 'danger-quiet small', text: 'Revoke' });
    if (revoke) {
      revoke.setAttribute('aria-label', `Revoke key ${k.name}`);
      revoke.addEventListener('click', async () => {
        const ok = await confirmAction({
          title: `Revoke “${k.name}”?`,
          body: 'Anything using this key stops working at once. This cannot be undone.',
          confirm: 'Revoke key',
        });
        if (!ok) return;
        busy(revoke, async () => {
          try {
            await api('DELETE', `/v1/api-keys/${encodeURIComponent(k.id)}`);
            announce(`Key “${k.name}” revoked.`);
            await loadKeys();
          } catch (error) {
            announce(messageOf(error), 'error');
          }
        });
      });
    }
    return el('tr', { class: k.revoked_at ? 'revoked' : '' },
      el('td', { text: k.name }), el('td', {}, el('code', { text: k.id })), el('td', {}, scopes),
      el('td', {}, timeEl(k.created_at)), el('td', {}, k.last_used_at ? timeEl(k.last_used_at) : el('span', { class: 'muted', text: 'never' })),
      el('td', {}, status), el('td', { class: 'cell-actions' }, revoke));
  }

  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((i) => i.value);
    if (scopes.length === 0) return showError('key-error', new ApiError(400, 'invalid_scope', 'Choose at least one permission'));
    showError('key-error', null);
    busy(form, async () => {
      try {
        const created = await api('POST', '/v1/api-keys', { name: $('key-name').value.trim(), scopes });
        $('new-key-value').textContent = created.key;
        $('new-key').hidden = false;
        form.reset();
        announce('Key created. Copy it now: it is shown only once.');
        $('new-key').querySelector('.js-copy').focus();
        await loadKeys();
      } catch (error) {
        showError('key-error', error);
      }
    });
  });

  $('new-key-done').addEventListener('click', () => {
    $('new-key-value').textContent = '';
    $('new-key').hidden = true;
    $('key-name').focus();
  });

  // ---------- users ----------

  async function loadUsers() {
    try {
      const { users } = await api('GET', '/v1/users');
      $('user-rows').replaceChildren(...users.map(userRow));
    } catch (error) {
      announce(messageOf(error), 'error');
    }
  }

  function userRow(u) {
    const self = u.email === state.session.email;
    const role = el('select', { class: 'small', disabled: self },
      ...['member', 'admin', 'owner'].map((r) => el('option', { value: r, text: r[0].toUpperCase() + r.slice(1), selected: r === u.role })));
    role.setAttribute('aria-label', `Role of ${u.email}`);
    role.addEventListener('change', async () => {
      try {
        await api('PATCH', `/v1/users/${encodeURIComponent(u.email)}`, { role: role.value });
        u.role = role.value;
        announce(`${u.email} is now ${role.value}.`);
      } catch (error) {
        role.value = u.role;
        announce(messageOf(error), 'error');
      }
    });
    const remove = self ? el('span', { class: 'muted small-text', text: 'you' }) : el('button', { type: 'button', class: 'danger-quiet small', text: 'Remove' });
    if (!self) {
      remove.setAttribute('aria-label', `Remove ${u.email}`);
      remove.addEventListener('click', async () => {
        const ok = await confirmAction({ title: `Remove ${u.email}?`, body: 'They are signed out and can no longer use the portal.', confirm: 'Remove user' });
        if (!ok) return;
        busy(remove, async () => {
          try {
            await api('DELETE', `/v1/users/${encodeURIComponent(u.email)}`);
            announce(`${u.email} removed.`);
            await loadUsers();
          } catch (error) {
            announce(messageOf(error), 'error');
          }
        });
      });
    }
    const status = u.must_change_password ? el('span', { class: 'badge warn-badge', text: 'Has not signed in yet' }) : el('span', { class: 'badge ok-badge', text: 'Active' });
    return el('tr', {}, el('td', { text: u.email }), el('td', {}, role), el('td', {}, timeEl(u.created_at)), el('td', {}, status), el('td', { class: 'cell-actions' }, remove));
  }

  $('user-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    showError('user-error', null);
    busy(form, async () => {
      try {
        const created = await api('POST', '/v1/users', { email: $('user-email').value.trim(), role: $('user-role').value });
        $('new-user-email').textContent = created.email;
        $('new-user-password').textContent = created.password;
        $('new-user').hidden = false;
        form.reset();
        announce(`${created.email} added. Copy the one-time password now.`);
        $('new-user').querySelector('.js-copy').focus();
        await loadUsers();
      } catch (error) {
        showError('user-error', error);
      }
    });
  });

  $('new-user-done').addEventListener('click', () => {
    $('new-user-password').textContent = '';
    $('new-user').hidden = true;
    $('user-email').focus();
  });

  // ---------- audit ----------

  async function loadAudit() {
    try {
      const { entries } = await api('GET', '/v1/audit?format=json');
      state.audit = entries.sort((a, b) => b.seq - a.seq);
      renderAudit();
    } catch (error) {
      announce(messageOf(error), 'error');
    }
  }

  function renderAudit() {
    const filter = $('audit-filter').value.trim().toLowerCase();
    const shown = state.audit.filter((e) => !filter || [e.action, e.actor, e.target || ''].some((f) => f.toLowerCase().includes(filter)));
    const LIMIT = 500;
    $('audit-rows').replaceChildren(...shown.slice(0, LIMIT).map((e) => el('tr', { 'data-action': e.action },
      el('td', {}, timeEl(e.at, withSeconds)),
      el('td', {}, el('span', { class: `action ${actionKind(e.action)}`, text: e.action })),
      el('td', { text: e.actor }),
      el('td', {}, e.target ? el('code', { text: e.target }) : el('span', { class: 'muted', text: '—' })),
      el('td', { class: 'wrap details', text: detailsText(e.details) }))));
    $('audit-summary').textContent = `${shown.length === state.audit.length ? num(shown.length) : `${num(shown.length)} of ${num(state.audit.length)}`} entries, newest first${shown.length > LIMIT ? `; the newest ${LIMIT} are shown (export CSV for all)` : ''}.`;
  }

  const actionKind = (a) => (/deleted|purged|revoked|removed|failed|reset/.test(a) ? 'warn' : /login|logout|password/.test(a) ? 'auth' : '');

  function detailsText(details) {
    if (!details || typeof details !== 'object') return details == null ? '' : String(details);
    return Object.entries(details).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v ? JSON.stringify(v) : v}`).join(' · ');
  }

  $('audit-filter').addEventListener('input', renderAudit);
  $('audit-refresh').addEventListener('click', (event) => busy(event.currentTarget, loadAudit));

  // ---------- webhooks ----------

  async function loadWebhook() {
    showError('webhook-error', null);
    try {
      showEndpoint(await api('GET', '/v1/webhook'));
    } catch (error) {
      if (error.status === 404) showEndpoint(null); // none set yet
      else announce(messageOf(error), 'error');
    }
    await loadDeliveries();
  }

  function showEndpoint(endpoint) {
    $('webhook-current').hidden = !endpoint;
    $('webhook-none').hidden = !!endpoint;
    $('webhook-current-url').textContent = endpoint ? endpoint.url : '';
    $('webhook-current-content').textContent = endpoint
      ? (endpoint.include_content ? 'Message text is included in each delivery.' : 'Message text is left out: deliveries carry IDs, roles and times only.')
      : '';
    $('webhook-form-title').textContent = endpoint ? 'Change the endpoint' : 'Set the endpoint';
    $('webhook-replace-note').hidden = !endpoint;
    $('webhook-url').value = endpoint ? endpoint.url : '';
    $('webhook-content').checked = !!endpoint?.include_content;
    $('webhook-url').removeAttribute('aria-invalid');
  }

  const timeWithSeconds = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
  const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();

  const DELIVERY_STATUS = {
    delivered: ['Delivered', 'ok-badge'],
    pending: ['Retrying', 'warn-badge'],
    failed: ['Failed', 'fail-badge'],
  };

  async function loadDeliveries() {
    try {
      const { deliveries } = await api('GET', '/v1/webhook/deliveries');
      $('delivery-rows').replaceChildren(...deliveries.map((d) => {
        const [label, kind] = DELIVERY_STATUS[d.status] || [String(d.status), 'muted-badge'];
        return el('tr', { 'data-status': d.status, 'data-id': d.id },
          el('td', {}, timeEl(d.created_at, withSeconds)),
          el('td', {}, el('code', { text: d.event })),
          el('td', {}, el('span', { class: `badge ${kind}`, text: label })),
          el('td', { class: 'num', text: num(d.attempts) }),
          el('td', { class: 'num' }, d.last_status == null ? el('span', { class: 'muted', text: 'no answer' }) : el('span', { text: `HTTP ${d.last_status}` })),
          el('td', {}, d.finished_at ? timeEl(d.finished_at, sameDay(d.created_at, d.finished_at) ? timeWithSeconds : withSeconds) : el('span', { class: 'muted', text: '—' })),
          el('td', {}, el('code', { class: 'conv-id', title: d.id, text: shortId(d.id) })));
      }));
      const counts = deliveries.reduce((acc, d) => { acc[d.status] = (acc[d.status] || 0) + 1; return acc; }, {});
      $('deliveries-summary').textContent = deliveries.length === 0 ? '' : `${plural(deliveries.length, 'delivery', 'deliveries')}, newest first: ${num(counts.delivered || 0)} delivered, ${num(counts.pending || 0)} retrying, ${num(counts.failed || 0)} failed.`;
      $('deliveries-empty').hidden = deliveries.length > 0;
      $('deliveries-table').hidden = deliveries.length === 0;
    } catch (error) {
      announce(messageOf(error), 'error');
    }
  }

  $('webhook-refresh').addEventListener('click', (event) => busy(event.currentTarget, loadDeliveries));

  $('webhook-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const input = $('webhook-url');
    input.removeAttribute('aria-invalid');
    showError('webhook-error', null);
    const url = input.value.trim();
    if (!url) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return showError('webhook-error', new ApiError(400, 'invalid_url', 'Enter the address that should receive the deliveries'));
    }
    busy(form, async () => {
      try {
        const saved = await api('PUT', '/v1/webhook', { url, include_content: $('webhook-content').checked });
        showEndpoint(saved);
        $('new-webhook-secret').textContent = saved.secret;
        $('new-webhook').hidden = false;
        announce('Endpoint saved. Copy the signing secret now: it is shown only once.');
        $('new-webhook').querySelector('.js-copy').focus();
      } catch (error) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        showError('webhook-error', error);
      }
    });
  });

  $('new-webhook-done').addEventListener('click', () => {
    $('new-webhook-secret').textContent = '';
    $('new-webhook').hidden = true;
    $('h-deliveries').scrollIntoView({ block: 'nearest' });
    $('webhook-refresh').focus();
  });

  $('webhook-remove').addEventListener('click', async (event) => {
    const button = event.currentTarget;
    const ok = await confirmAction({
      title: 'Remove the webhook endpoint?',
      body: 'Nothing more is sent, and its signing secret stops being used. Deliveries already retrying are not sent again.',
      confirm: 'Remove endpoint',
    });
    if (!ok) return;
    busy(button, async () => {
      try {
        await api('DELETE', '/v1/webhook');
        showEndpoint(null);
        $('new-webhook-secret').textContent = '';
        $('new-webhook').hidden = true;
        announce('Webhook endpoint removed.');
        $('webhook-url').focus();
      } catch (error) {
        if (error.status === 404) showEndpoint(null);
        announce(messageOf(error), 'error');
      }
    });
  });

  // ---------- knowledge base ----------

  const MAX_DOCUMENT_BYTES = 1024 * 1024;
  const FORMAT_LABEL = { text: 'Plain text', markdown: 'Markdown', html: 'HTML' };
  const formatOf = (name) => (/\.(md|markdown)$/i.test(name) ? 'markdown' : /\.html?$/i.test(name) ? 'html' : 'text');
  const isWebUrl = (u) => /^https?:\/\//i.test(String(u || ''));
  let previewTicket = 0;

  async function loadDocuments() {
    try {
      const { items } = await api('GET', '/v1/documents');
      items.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      $('doc-rows').replaceChildren(...items.map(documentRow));
      $('doc-summary').textContent = items.length === 0 ? ''
        : `${plural(items.length, 'document', 'documents')}, ${plural(items.reduce((n, d) => n + (d.passages || 0), 0), 'passage', 'passages')} in all.`;
      $('doc-empty').hidden = items.length > 0;
      $('doc-table').hidden = items.length === 0;
      if (!$('doc-preview').hidden && !items.some((d) => d.id === $('doc-preview').dataset.id)) closePreview(false);
    } catch (error) {
      announce(messageOf(error), 'error');
    }
  }

  function documentRow(d) {
    const title = el('div', { class: 'doc-title' }, el('span', { text: d.title }));
    if (d.url) {
      title.append(isWebUrl(d.url)
        ? el('a', { href: d.url, class: 'doc-url', rel: 'noopener noreferrer', target: '_blank', text: d.url })
        : el('span', { class: 'doc-url', text: d.url }));
    }
    const preview = el('button', { type: 'button', class: 'small', text: 'Preview' });
    preview.setAttribute('aria-label', `Preview ${d.title}`);
    preview.addEventListener('click', () => busy(preview, () => openPreview(d, preview)));
    const remove = el('button', { type: 'button', class: 'danger-quiet small', text: 'Delete' });
    remove.setAttribute('aria-label', `Delete ${d.title}`);
    remove.addEventListener('click', async () => {
      const ok = await confirmAction({
        title: `Delete “${d.title}”?`,
        body: `Its ${plural(d.passages, 'passage', 'passages')} are erased and the assistant no longer draws on it.`,
        confirm: 'Delete document',
      });
      if (!ok) return;
      busy(remove, async () => {
        try {
          await api('DELETE', `/v1/documents/${encodeURIComponent(d.id)}`);
          announce(`Document “${d.title}” deleted.`);
          await loadDocuments();
          $('h-knowledge').focus();
        } catch (error) {
          announce(messageOf(error), 'error');
          if (error.status === 404) await loadDocuments();
        }
      });
    });
    return el('tr', { 'data-id': d.id },
      el('td', { class: 'wrap' }, title),
      el('td', { text: FORMAT_LABEL[d.format] || d.format }),
      el('td', { class: 'num', text: num(d.passages) }),
      el('td', { class: 'num', text: num(d.chars) }),
      el('td', {}, timeEl(d.created_at)),
      el('td', { class: 'cell-actions' }, el('div', { class: 'row end nowrap' }, preview, remove)));
  }

  async function openPreview(d, opener) {
    const ticket = ++previewTicket;
    try {
      const doc = await api('GET', `/v1/documents/${encodeURIComponent(d.id)}`);
      if (ticket !== previewTicket) return;
      const box = $('doc-preview');
      box.dataset.id = doc.id;
      box.opener = opener;
      $('doc-preview-title').textContent = `Preview: ${doc.title}`;
      $('doc-preview-meta').textContent = `${FORMAT_LABEL[doc.format] || doc.format}, reduced to ${plural(doc.chars, 'character', 'characters')} in ${plural(doc.passages, 'passage', 'passages')}. This is the text the assistant searches.`;
      $('doc-preview-text').textContent = doc.text;
      $('doc-preview-text').scrollTop = 0;
      box.hidden = false;
      $('doc-preview-title').focus();
    } catch (error) {
      announce(messageOf(error), 'error');
      if (error.status === 404) await loadDocuments();
    }
  }

  function closePreview(restoreFocus = true) {
    const box = $('doc-preview');
    box.hidden = true;
    $('doc-preview-text').textContent = '';
    delete box.dataset.id;
    if (restoreFocus) (box.opener?.isConnected ? box.opener : $('h-knowledge')).focus();
    box.opener = null;
  }

  $('doc-preview-close').addEventListener('click', () => closePreview(true));
  $('doc-refresh').addEventListener('click', (event) => busy(event.currentTarget, loadDocuments));

  function showDocSize() {
    const bytes = new TextEncoder().encode($('doc-text').value).length;
    $('doc-size').textContent = bytes ? `Now ${(bytes / 1024).toLocaleString(undefined, { maximumFractionDigits: 1 })} KiB.` : '';
  }
  $('doc-text').addEventListener('input', showDocSize);

  $('doc-file').addEventListener('change', (event) => {
    const file = event.target.files[0];
    showError('doc-error', null);
    if (!file) return;
    if (file.size > MAX_DOCUMENT_BYTES) {
      event.target.value = '';
      $('doc-file').setAttribute('aria-invalid', 'true');
      return showError('doc-error', new ApiError(413, 'too_large', `“${file.name}” is ${Math.ceil(file.size / 1024).toLocaleString()} KiB; a document may hold at most 1,024 KiB of text. Split it into smaller documents`));
    }
    $('doc-file').removeAttribute('aria-invalid');
    const reader = new FileReader();
    reader.addEventListener('load', () => {
      $('doc-text').value = String(reader.result);
      $('doc-format').value = formatOf(file.name);
      if (!$('doc-title').value.trim()) $('doc-title').value = file.name.replace(/\.[^.]+$/, '');
      showDocSize();
      announce(`Read “${file.name}” into the text box (${FORMAT_LABEL[formatOf(file.name)]}). Nothing is sent until you save.`);
    });
    reader.addEventListener('error', () => showError('doc-error', new ApiError(0, 'read', `“${file.name}” could not be read`)));
    reader.readAsText(file);
  });

  /** The form field a document error is about. */
  function documentField(error) {
    if (error.status === 413) return $('doc-text');
    const text = String(error.message || '');
    if (/\btitle\b/i.test(text)) return $('doc-title');
    if (/\burl\b/i.test(text)) return $('doc-url');
    if (/\bformat\b/i.test(text)) return $('doc-format');
    return $('doc-text');
  }

  $('doc-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    form.querySelectorAll('[aria-invalid]').forEach((n) => n.removeAttribute('aria-invalid'));
    showError('doc-error', null);
    const body = { title: $('doc-title').value.trim(), text: $('doc-text').value, format: $('doc-format').value };
    const url = $('doc-url').value.trim();
    if (url) body.url = url;
    busy(form, async () => {
      try {
        const created = await api('POST', '/v1/documents', body);
        form.reset();
        showDocSize();
        announce(`Document “${created.title}” saved as ${plural(created.passages, 'passage', 'passages')}.`);
        await loadDocuments();
        $('doc-title').focus();
      } catch (error) {
        const field = documentField(error);
        field.setAttribute('aria-invalid', 'true');
        field.focus();
        showError('doc-error', error);
      }
    });
  });

  $('doc-form').addEventListener('reset', () => {
    showError('doc-error', null);
    $('doc-form').querySelectorAll('[aria-invalid]').forEach((n) => n.removeAttribute('aria-invalid'));
    setTimeout(showDocSize);
  });

  $('doc-purge-confirm').addEventListener('input', (event) => {
    $('doc-purge-button').disabled = event.target.value.trim() !== state.session.tenant;
  });

  $('doc-purge-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    if ($('doc-purge-confirm').value.trim() !== state.session.tenant) return;
    showError('doc-purge-error', null);
    busy(form, async () => {
      try {
        const r = await api('DELETE', '/v1/documents');
        form.reset();
        const result = $('doc-purge-result');
        result.replaceChildren(
          el('h3', { text: 'Knowledge base purged' }),
          el('p', {}, `Erased ${plural(r.documents, 'document', 'documents')} and ${plural(r.passages, 'passage', 'passages')} at `, timeEl(r.purged_at), '.'));
        result.hidden = false;
        announce(`Knowledge base purged: ${plural(r.documents, 'document', 'documents')} erased.`);
        await loadDocuments();
      } catch (error) {
        showError('doc-purge-error', error);
      }
    }).then(() => {
      $('doc-purge-button').disabled = $('doc-purge-confirm').value.trim() !== state.session?.tenant;
    });
  });

  // ---------- embed snippet ----------

  async function loadEmbed() {
    let key = null;
    try {
      const s = await fetchSettings();
      key = s.widget_key || (Array.isArray(s.widget_keys) ? s.widget_keys[0] : null);
    } catch (error) {
      announce(messageOf(error), 'error');
    }
    $('embed-code').textContent = `<script src="${location.origin}/widget.js" data-key="${key || 'wk_…'}" async></script>`;
    $('embed-note').hidden = !!key;
  }

  // ---------- copy buttons ----------

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('.js-copy');
    if (!button) return;
    const source = $(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.textContent);
    } catch {
      // No clipboard permission: select the text so Ctrl+C works.
      const range = document.createRange();
      range.selectNodeContents(source);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      return announce('Select and copy the highlighted text (Ctrl+C).');
    }
    const label = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = label; }, 2000);
    announce('Copied to the clipboard.');
  });

  // ---------- start ----------

  (async () => {
    try {
      acceptSession(await api('GET', '/v1/session'));
    } catch (error) {
      showSignIn(error.status === 401 || error.status === 400 ? '' : messageOf(error));
    }
  })();
})();

// Shared by every page of the planner's web UI: building elements safely, the JSON API with the session's
// CSRF token, the top navigation, the message area, the live event stream, and formatting.
// Text from the server is only ever inserted with textContent or attributes, never parsed as HTML.

const API = '/api/v1';
const STATE_CHANGING = new Set(['POST', 'PUT', 'DELETE']);
const RELATIVE_TICK_MS = 5000; // how often "12 s ago" texts are brought up to date
const CLOCK_SKEW_IGNORED_MS = 3000; // the Date header has 1 s resolution: smaller differences are noise
const EVENT_RETRY_MS = 3000; // after the browser gave up on the event stream (e.g. a non-200 answer)

const PAGES = [
  ['fleet', '/', 'Fleet'],
  ['approvals', '/approvals', 'Approvals'],
  ['audit', '/audit', 'Audit'],
  ['models', '/models', 'Models'],
];

// --- elements ----------------------------------------------------------------------------------------

/**
 * A new element: `el('a', {href: '/x', class: 'y', dataset: {asset: 'p'}}, 'text', child)`.
 * Strings among the children become text nodes; null/undefined/false children and props are skipped.
 * A prop whose value is a function and whose name starts with "on" becomes an event listener.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  append(node, children);
  return node;
}

export function setProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Replace every child of `node` (`children` may be nodes or strings). */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

// --- the API -----------------------------------------------------------------------------------------

/** An answer of the API other than 2xx: `status` and the server's own `message`. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let serverOffsetMs = 0;
let sessionPromise = null;

/** The gateway's clock in epoch ms (the browser's, corrected by the Date header of its answers). */
export function serverNow() {
  return Date.now() + serverOffsetMs;
}

function noteServerClock(response) {
  const date = Date.parse(response.headers.get('Date') || '');
  if (!Number.isFinite(date)) return;
  const offset = date - Date.now();
  serverOffsetMs = Math.abs(offset) > CLOCK_SKEW_IGNORED_MS ? offset : 0;
}

/** Go to the login page, coming back here afterwards; never resolves (the page is leaving). */
export function toLogin() {
  window.location.assign('/login?next=' + encodeURIComponent(window.location.pathname));
  return new Promise(() => {});
}

/**
 * A JSON request to the API (`path` below /api/v1). State-changing requests carry the session's CSRF
 * token. A 401 goes to the login page; any other failure throws ApiError with the server's message.
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (STATE_CHANGING.has(method)) {
    headers['Content-Type'] = 'application/json';
    headers['X-CSRF-Token'] = (await session()).csrf;
  }
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, `cannot reach the gateway (${error.message})`);
  }
  noteServerClock(response);
  if (response.status === 401) return toLogin();
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

/** The logged-in user: `{user, role, csrf, site}` (fetched once a page). */
export function session() {
  if (!sessionPromise) {
    sessionPromise = api('/session').catch((error) => {
      sessionPromise = null;
      throw error;
    });
  }
  return sessionPromise;
}

const ROLE_RANK = { viewer: 0, planner: 1, administrator: 2 };

/** Whether `role` includes `needed` (an administrator may do what a planner may). */
export function roleAllows(role, needed) {
  return (ROLE_RANK[role] ?? -1) >= ROLE_RANK[needed];
}

// --- the page frame: navigation and messages ------------------------------------------------------

/**
 * Draw the navigation into `<nav id="nav">` and the message area, and fill in the user.
 * `page` is the key of the current page ("fleet", "approvals" …); `live`: show the event indicator.
 * Resolves to the session.
 */
export async function initPage(page, { live = false } = {}) {
  const nav = document.getElementById('nav');
  const links = el('ul', { class: 'nav-links' });
  for (const [key, href, label] of PAGES) {
    links.append(el('li', {}, el('a', { href, 'aria-current': key === page ? 'page' : null }, label)));
  }
  const user = el('span', { class: 'nav-user', id: 'nav-user' }, '…');
  const logout = el('button', { type: 'button', id: 'logout', class: 'nav-logout', onclick: logOut }, 'Log out');
  fill(
    nav,
    el('a', { class: 'brand', href: '/' }, 'plantwatch'),
    links,
    el('span', { class: 'nav-spacer' }),
    live ? el('span', { id: 'live-indicator', class: 'live live-connecting', role: 'status' }, 'connecting…') : null,
    user,
    logout,
  );
  ensureMessageArea();
  startRelativeClock();
  try {
    const me = await session();
    fill(user, el('strong', {}, me.user), ' ', el('span', { class: 'role' }, me.role));
    user.title = `logged in as ${me.user} (${me.role}) at site ${me.site}`;
    return me;
  } catch (error) {
    showError(error);
    throw error;
  }
}

async function logOut() {
  try {
    const me = await session();
    const response = await fetch('/logout', {
      method: 'POST',
      headers: { 'X-CSRF-Token': me.csrf, 'Content-Type': 'application/json' },
      credentials: 'same-origin',
    });
    if (!response.ok && response.status !== 401) {
      let message = `log out: ${response.status} ${response.statusText}`;
      try {
        message = (await response.json()).error || message;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(response.status, message);
    }
    window.location.assign('/login');
  } catch (error) {
    showError(error);
  }
}

function ensureMessageArea() {
  let area = document.getElementById('messages');
  if (!area) {
    area = el('div', { id: 'messages', class: 'messages', 'aria-live': 'assertive' });
    document.getElementById('nav').after(area);
  }
  return area;
}

/**
 * Show an error in the page's message area (the same text twice shows once, with a count).
 * `context` says what was being done ("loading the fleet").
 */
export function showError(error, context) {
  if (error && error.name === 'AbortError') return;
  const text = (context ? context + ': ' : '') + (error && error.message ? error.message : String(error));
  showMessage(text, 'error');
}

/** A message that is not an error (kind "notice"). */
export function showMessage(text, kind = 'notice') {
  const area = ensureMessageArea();
  for (const existing of area.children) {
    if (existing.dataset.text === text) {
      const count = Number(existing.dataset.count) + 1;
      existing.dataset.count = String(count);
      existing.querySelector('.message-count').textContent = ` (×${count})`;
      return;
    }
  }
  const message = el(
    'div',
    { class: `message message-${kind}`, role: kind === 'error' ? 'alert' : 'status', dataset: { text, count: '1' } },
    el('span', { class: 'message-text' }, text),
    el('span', { class: 'message-count' }),
    el('button', { type: 'button', class: 'message-close', 'aria-label': 'Dismiss', onclick: () => message.remove() }, '×'),
  );
  area.append(message);
}

// --- live updates -------------------------------------------------------------------------------------

/**
 * Listen to /api/v1/events; `handlers` maps an event name ("asset", "document", "agent", "resync") to a
 * function of its parsed data. Keeps the `#live-indicator` up to date. `onReconnect` runs when the
 * stream opens again after a break (events may have been missed: re-read).
 */
export function connectEvents(handlers, { onReconnect } = {}) {
  let source = null;
  let opened = false;
  const indicator = () => document.getElementById('live-indicator');

  const setIndicator = (state, text) => {
    const node = indicator();
    if (!node) return;
    node.className = `live live-${state}`;
    node.textContent = text;
    node.title = state === 'open' ? 'live updates are arriving' : 'live updates are interrupted: reconnecting';
  };

  const connect = () => {
    source = new EventSource(API + '/events');
    source.addEventListener('open', () => {
      setIndicator('open', 'live');
      if (opened && onReconnect) onReconnect();
      opened = true;
    });
    source.addEventListener('error', () => {
      setIndicator('reconnecting', 'reconnecting…');
      if (source.readyState === EventSource.CLOSED) {
        // the browser gave up (an answer other than 200): a lost session goes to the login page
        api('/session').catch(() => {});
        setTimeout(connect, EVENT_RETRY_MS);
      }
    });
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (message) => {
        let data = null;
        try {
          data = message.data ? JSON.parse(message.data) : null;
        } catch (error) {
          showError(error, `live update "${name}" is not JSON`);
          return;
        }
        try {
          handler(data);
        } catch (error) {
          showError(error, `live update "${name}"`);
        }
      });
    }
  };
  connect();
  window.addEventListener('pagehide', () => source && source.close());
}

// --- scheduling ---------------------------------------------------------------------------------------

/**
 * `fn` at most once every `intervalMs`: the first call runs after `intervalMs`, calls meanwhile join it.
 * Calls while `fn`'s promise is still running schedule one more run after it.
 */
export function coalesce(fn, intervalMs) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (running) again = true;
    else if (timer === null) timer = setTimeout(run, intervalMs);
  };
  return schedule;
}

/** A trailing debounce: `fn` runs `waitMs` after the last call. */
export function debounce(fn, waitMs) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

// --- formatting ---------------------------------------------------------------------------------------

/** Epoch ms of an RFC 3339 string or of epoch seconds (a number); null if neither. */
export function toMs(time) {
  if (time === null || time === undefined || time === '') return null;
  if (typeof time === 'number') return Number.isFinite(time) ? time * 1000 : null;
  const ms = Date.parse(time);
  return Number.isFinite(ms) ? ms : null;
}

const pad = (n) => String(n).padStart(2, '0');

/** "2026-03-01 13:00:05" in the browser's local time ("–" for none). */
export function formatTime(time) {
  const ms = toMs(time);
  if (ms === null) return '–';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The time as RFC 3339 UTC with the local time zone named, for a tooltip. */
export function describeTime(time) {
  const ms = toMs(time);
  if (ms === null) return '';
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  return `${formatTime(ms / 1000)} ${zone} (${new Date(ms).toISOString()})`;
}

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago" (or "in 5 min" for a clock ahead of the gateway's). */
export function relativeTime(time) {
  const ms = toMs(time);
  if (ms === null) return 'never';
  const seconds = (serverNow() - ms) / 1000;
  const span = Math.abs(seconds);
  if (span < 5) return 'just now';
  let text;
  if (span < 90) text = `${Math.round(span)} s`;
  else if (span < 90 * 60) text = `${Math.round(span / 60)} min`;
  else if (span < 36 * 3600) text = `${Math.round(span / 3600)} h`;
  else text = `${Math.round(span / 86400)} d`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

/** A `<time>` showing the relative time, kept current, with the absolute time as its tooltip. */
export function timeAgo(time, extraTitle = '') {
  const ms = toMs(time);
  const node = el('time', { class: 'rel-time' });
  if (ms !== null) {
    node.dateTime = new Date(ms).toISOString();
    node.dataset.ms = String(ms);
  }
  node.textContent = relativeTime(time);
  node.title = [describeTime(time), extraTitle].filter(Boolean).join('\n');
  return node;
}

/** A `<time>` showing the absolute local time, RFC 3339 UTC as its tooltip. */
export function timeAt(time) {
  const ms = toMs(time);
  const node = el('time', { class: 'abs-time' }, formatTime(time));
  if (ms !== null) {
    node.dateTime = new Date(ms).toISOString();
    node.title = describeTime(time);
  }
  return node;
}

let relativeClock = null;

function startRelativeClock() {
  if (relativeClock !== null) return;
  relativeClock = setInterval(() => {
    for (const node of document.querySelectorAll('time.rel-time[data-ms]')) {
      const text = relativeTime(Number(node.dataset.ms) / 1000);
      if (node.textContent !== text) node.textContent = text;
    }
  }, RELATIVE_TICK_MS);
}

/** A number with `digits` significant digits ("–" for none); integers of that size stay whole. */
export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || value === '') return '–';
  const x = Number(value);
  if (!Number.isFinite(x)) return String(value);
  if (x === 0) return '0';
  if (Number.isInteger(x) && Math.abs(x) >= 10 ** (digits - 1)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 1e6 || abs < 1e-4) return x.toExponential(digits - 1);
  return String(Number(x.toPrecision(digits)));
}

/** An anomaly score or threshold (scores are scaled so that the warning threshold is about 1). */
export function formatScore(value) {
  return formatFixed(value, 2);
}

/** A number with a fixed count of decimals ("–" for none). */
export function formatFixed(value, decimals = 2) {
  if (value === null || value === undefined || value === '') return '–';
  const x = Number(value);
  return Number.isFinite(x) ? x.toFixed(decimals) : String(value);
}

/** "outer_race" → "outer race" (values stay as sent; this is for reading only). */
export function humanize(text) {
  if (text === null || text === undefined || text === '') return '–';
  return String(text).replace(/_/g, ' ');
}

/** The first 12 hex digits of a hash, the whole hash as tooltip. */
export function shortHash(sha256) {
  if (!sha256) return el('span', { class: 'muted' }, '–');
  return el('code', { class: 'hash', title: sha256 }, String(sha256).slice(0, 12));
}

/** "name 1.2.0 · abcdef123456" for a model reference (or "–"). */
export function modelRef(model) {
  if (!model || !model.name) return el('span', { class: 'muted' }, '–');
  return el('span', { class: 'model-ref' }, `${model.name} ${model.version ?? ''} `, shortHash(model.sha256));
}

const KNOWN_STATES = new Set(['normal', 'warning', 'alarm']);

/** The state as a badge: the word, a colour and a shape (never colour alone). */
export function stateBadge(state, id) {
  const known = KNOWN_STATES.has(state) ? state : 'unknown';
  return el('span', { class: `state state-${known}`, id }, state || 'unknown');
}

/** Update a badge made by stateBadge in place. */
export function setStateBadge(node, state) {
  const known = KNOWN_STATES.has(state) ? state : 'unknown';
  node.className = `state state-${known}`;
  node.textContent = state || 'unknown';
}

/** The agent's connection as a word with a coloured dot. */
export function agentBadge(state) {
  const known = state === 'online' || state === 'offline' ? state : 'unknown';
  return el('span', { class: `agent agent-${known}` }, state || 'unknown');
}

/** A document's status as a badge (words from the server, underscores as spaces). */
export function statusBadge(status) {
  return el('span', { class: `status status-${status}` }, humanize(status));
}

/** "12 % (340 records)" for an agent's buffer, or "–". */
export function bufferText(records, percent) {
  if (records === 0) return 'empty';
  if (records === null || records === undefined) {
    return percent === null || percent === undefined ? '–' : `${formatNumber(percent, 2)} %`;
  }
  const share = percent === null || percent === undefined ? '' : `${formatNumber(percent, 2)} % · `;
  return `${share}${records} ${records === 1 ? 'record' : 'records'}`;
}

/** The buffer as a small bar and text (a buffer filling up is worth seeing from afar). */
export function bufferGauge(records, percent) {
  const text = bufferText(records, percent);
  const node = el('span', { class: 'buffer', title: 'records the agent holds that the broker has not yet taken' });
  if (percent !== null && percent !== undefined && Number.isFinite(Number(percent))) {
    const p = Math.max(0, Math.min(100, Number(percent)));
    const level = p >= 80 ? 'high' : p >= 40 ? 'mid' : 'low';
    const bar = el('span', { class: `buffer-bar buffer-${level}` });
    bar.style.width = `${p}%`;
    node.append(el('span', { class: 'buffer-track', 'aria-hidden': 'true' }, bar));
  }
  node.append(el('span', {}, text));
  return node;
}

// --- the query string ---------------------------------------------------------------------------------

/** The page's query parameters as a plain object. */
export function readQuery() {
  return Object.fromEntries(new URLSearchParams(window.location.search));
}

/** Replace the page's query string (without a reload) by the non-empty `params`. */
export function writeQuery(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  window.history.replaceState(null, '', window.location.pathname + (text ? '?' + text : ''));
}

/** `params` without empty values, as a query string (no leading "?"). */
export function queryString(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(key, String(value));
  }
  return query.toString();
}

/** Options for a <select>: `[value, label]` pairs; keeps the current choice when it is still offered. */
export function setOptions(select, options) {
  const current = select.value;
  const same =
    select.options.length === options.length &&
    options.every(([value, label], i) => select.options[i].value === value && select.options[i].textContent === label);
  if (same) return;
  fill(select, ...options.map(([value, label]) => el('option', { value }, label)));
  select.value = options.some(([value]) => value === current) ? current : options[0]?.[0] ?? '';
}

// The fleet page: every asset worst first, 100 a page, with filters; rows change in place as live
// updates arrive, and the page is read again (at most once a second) so order and filters stay right.

import {
  $,
  agentBadge,
  api,
  bufferGauge,
  coalesce,
  connectEvents,
  debounce,
  el,
  fill,
  formatFixed,
  formatScore,
  humanize,
  initPage,
  queryString,
  readQuery,
  setOptions,
  setStateBadge,
  showError,
  stateBadge,
  timeAgo,
  toMs,
  writeQuery,
} from '/static/app.js';
import { sparkline } from '/static/charts.js';

const PAGE_SIZE = 100;
const REFRESH_MS = 1000; // re-read the page at most this often while live updates arrive
const SEARCH_WAIT_MS = 250; // typing in the search box: wait for a pause
const STATES = ['alarm', 'warning', 'normal'];
const ISO_ZONES = {
  A: 'zone A: newly commissioned machine',
  B: 'zone B: acceptable for unrestricted long-term operation',
  C: 'zone C: unsatisfactory for long-term operation; plan maintenance',
  D: 'zone D: vibration severe enough to cause damage',
};

const table = $('#fleet-table');
const tbody = table.tBodies[0];
const controls = {
  site: $('#filter-site'),
  state: $('#filter-state'),
  failure_mode: $('#filter-mode'),
  q: $('#filter-q'),
};

const initial = readQuery();
const view = {
  filters: { site: initial.site || '', state: initial.state || '', failure_mode: initial.failure_mode || '', q: initial.q || '' },
  offset: Math.max(0, Number.parseInt(initial.offset || '0', 10) || 0),
  total: 0,
  counts: { alarm: 0, warning: 0, normal: 0 },
  sites: [],
};
const rowsByKey = new Map(); // "site/asset" → {tr, cells, row} of the rows on the page
const liveRows = new Map(); // "site/asset" → the newest row from a live update, newer than the last read
const knownStates = new Map(); // "site/asset" → last state seen, to keep the counts right between reads
const pendingEvents = new Map(); // live updates waiting for the next animation frame
let generation = 0; // the newest read: answers of older reads are dropped
let frameRequested = false;
let refreshWhenVisible = false; // a read was due while the page was hidden

const keyOf = (row) => `${row.site}/${row.asset}`;

// --- reading the page ---------------------------------------------------------------------------------

async function load() {
  const mine = ++generation;
  if (document.hidden) {
    refreshWhenVisible = true;
    return;
  }
  const query = queryString({ ...view.filters, offset: view.offset, limit: PAGE_SIZE });
  try {
    const data = await api('/fleet?' + query);
    if (mine !== generation) return;
    render(data);
  } catch (error) {
    if (mine === generation) showError(error, 'reading the fleet');
  }
}

const refreshSoon = coalesce(load, REFRESH_MS);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && refreshWhenVisible) {
    refreshWhenVisible = false;
    load();
  }
});

function render(data) {
  view.total = data.total;
  view.offset = data.offset;
  view.counts = { ...view.counts, ...data.counts };
  view.sites = data.sites || [];
  setOptions(controls.site, withCurrent([['', 'All sites'], ...view.sites.map((s) => [s, s])], view.filters.site));
  setOptions(
    controls.failure_mode,
    withCurrent([['', 'All failure modes'], ...(data.failure_modes || []).map((m) => [m, humanize(m)])], view.filters.failure_mode),
  );
  for (const [name, control] of Object.entries(controls)) if (control.value !== view.filters[name]) control.value = view.filters[name];
  renderRows(data.assets || []);
  renderCounts();
  renderPager(data.assets ? data.assets.length : 0);
}

/** The options, plus the current choice if the server no longer lists it (so the filter stays visible). */
function withCurrent(options, current) {
  return current && !options.some(([value]) => value === current) ? [...options, [current, humanize(current)]] : options;
}

/** Put the rows in the table in the server's order, reusing the rows already there. */
function renderRows(rows) {
  const seen = new Set();
  let cursor = tbody.firstChild;
  for (const fetched of rows) {
    const key = keyOf(fetched);
    seen.add(key);
    const row = mergeLive(fetched);
    knownStates.set(key, row.state);
    let entry = rowsByKey.get(key);
    if (entry) updateRow(entry, row, { trend: true });
    else {
      entry = createRow(row);
      rowsByKey.set(key, entry);
    }
    if (entry.tr === cursor) cursor = cursor.nextSibling;
    else tbody.insertBefore(entry.tr, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
  for (const key of rowsByKey.keys()) if (!seen.has(key)) rowsByKey.delete(key);
  if (!rows.length) {
    const filtered = Object.values(view.filters).some(Boolean);
    tbody.append(
      el('tr', {}, el('td', { class: 'empty', colspan: 8 }, filtered ? 'No asset matches these filters.' : 'No asset has sent data yet.')),
    );
  }
}

/** A row read from the server, with a newer live update laid over it (the read may have started earlier). */
function mergeLive(row) {
  const key = keyOf(row);
  const live = liveRows.get(key);
  if (!live) return row;
  if ((toMs(live.received_at) ?? 0) > (toMs(row.received_at) ?? 0)) return { ...row, ...live, trend: row.trend };
  liveRows.delete(key);
  return row;
}

// --- one row ------------------------------------------------------------------------------------------

function createRow(row) {
  const cells = {
    asset: el('td'),
    state: el('td'),
    mode: el('td'),
    score: el('td'),
    zone: el('td', { class: 'nowrap' }),
    last: el('td', { class: 'nowrap' }),
    agent: el('td', { class: 'nowrap' }),
    buffer: el('td', { class: 'nowrap' }),
  };
  const badge = stateBadge(row.state);
  cells.state.append(badge);
  const href = `/assets/${encodeURIComponent(row.site)}/${encodeURIComponent(row.asset)}`;
  cells.asset.append(el('a', { class: 'asset-link', href }, row.asset));
  if (view.sites.length > 1) cells.asset.append(' ', el('span', { class: 'muted' }, row.site));
  const tr = el('tr', { dataset: { asset: row.asset, site: row.site, state: row.state } }, Object.values(cells));
  const entry = { tr, cells, badge, row: {} };
  updateRow(entry, row, { trend: true });
  return entry;
}

/** Bring a row's cells up to date; only what changed is touched. */
function updateRow(entry, row, { trend }) {
  const old = entry.row;
  const { cells, tr } = entry;
  if (old.state !== row.state) {
    setStateBadge(entry.badge, row.state);
    tr.dataset.state = row.state;
    if (old.state !== undefined) flash(tr);
  }
  if (old.failure_mode !== row.failure_mode || old.confidence !== row.confidence) {
    const healthy = !row.failure_mode || row.failure_mode === 'healthy';
    fill(
      cells.mode,
      el('span', { class: healthy ? 'muted' : '' }, humanize(row.failure_mode)),
      !healthy && Number.isFinite(row.confidence) ? el('span', { class: 'muted' }, ` ${Math.round(row.confidence * 100)} %`) : null,
    );
  }
  const trendChanged = trend && row.trend && JSON.stringify(row.trend) !== JSON.stringify(old.trend);
  if (old.score !== row.score || old.threshold !== row.threshold || old.state !== row.state || trendChanged) {
    const values = trend && row.trend ? row.trend : old.trend || [];
    fill(
      cells.score,
      el(
        'span',
        { class: 'score' },
        el('span', { class: 'num', title: 'anomaly score / warning threshold' }, `${formatScore(row.score)} / ${formatScore(row.threshold)}`),
        sparkline(values, { threshold: row.threshold, state: row.state }),
      ),
    );
  }
  if (old.iso_zone !== row.iso_zone || old.velocity_mm_s !== row.velocity_mm_s) {
    fill(
      cells.zone,
      row.iso_zone ? el('span', { class: `zone zone-${row.iso_zone}`, title: `ISO 10816 ${ISO_ZONES[row.iso_zone] || row.iso_zone}` }, row.iso_zone) : el('span', { class: 'muted' }, '–'),
      Number.isFinite(row.velocity_mm_s) ? ` ${formatFixed(row.velocity_mm_s, 2)} mm/s` : '',
    );
  }
  if (old.received_at !== row.received_at || old.measured_at !== row.measured_at) {
    // "last data": when the gateway got it (its own clock); the measurement time is in the tooltip
    fill(cells.last, timeAgo(row.received_at || row.measured_at, row.measured_at ? `measured by the agent: ${row.measured_at}` : ''));
  }
  if (old.agent_state !== row.agent_state || old.agent !== row.agent) {
    fill(cells.agent, agentBadge(row.agent_state), ' ', el('span', { class: 'muted' }, row.agent || ''));
    cells.agent.title = `agent ${row.agent || '?'}`;
  }
  if (old.buffered_records !== row.buffered_records || old.buffer_percent !== row.buffer_percent) {
    fill(cells.buffer, bufferGauge(row.buffered_records, row.buffer_percent));
  }
  entry.row = { ...row, trend: trend && row.trend ? row.trend : old.trend };
}

function flash(tr) {
  tr.classList.remove('flash');
  void tr.offsetWidth; // restart the animation
  tr.classList.add('flash');
}

// --- header counts and pager ----------------------------------------------------------------------

function renderCounts() {
  const box = $('#fleet-counts');
  if (!box.children.length) {
    for (const state of STATES) {
      box.append(
        el(
          'button',
          { type: 'button', class: 'count', dataset: { state }, title: `show only assets in ${state}`, onclick: () => toggleState(state) },
          stateBadge(state),
          el('strong', { class: 'count-value' }, '0'),
        ),
      );
    }
    box.append(el('span', { class: 'muted count-total' }));
  }
  let sum = 0;
  for (const button of box.querySelectorAll('button.count')) {
    const n = Math.max(0, view.counts[button.dataset.state] || 0);
    sum += n;
    const value = button.querySelector('.count-value');
    if (value.textContent !== String(n)) value.textContent = String(n);
    button.setAttribute('aria-pressed', String(view.filters.state === button.dataset.state));
    button.setAttribute('aria-label', `${n} assets in ${button.dataset.state}`);
  }
  box.querySelector('.count-total').textContent = `of ${sum} assets`;
}

function renderPager(shown) {
  const first = shown ? view.offset + 1 : 0;
  $('#page-info').textContent = shown ? `${first}–${view.offset + shown} of ${view.total}` : `0 of ${view.total}`;
  $('#page-prev').disabled = view.offset <= 0;
  $('#page-next').disabled = view.offset + PAGE_SIZE >= view.total;
}

// --- filters ------------------------------------------------------------------------------------------

function setFilter(name, value) {
  if (view.filters[name] === value) return;
  view.filters[name] = value;
  view.offset = 0;
  writeQuery({ ...view.filters, offset: view.offset || '' });
  renderCounts();
  load();
}

function toggleState(state) {
  const value = view.filters.state === state ? '' : state;
  controls.state.value = value;
  setFilter('state', value);
}

function page(delta) {
  view.offset = Math.max(0, view.offset + delta * PAGE_SIZE);
  writeQuery({ ...view.filters, offset: view.offset || '' });
  load();
}

/** Whether a live row counts under the filters other than the state (the header counts ignore the state). */
function countsUnderFilters(row) {
  const { site, failure_mode: mode, q } = view.filters;
  return (!site || row.site === site) && (!mode || row.failure_mode === mode) && (!q || String(row.asset).includes(q));
}

// --- live updates -------------------------------------------------------------------------------------

function onAsset(row) {
  if (!row || !row.asset) return;
  pendingEvents.set(keyOf(row), row);
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(applyEvents);
  }
  refreshSoon();
}

/** The live updates of one frame, applied at once: row cells, then the counts. */
function applyEvents() {
  frameRequested = false;
  let countsChanged = false;
  for (const [key, row] of pendingEvents) {
    liveRows.set(key, row);
    const before = knownStates.get(key);
    if (before !== undefined && before !== row.state && countsUnderFilters(row)) {
      view.counts[before] = (view.counts[before] || 0) - 1;
      view.counts[row.state] = (view.counts[row.state] || 0) + 1;
      countsChanged = true;
    }
    knownStates.set(key, row.state);
    const entry = rowsByKey.get(key);
    if (entry) updateRow(entry, { ...entry.row, ...row }, { trend: false });
  }
  pendingEvents.clear();
  if (countsChanged) renderCounts();
}

// --- start ----------------------------------------------------------------------------------------

for (const name of ['site', 'state', 'failure_mode']) {
  controls[name].value = view.filters[name];
  controls[name].addEventListener('change', () => setFilter(name, controls[name].value));
}
controls.q.value = view.filters.q;
controls.q.addEventListener('input', debounce(() => setFilter('q', controls.q.value.trim()), SEARCH_WAIT_MS));
$('#fleet-filters').addEventListener('submit', (event) => {
  event.preventDefault();
  setFilter('q', controls.q.value.trim());
});
$('#page-prev').addEventListener('click', () => page(-1));
$('#page-next').addEventListener('click', () => page(1));

renderCounts();
load();
initPage('fleet', { live: true }).then(
  () => connectEvents({ asset: onAsset, resync: () => load() }, { onReconnect: () => load() }),
  () => {},
);

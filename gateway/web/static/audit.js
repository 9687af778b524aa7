// The audit page: the ledger newest first with filters, paging and export; the dead letters, which an
// administrator can replay.

import {
  $,
  api,
  el,
  fill,
  formatScore,
  humanize,
  initPage,
  queryString,
  readQuery,
  roleAllows,
  showError,
  stateBadge,
  timeAt,
  writeQuery,
} from '/static/app.js';

const PAGE_SIZE = 200;
const KNOWN_DECISIONS = [
  'created',
  'would_create',
  'awaiting_approval',
  'approved',
  'rejected',
  'suppress',
  'repeat',
  'escalated',
  'refused',
  'dead_letter',
  'replayed',
  'mode_changed',
  'hold',
  'erp_created',
  'erp_refused',
  'recommend',
  'observe',
];
const PAYLOAD_PREVIEW_CHARS = 400;

const form = $('#audit-filters');
const inputs = {
  asset: $('#audit-asset'),
  decision: $('#audit-decision'),
  user: $('#audit-user'),
  since: $('#audit-since'),
  until: $('#audit-until'),
};
const decisions = new Set(KNOWN_DECISIONS);
let offset = 0;
let role = 'viewer';

// --- the ledger ---------------------------------------------------------------------------------------

/** A UTC day "2026-03-01" as RFC 3339: its start, or (`end`) the start of the next day (the server's until is exclusive). */
function dayToRfc3339(day, end) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return '';
  const ms = Date.parse(`${day}T00:00:00Z`) + (end ? 86_400_000 : 0);
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** The API's filters from the form. */
function filters() {
  return {
    asset: inputs.asset.value.trim(),
    decision: inputs.decision.value.trim(),
    user: inputs.user.value.trim(),
    since: dayToRfc3339(inputs.since.value, false),
    until: dayToRfc3339(inputs.until.value, true),
  };
}

function updateExportLinks() {
  const query = queryString(filters());
  $('#export-csv').href = `/api/v1/ledger?${query ? query + '&' : ''}format=csv`;
  $('#export-json').href = `/api/v1/ledger?${query ? query + '&' : ''}format=json`;
}

async function loadLedger() {
  const since = inputs.since.value;
  const until = inputs.until.value;
  if (since && until && until < since) {
    showError(new Error('the "To" day is before the "From" day'), 'filters');
    return;
  }
  updateExportLinks();
  writeQuery({ asset: inputs.asset.value.trim(), decision: inputs.decision.value.trim(), user: inputs.user.value.trim(), since, until, offset: offset || '' });
  const tbody = $('#ledger-table').tBodies[0];
  let rows;
  try {
    rows = await api('/ledger?' + queryString({ ...filters(), limit: PAGE_SIZE, offset }));
  } catch (error) {
    fill(tbody, el('tr', {}, el('td', { class: 'empty', colspan: 9 }, 'The ledger could not be read (see the message above).')));
    showError(error, 'reading the ledger');
    return;
  }
  fill(tbody, rows.length ? rows.map(ledgerRow) : el('tr', {}, el('td', { class: 'empty', colspan: 9 }, 'No ledger entry matches these filters.')));
  for (const row of rows) if (row.decision && !decisions.has(row.decision)) decisions.add(row.decision);
  fill($('#audit-decisions'), [...decisions].sort().map((d) => el('option', { value: d })));
  $('#audit-page-info').textContent = rows.length ? `entries ${offset + 1}–${offset + rows.length}, newest first` : '';
  $('#audit-prev').disabled = offset <= 0;
  $('#audit-next').disabled = rows.length < PAGE_SIZE;
}

function ledgerRow(row) {
  const assetCell =
    row.site && row.asset
      ? el('a', { href: `/assets/${encodeURIComponent(row.site)}/${encodeURIComponent(row.asset)}` }, row.asset)
      : row.asset || '–';
  const model = row.model_version ? `${row.model_name || ''} ${row.model_version}`.trim() : '–';
  const score = Number.isFinite(row.score) ? `score ${formatScore(row.score)}${Number.isFinite(row.threshold) ? ` / ${formatScore(row.threshold)}` : ''}` : '';
  return el(
    'tr',
    { dataset: { id: row.id, decision: row.decision } },
    el('td', { class: 'nowrap' }, timeAt(row.at)),
    el('td', { class: 'nowrap' }, el('code', { class: 'decision' }, row.decision), row.kind && row.kind !== 'notification' ? el('span', { class: 'muted' }, ` (${row.kind})`) : null),
    el('td', { class: 'nowrap' }, assetCell),
    el('td', {}, humanize(row.failure_mode)),
    el('td', {}, row.state ? stateBadge(row.state) : '–'),
    el('td', {}, row.actor || el('span', { class: 'muted' }, 'gateway')),
    el(
      'td',
      { class: 'wrap', title: [score, row.mode ? `mode ${row.mode}` : '', row.priority ? `priority ${row.priority}` : '', row.correlation_id ? `document ${row.correlation_id}` : ''].filter(Boolean).join('\n') },
      row.reason ? el('strong', {}, row.reason) : null,
      row.reason && row.detail ? ' — ' : null,
      row.detail ? el('span', {}, row.detail) : null,
      !row.reason && !row.detail ? el('span', { class: 'muted' }, score || '–') : null,
    ),
    el('td', {}, row.erp_number ? el('code', {}, row.erp_number) : '–'),
    el('td', { class: 'nowrap' }, model),
  );
}

// --- dead letters -----------------------------------------------------------------------------------

async function loadDeadLetters() {
  const tbody = $('#dead-letters').tBodies[0];
  let letters;
  try {
    letters = await api('/dead-letters');
  } catch (error) {
    fill(tbody, el('tr', {}, el('td', { class: 'empty', colspan: 6 }, 'The dead letters could not be read (see the message above).')));
    showError(error, 'reading the dead letters');
    return;
  }
  fill(tbody, letters.length ? letters.map(deadLetterRow) : el('tr', {}, el('td', { class: 'empty', colspan: 6 }, 'No dead letters: every message was used.')));
}

function deadLetterRow(letter) {
  const action = el('td', { class: 'replay-cell' });
  if (roleAllows(role, 'administrator')) {
    const button = el('button', { type: 'button', class: 'replay action' }, 'Replay');
    button.addEventListener('click', () => replay(letter, button, action));
    action.append(button);
  } else {
    action.append(el('span', { class: 'muted' }, 'administrators only'));
  }
  const payload = typeof letter.payload === 'string' ? letter.payload : letter.payload ? JSON.stringify(letter.payload) : '';
  return el(
    'tr',
    { dataset: { id: letter.id } },
    el('td', { class: 'num' }, String(letter.id)),
    el('td', { class: 'nowrap' }, timeAt(letter.at ?? letter.received_at)),
    el('td', {}, letter.source || '–'),
    el('td', { class: 'wrap' }, letter.topic || (letter.correlation_id ? el('span', {}, 'document ', el('code', {}, letter.correlation_id)) : '–')),
    el('td', { class: 'wrap', title: payload ? `payload: ${payload.slice(0, PAYLOAD_PREVIEW_CHARS)}` : '' }, letter.reason || '–'),
    action,
  );
}

async function replay(letter, button, cell) {
  button.disabled = true;
  for (const old of cell.querySelectorAll('.outcome, .error')) old.remove();
  try {
    const answer = await api(`/dead-letters/${encodeURIComponent(letter.id)}/replay`, { method: 'POST', body: {} });
    cell.append(el('span', { class: 'outcome' }, ` outcome: ${answer.outcome ?? 'done'}`));
    button.textContent = 'Replayed';
  } catch (error) {
    button.disabled = false;
    cell.append(el('span', { class: 'error', role: 'alert' }, ` ${error.message}`));
    showError(error, `replaying dead letter ${letter.id}`);
  }
}

// --- start ----------------------------------------------------------------------------------------

const initial = readQuery();
for (const name of Object.keys(inputs)) inputs[name].value = initial[name] || '';
offset = Math.max(0, Number.parseInt(initial.offset || '0', 10) || 0);

form.addEventListener('submit', (event) => {
  event.preventDefault();
  offset = 0;
  loadLedger();
});
for (const input of Object.values(inputs)) input.addEventListener('change', updateExportLinks);
$('#audit-prev').addEventListener('click', () => {
  offset = Math.max(0, offset - PAGE_SIZE);
  loadLedger();
});
$('#audit-next').addEventListener('click', () => {
  offset += PAGE_SIZE;
  loadLedger();
});

loadLedger();
initPage('audit').then(
  (me) => {
    role = me.role;
    loadDeadLetters();
  },
  () => {},
);

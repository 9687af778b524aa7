// The models page: per agent its connection, models and their evaluation figures, buffer; per asset the
// drift from its commissioning baseline. Live agent statuses replace their rows.

import {
  $,
  agentBadge,
  api,
  bufferGauge,
  connectEvents,
  el,
  fill,
  formatNumber,
  humanize,
  initPage,
  modelRef,
  showError,
  timeAgo,
} from '/static/app.js';

const LIST_PREVIEW = 6; // items of a list shown in an evaluation figure before "…"

const agents = new Map(); // "site/agent" → agents row
let frameRequested = false;

const keyOf = (agent) => `${agent.site}/${agent.agent}`;

async function load() {
  try {
    const rows = await api('/agents');
    agents.clear();
    for (const row of rows) agents.set(keyOf(row), row);
    render();
  } catch (error) {
    showError(error, 'reading the agents');
  }
}

function render() {
  frameRequested = false;
  const rows = [...agents.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  renderModels(rows);
  renderDrift(rows);
}

// --- models per agent -------------------------------------------------------------------------------

function renderModels(rows) {
  const tbody = $('#models-table').tBodies[0];
  if (!rows.length) {
    fill(tbody, el('tr', {}, el('td', { class: 'empty', colspan: 6 }, 'No agent has sent its status yet.')));
    return;
  }
  fill(
    tbody,
    rows.map((agent) =>
      el(
        'tr',
        { dataset: { agent: agent.agent, site: agent.site, state: agent.state } },
        el('td', {}, el('strong', {}, agent.agent), el('span', { class: 'muted' }, ` ${agent.site}`)),
        el('td', { class: 'nowrap' }, agentBadge(agent.state), agent.status_at ? el('span', { class: 'muted' }, ' status ', timeAgo(agent.status_at)) : null),
        el('td', {}, modelRef(agent.model)),
        el('td', {}, modelRef(agent.classifier)),
        el('td', {}, evaluation('anomaly model', agent.model) || evaluation('classifier', agent.classifier) ? [evaluation('anomaly model', agent.model), evaluation('classifier', agent.classifier)] : el('span', { class: 'muted' }, 'no figures sent')),
        el('td', {}, bufferGauge(agent.buffered_records, agent.buffer_percent)),
      ),
    ),
  );
}

/** A model's evaluation dict as compact "key: value" pairs (nested keys joined with dots). */
function evaluation(title, model) {
  const figures = model && model.evaluation;
  if (!figures || typeof figures !== 'object') return null;
  const pairs = flatten(figures);
  if (!pairs.length) return null;
  return el(
    'div',
    {},
    el('span', { class: 'evaluation-of' }, title),
    el('dl', { class: 'evaluation' }, pairs.map(([key, value]) => el('div', {}, el('dt', {}, key), el('dd', {}, figure(value))))),
  );
}

/** `{a: {b: 1}, c: 2}` → `[["a.b", 1], ["c", 2]]`. */
export function flatten(value, prefix = '', out = []) {
  for (const [key, inner] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (inner && typeof inner === 'object' && !Array.isArray(inner)) flatten(inner, name, out);
    else out.push([name, inner]);
  }
  return out;
}

/** One figure: numbers to 3 significant digits, lists shortened, yes/no for booleans. */
function figure(value) {
  if (typeof value === 'number') return formatNumber(value, 3);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (value === null || value === undefined) return '–';
  if (Array.isArray(value)) {
    const shown = value.slice(0, LIST_PREVIEW).map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : figure(v)));
    return `[${shown.join(', ')}${value.length > LIST_PREVIEW ? `, … ${value.length} in all` : ''}]`;
  }
  return String(value);
}

// --- drift per asset --------------------------------------------------------------------------------

function renderDrift(rows) {
  const table = $('#drift-table');
  for (const tbody of [...table.tBodies]) tbody.remove();
  const withAssets = rows.filter((agent) => agent.assets && Object.keys(agent.assets).length);
  if (!withAssets.length) {
    table.append(el('tbody', {}, el('tr', {}, el('td', { class: 'empty', colspan: 6 }, 'No agent has reported drift yet.'))));
    return;
  }
  for (const agent of withAssets) {
    // one group of rows per agent, headed by its name
    const group = el(
      'tbody',
      { class: 'agent-drift', dataset: { agent: agent.agent, site: agent.site } },
      el('tr', {}, el('th', { class: 'group', colspan: 6, scope: 'rowgroup' }, `Agent ${agent.agent}`, el('span', { class: 'muted' }, ` · site ${agent.site}`))),
    );
    for (const [asset, view] of Object.entries(agent.assets).sort(([a], [b]) => a.localeCompare(b))) {
      group.append(driftRow(agent, asset, view || {}));
    }
    table.append(group);
  }
}

function driftRow(agent, asset, view) {
  const href = `/assets/${encodeURIComponent(agent.site)}/${encodeURIComponent(asset)}`;
  const drifting = view.drifting === true;
  const known = typeof view.drifting === 'boolean';
  return el(
    'tr',
    { dataset: { asset, drifting: String(drifting) } },
    el('td', {}, el('a', { href }, asset)),
    el('td', { class: 'nowrap' }, formatNumber(view.drift), view.drift_feature ? el('span', { class: 'muted' }, ` (${humanize(view.drift_feature)})`) : null),
    el('td', {}, known ? el('span', { class: `flag ${drifting ? 'flag-yes' : 'flag-no'}` }, drifting ? 'yes: drifting' : 'no') : '–'),
    el('td', {}, commissioning(view.commissioning)),
    el('td', { class: 'num' }, formatNumber(view.warning_threshold)),
    el('td', { class: 'num' }, formatNumber(view.alarm_threshold)),
  );
}

/** The commissioning state as words: a flag, a progress figure or a small dict. */
function commissioning(value) {
  if (value === true) return 'yes: learning the baseline';
  if (value === false) return 'no: done';
  if (value && typeof value === 'object') return flatten(value).map(([key, inner]) => `${key}: ${figure(inner)}`).join(', ');
  return figure(value);
}

// --- live updates -------------------------------------------------------------------------------------

function onAgent(agent) {
  if (!agent || !agent.agent) return;
  agents.set(keyOf(agent), agent);
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}

load();
initPage('models', { live: true }).then(
  () => connectEvents({ agent: onAgent, resync: () => load() }, { onReconnect: () => load() }),
  () => {},
);

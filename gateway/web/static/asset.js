// The asset page: state and summary, the score and key features over time, the latest spectra with the
// machine's characteristic frequencies marked, the evidence of the last alert, its ERP documents and model.

import {
  $,
  agentBadge,
  api,
  ApiError,
  bufferText,
  coalesce,
  connectEvents,
  el,
  fill,
  formatFixed,
  formatNumber,
  formatScore,
  humanize,
  initPage,
  modelRef,
  setStateBadge,
  showError,
  statusBadge,
  timeAgo,
  timeAt,
  toMs,
} from '/static/app.js';
import { lineChart, markerLegend, spectrumChart, spectrumMarkers } from '/static/charts.js';

const REFRESH_MS = 1000; // live updates for this asset re-read the page at most this often

/** The features drawn as small multiples: key in the history, title, unit, other names in the baseline. */
const FEATURES = [
  ['velocity_mm_s', 'Vibration velocity (RMS)', 'mm/s', ['velocity_rms_mm_s']],
  ['kurtosis', 'Kurtosis (impulsiveness)', '', []],
  ['env_bpfo_g', 'Envelope at BPFO (outer race)', 'g', []],
  ['env_bpfi_g', 'Envelope at BPFI (inner race)', 'g', []],
  ['temperature_c', 'Temperature', '°C', []],
];
const ZOOM_MARGIN = 1.15; // the zoomed spectrum ends this far beyond the highest marker
const NO_SPECTRUM = 'No spectrum snapshot has arrived for this asset yet: agents send one with an alert and from time to time.';

const [site, asset] = window.location.pathname.split('/').slice(2, 4).map(decodeURIComponent);
const assetPath = `/assets/${encodeURIComponent(site)}/${encodeURIComponent(asset)}`;
let documents = [];
let shownSpectrum = null; // the message id of the snapshot drawn, so an unchanged one is not redrawn
let spectrumView = null; // {part, markers} of the acceleration spectrum drawn, for the zoom button
const zoomButton = $('#spectrum-zoom');

document.title = `${asset} · plantwatch`;
$('#asset-name').textContent = asset;
$('#asset-site').textContent = `site ${site}`;

async function load() {
  try {
    render(await api(assetPath));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      fill($('#asset-summary'), el('div', {}, el('dt', {}, 'Not found'), el('dd', {}, `No data from ${asset} at site ${site}.`)));
    }
    showError(error, `reading ${asset}`);
  }
}

function render(data) {
  const latest = data.latest || {};
  setStateBadge($('#asset-state'), latest.state);
  renderSummary(latest, data.thresholds || {});
  renderScore(data.history || [], data.thresholds || {}, latest);
  renderFeatures(data.history || [], data.baseline || {});
  renderSpectra(data.spectrum);
  renderEvidence(data.evidence || [], data.evidence_at);
  documents = data.documents || [];
  renderDocuments();
  renderModel(data);
}

// --- summary ----------------------------------------------------------------------------------------

function fact(term, value, sub) {
  return el('div', {}, el('dt', {}, term), el('dd', {}, value, sub ? el('span', { class: 'sub' }, sub) : null));
}

function renderSummary(latest, thresholds) {
  const warning = thresholds.warning ?? latest.threshold;
  const healthy = !latest.failure_mode || latest.failure_mode === 'healthy';
  const thresholdText = [
    Number.isFinite(warning) ? `warning at ${formatScore(warning)}` : null,
    Number.isFinite(thresholds.alarm) ? `alarm at ${formatScore(thresholds.alarm)}` : null,
  ]
    .filter(Boolean)
    .join(' · ');
  fill(
    $('#asset-summary'),
    fact('Failure mode', humanize(latest.failure_mode), healthy || !Number.isFinite(latest.confidence) ? null : `confidence ${Math.round(latest.confidence * 100)} %`),
    fact('Anomaly score', formatScore(latest.score), thresholdText || null),
    fact(
      'ISO 10816 zone',
      latest.iso_zone ? el('span', { class: `zone zone-${latest.iso_zone}` }, latest.iso_zone) : '–',
      Number.isFinite(latest.velocity_mm_s) ? `velocity ${formatFixed(latest.velocity_mm_s, 2)} mm/s RMS` : null,
    ),
    fact('Last data', timeAgo(latest.received_at || latest.measured_at), latest.measured_at ? el('span', {}, 'measured ', timeAt(latest.measured_at)) : null),
    fact(
      'Agent',
      el('span', {}, latest.agent || '–', ' ', agentBadge(latest.agent_state)),
      latest.buffered_records != null || latest.buffer_percent != null ? `buffer ${bufferText(latest.buffered_records, latest.buffer_percent)}` : null,
    ),
  );
}

// --- charts over time -------------------------------------------------------------------------------

function renderScore(history, thresholds, latest) {
  const warning = thresholds.warning ?? latest.threshold;
  const alarm = thresholds.alarm;
  const lines = [];
  const bands = [];
  if (Number.isFinite(warning)) {
    lines.push({ value: warning, label: `warning ${formatScore(warning)}`, className: 'hline-warning', dashed: true });
    bands.push({ from: warning, to: Number.isFinite(alarm) ? alarm : Infinity, className: 'band-warning' });
  }
  if (Number.isFinite(alarm)) {
    lines.push({ value: alarm, label: `alarm ${formatScore(alarm)}`, className: 'hline-alarm' });
    bands.push({ from: alarm, to: Infinity, className: 'band-alarm' });
  }
  lineChart($('#score-chart'), {
    series: [{ points: history.map((h) => [toMs(h.t), h.score]), className: 'series-score', label: 'anomaly score' }],
    lines,
    bands,
    height: 240,
    unit: 'score',
    label: `anomaly score of ${asset} over time, with its warning and alarm thresholds`,
    empty: 'No score history yet.',
  });
}

/** A baseline value: a number, or the median of a summary ({median: …}). */
function baselineOf(baseline, key, aliases) {
  for (const name of [key, ...aliases]) {
    const value = baseline[name];
    if (Number.isFinite(value)) return value;
    if (value && Number.isFinite(value.median)) return value.median;
  }
  return null;
}

function renderFeatures(history, baseline) {
  const box = $('#feature-charts');
  const shown = FEATURES.filter(([key]) => history.some((h) => h.features && Number.isFinite(h.features[key])));
  const keys = shown.map(([key]) => key).join(',');
  if (box.dataset.keys !== keys) {
    // the set of features changed: new figures (otherwise the charts are redrawn in place)
    box.dataset.keys = keys;
    fill(
      box,
      shown.length
        ? shown.map(([key, title, unit]) =>
            el('figure', { dataset: { feature: key } }, el('h3', {}, unit ? `${title} (${unit})` : title), el('div', { class: 'chart-box' })),
          )
        : el('p', { class: 'chart-note' }, 'No feature history yet.'),
    );
  }
  for (const [key, title, unit, aliases] of shown) {
    const container = box.querySelector(`figure[data-feature="${key}"] .chart-box`);
    const median = baselineOf(baseline, key, aliases);
    lineChart(container, {
      series: [{ points: history.map((h) => [toMs(h.t), h.features ? h.features[key] : NaN]), className: 'series-feature', label: title }],
      lines: Number.isFinite(median) ? [{ value: median, label: `baseline ${formatNumber(median)}`, className: 'hline-baseline', dashed: true }] : [],
      height: 140,
      compact: true,
      unit,
      label: `${title} over time${Number.isFinite(median) ? ', with its baseline median' : ''}`,
    });
  }
}

// --- spectra ------------------------------------------------------------------------------------------

function renderSpectra(snapshot) {
  const caption = $('#spectrum-caption');
  if (!snapshot) {
    shownSpectrum = null;
    spectrumView = null;
    zoomButton.hidden = true;
    for (const id of ['#spectrum-chart', '#envelope-chart']) fill($(id), el('p', { class: 'chart-note' }, NO_SPECTRUM));
    fill(caption);
    fill($('#marker-legend'));
    return;
  }
  const identity = `${snapshot.message_id}@${snapshot.measured_at}`;
  if (identity === shownSpectrum) return;
  shownSpectrum = identity;
  const markers = spectrumMarkers(snapshot.markers_hz, snapshot.shaft_hz);
  const shaft = Number(snapshot.shaft_hz);
  fill(
    caption,
    'Measured ',
    timeAt(snapshot.measured_at),
    ' (',
    timeAgo(snapshot.measured_at),
    ')',
    Number.isFinite(shaft) ? ` · shaft speed ${shaft.toFixed(2)} Hz (${Math.round(shaft * 60)} rpm)` : '',
  );
  spectrumView = { part: snapshot.spectrum, markers };
  drawAcceleration();
  spectrumChart($('#envelope-chart'), {
    part: snapshot.envelope,
    markers,
    label: `envelope spectrum of ${asset} with bearing defect frequencies marked`,
    empty: 'This snapshot carries no envelope spectrum.',
  });
  fill($('#marker-legend'), markerLegend(markers));
}

/**
 * The acceleration spectrum, whole or (zoom button pressed) up to just beyond its highest marker: a
 * spectrum to several kHz puts every marker in its first few millimetres.
 */
function drawAcceleration() {
  const { part, markers } = spectrumView;
  const bins = part && Array.isArray(part.bins) ? part.bins.length : 0;
  const fullHz = bins && part.df_hz > 0 ? (bins - 1) * part.df_hz : 0;
  const zoomHz = markers.length ? Math.max(...markers.map((m) => m.hz)) * ZOOM_MARGIN : 0;
  const zoomable = zoomHz > 0 && zoomHz < fullHz / 2;
  zoomButton.hidden = !zoomable;
  const zoomed = zoomable && zoomButton.getAttribute('aria-pressed') === 'true';
  zoomButton.textContent = zoomed ? `Show all ${Math.round(fullHz)} Hz` : `Zoom to 0–${Math.round(zoomHz)} Hz (the markers)`;
  spectrumChart($('#spectrum-chart'), {
    part,
    markers,
    maxHz: zoomed ? zoomHz : undefined,
    label: `acceleration spectrum of ${asset} with characteristic frequencies marked`,
    empty: 'This snapshot carries no acceleration spectrum.',
  });
}

zoomButton.addEventListener('click', () => {
  zoomButton.setAttribute('aria-pressed', String(zoomButton.getAttribute('aria-pressed') !== 'true'));
  if (spectrumView) drawAcceleration();
});

// --- evidence, documents, model ---------------------------------------------------------------------

function renderEvidence(sentences, at) {
  fill(
    $('#evidence'),
    sentences.length ? sentences.map((sentence) => el('li', {}, sentence)) : el('li', { class: 'muted' }, 'No alert has given evidence yet.'),
  );
  fill($('#evidence-at'), at ? el('span', {}, 'From the alert of ', timeAt(at), ' (', timeAgo(at), ')') : '');
}

function renderDocuments() {
  const tbody = $('#asset-documents').tBodies[0];
  if (!documents.length) {
    fill(tbody, el('tr', {}, el('td', { class: 'empty', colspan: 8 }, 'No ERP document for this asset.')));
    return;
  }
  fill(
    tbody,
    documents.map((doc) =>
      el(
        'tr',
        { dataset: { correlationId: doc.correlation_id } },
        el('td', {}, humanize(doc.kind)),
        el('td', {}, statusBadge(doc.status)),
        el('td', {}, doc.number ? el('code', {}, doc.number) : el('span', { class: 'muted' }, '–')),
        el('td', {}, doc.priority ?? '–'),
        el('td', { class: 'nowrap' }, timeAt(doc.opened_at)),
        el('td', { title: doc.decision_reason || '' }, doc.decided_by || '–', doc.decision_reason ? el('span', { class: 'muted' }, ` (${doc.decision_reason})`) : null),
        el('td', {}, doc.outcome || '–'),
        el('td', { class: 'wrap' }, doc.last_error || '–'),
      ),
    ),
  );
}

/** A live document for this asset: replace or add it, newest first. */
function onDocument(doc) {
  if (!doc) {
    refreshSoon();
    return;
  }
  if (doc.site !== site || doc.asset !== asset) return;
  documents = [doc, ...documents.filter((d) => d.correlation_id !== doc.correlation_id)].sort((a, b) => (b.opened_at || 0) - (a.opened_at || 0));
  renderDocuments();
}

function renderModel(data) {
  const drift = data.drift;
  const driftValue = drift
    ? el(
        'span',
        {},
        `${formatNumber(drift.drift)}${drift.drift_feature ? ` (${humanize(drift.drift_feature)})` : ''} `,
        el('span', { class: `flag ${drift.drifting ? 'flag-yes' : 'flag-no'}` }, drift.drifting ? 'drifting' : 'not drifting'),
      )
    : el('span', { class: 'muted' }, 'no drift figure yet');
  fill(
    $('#asset-model'),
    el(
      'dl',
      { class: 'kv' },
      el('dt', {}, 'Anomaly model'),
      el('dd', {}, modelRef(data.model)),
      el('dt', {}, 'Failure-mode classifier'),
      el('dd', {}, modelRef(data.classifier)),
      el('dt', {}, 'Drift'),
      el('dd', {}, driftValue),
    ),
  );
}

// --- start ----------------------------------------------------------------------------------------

const refreshSoon = coalesce(load, REFRESH_MS);

function onAsset(row) {
  if (!row || row.site !== site || row.asset !== asset) return;
  setStateBadge($('#asset-state'), row.state); // the state at once, the rest with the next read
  refreshSoon();
}

load();
initPage('fleet', { live: true }).then(
  () => connectEvents({ asset: onAsset, document: onDocument, resync: () => load() }, { onReconnect: () => load() }),
  () => {},
);

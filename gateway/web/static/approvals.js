// The approvals page: recommendations waiting for a planner. Approve or reject with a reason; the answer
// of the gateway shows at once, then what the ERP made of it (its document number, or its refusal),
// from live updates and by asking for the document every second until it is settled.

import {
  $,
  api,
  ApiError,
  coalesce,
  connectEvents,
  el,
  fill,
  formatScore,
  humanize,
  initPage,
  roleAllows,
  showError,
  stateBadge,
  timeAgo,
  timeAt,
} from '/static/app.js';
import { spectrumChart, spectrumMarkers } from '/static/charts.js';

const POLL_MS = 1000; // ask for a decided document's status this often …
const POLL_LIMIT_MS = 60_000; // … for at most this long (live updates carry on after)
const RELOAD_MS = 1000; // new recommendations: read the list at most this often

const list = $('#approvals-list');
const entries = new Map(); // correlation id → {article, doc, controls, tracking, settled}

// --- the list ---------------------------------------------------------------------------------------

async function loadList() {
  let recommendations;
  try {
    recommendations = await api('/recommendations');
  } catch (error) {
    showError(error, 'reading the recommendations');
    return;
  }
  const waiting = new Set();
  for (const doc of recommendations) {
    waiting.add(doc.correlation_id);
    if (!entries.has(doc.correlation_id)) {
      const entry = createEntry(doc);
      entries.set(doc.correlation_id, entry);
      list.append(entry.article);
    }
  }
  // one that left the queue without a decision here was decided elsewhere: say so rather than vanish
  for (const [cid, entry] of entries) {
    if (!waiting.has(cid) && !entry.settled && !entry.tracking) refreshDocument(entry);
  }
  renderCount();
}

const reloadSoon = coalesce(loadList, RELOAD_MS);

function renderCount() {
  const open = [...entries.values()].filter((entry) => !entry.settled && !entry.decided).length;
  $('#approvals-count').textContent = open ? `${open} waiting` : '';
  $('#approvals-empty').hidden = open > 0; // decided ones stay below it until the page is reloaded
}

// --- one recommendation -------------------------------------------------------------------------------

function createEntry(doc) {
  const record = doc.record || null;
  const severe = doc.severity === 'alarm' || (record && record.state === 'alarm');
  const reason = el('input', { class: 'reason', type: 'text', name: 'reason', maxlength: 500, autocomplete: 'off', placeholder: 'e.g. BPFO confirmed on site' });
  const approve = el('button', { type: 'button', class: 'approve' }, 'Approve');
  const reject = el('button', { type: 'button', class: 'reject' }, 'Reject');
  const result = el('p', { class: 'result', role: 'status', hidden: true });
  const error = el('p', { class: 'error', role: 'alert', hidden: true });
  const href = `/assets/${encodeURIComponent(doc.site)}/${encodeURIComponent(doc.asset)}`;

  const article = el(
    'article',
    { class: `recommendation${severe ? ' sev-alarm' : ''}`, dataset: { correlationId: doc.correlation_id }, 'aria-label': `recommendation for ${doc.asset}` },
    el(
      'header',
      {},
      el('h2', {}, el('a', { href }, doc.asset)),
      record ? stateBadge(record.state) : null,
      el('strong', {}, humanize(doc.failure_mode)),
      el('span', { class: 'muted' }, `${humanize(doc.kind)} · site ${doc.site}`),
    ),
    el(
      'div',
      {},
      el(
        'dl',
        { class: 'facts' },
        fact('Severity', humanize(doc.severity)),
        fact('Priority', doc.priority ?? '–'),
        fact('Score', record ? `${formatScore(record.score)} (threshold ${formatScore(record.threshold)})` : '–'),
        record && Number.isFinite(record.confidence) ? fact('Confidence', `${Math.round(record.confidence * 100)} %`) : null,
        fact('Opened', el('span', {}, timeAt(doc.opened_at), ' (', timeAgo(doc.opened_at), ')')),
        doc.repeats ? fact('Repeats', String(doc.repeats)) : null,
      ),
      evidenceList(record),
    ),
    el('div', { class: 'plot' }),
    el(
      'div',
      { class: 'decide' },
      el('label', {}, 'Reason (needed to reject)', reason),
      approve,
      reject,
    ),
    result,
    error,
  );
  const entry = { article, doc, record, controls: { reason, approve, reject }, result, error, tracking: false, settled: false, decided: false };
  approve.addEventListener('click', () => decide(entry, 'approve'));
  reject.addEventListener('click', () => decide(entry, 'reject'));
  // the plot needs the article in the page to know its width
  requestAnimationFrame(() => drawPlot(entry));
  return entry;
}

function fact(term, value) {
  return el('div', {}, el('dt', {}, term), el('dd', {}, value));
}

function evidenceList(record) {
  const sentences = record && Array.isArray(record.evidence) ? record.evidence : [];
  if (!sentences.length) return el('p', { class: 'muted' }, 'The alert gave no evidence.');
  return el('ul', { class: 'evidence' }, sentences.map((sentence) => el('li', {}, sentence)));
}

/** The alert's envelope spectrum with its markers, or its score against the threshold. */
function drawPlot(entry) {
  const box = entry.article.querySelector('.plot');
  const record = entry.record;
  const snapshot = record && record.spectrum;
  if (snapshot && snapshot.envelope && Array.isArray(snapshot.envelope.bins) && snapshot.envelope.bins.length) {
    const chart = el('div', { class: 'chart-box' });
    fill(box, el('figure', { class: 'chart-figure' }, chart, el('figcaption', {}, 'Envelope spectrum of the alert')));
    spectrumChart(chart, {
      part: snapshot.envelope,
      markers: spectrumMarkers(snapshot.markers_hz, snapshot.shaft_hz),
      height: 170,
      compact: true,
      label: `envelope spectrum of the alert on ${entry.doc.asset}`,
    });
    return;
  }
  if (!record || !Number.isFinite(record.score)) return;
  const top = Math.max(record.score, record.threshold || 0) * 1.25 || 1;
  const bar = el('span', { class: 'gauge-bar' });
  bar.style.width = `${Math.min(100, (record.score / top) * 100)}%`;
  const track = el('span', { class: 'gauge-track', 'aria-hidden': 'true' }, bar);
  if (Number.isFinite(record.threshold)) {
    const mark = el('span', { class: 'gauge-threshold' });
    mark.style.left = `${(record.threshold / top) * 100}%`;
    track.append(mark);
  }
  fill(box, el('div', { class: 'gauge' }, el('span', {}, `Score ${formatScore(record.score)}; the amber mark is the threshold ${formatScore(record.threshold)}`), track));
}

// --- deciding -------------------------------------------------------------------------------------

function setBusy(entry, busy) {
  for (const control of Object.values(entry.controls)) control.disabled = busy;
}

function showArticleError(entry, message) {
  entry.error.textContent = message;
  entry.error.hidden = !message;
}

async function decide(entry, verb) {
  if (entry.decided || entry.controls.approve.disabled) return;
  const reason = entry.controls.reason.value.trim();
  showArticleError(entry, '');
  if (verb === 'reject' && !reason) {
    showArticleError(entry, 'A rejection needs a reason: write it in the box, then press Reject again.');
    entry.controls.reason.focus();
    return;
  }
  setBusy(entry, true);
  showResult(entry, null, verb === 'approve' ? 'Approving…' : 'Rejecting…');
  let doc;
  try {
    doc = await api(`/recommendations/${encodeURIComponent(entry.doc.correlation_id)}/${verb}`, {
      method: 'POST',
      body: reason ? { reason } : {},
    });
  } catch (error) {
    showResult(entry, null, '');
    showArticleError(entry, error.message || String(error));
    if (error instanceof ApiError && error.status === 409) {
      refreshDocument(entry); // decided already: show how
    } else {
      setBusy(entry, false);
    }
    return;
  }
  entry.decided = true;
  entry.doc = doc;
  showResult(entry, doc);
  renderCount();
  if (!isSettled(doc)) track(entry);
}

/** Whether nothing more will happen to the document that this page waits for. */
function isSettled(doc) {
  return ['closed', 'failed', 'rejected'].includes(doc.status) || (doc.status === 'open' && Boolean(doc.number));
}

/** Ask for the document every second until it is settled (at most a minute). */
async function track(entry) {
  if (entry.tracking) return;
  entry.tracking = true;
  const started = Date.now();
  while (!entry.settled && Date.now() - started < POLL_LIMIT_MS) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (entry.settled) break;
    try {
      update(entry, await api(`/documents/${encodeURIComponent(entry.doc.correlation_id)}`));
    } catch (error) {
      showArticleError(entry, `reading the document: ${error.message}`);
    }
  }
  entry.tracking = false;
  if (!entry.settled) {
    entry.result.append(el('span', { class: 'muted' }, ' No final answer from the ERP within a minute; this page shows it when it comes.'));
  }
}

async function refreshDocument(entry) {
  try {
    update(entry, await api(`/documents/${encodeURIComponent(entry.doc.correlation_id)}`));
  } catch (error) {
    showArticleError(entry, `reading the document: ${error.message}`);
  }
}

/** A newer state of an entry's document (from the server or a live update). */
function update(entry, doc) {
  entry.doc = doc;
  if (doc.status === 'awaiting_approval') return;
  if (!entry.decided) {
    entry.decided = true; // decided elsewhere (another planner, or the gateway)
    setBusy(entry, true);
  }
  showResult(entry, doc);
  renderCount();
}

/** The result line: what the gateway and then the ERP did with the decision. */
function showResult(entry, doc, text) {
  const node = entry.result;
  node.className = 'result';
  if (!doc) {
    node.hidden = !text;
    node.textContent = text || '';
    return;
  }
  const by = doc.decided_by ? ` by ${doc.decided_by}` : '';
  const why = doc.decision_reason ? `: “${doc.decision_reason}”` : '';
  node.hidden = false;
  switch (doc.status) {
    case 'pending':
      fill(node, `Approved${by}${why} — sent to ERP…`);
      break;
    case 'open':
    case 'closed':
      if (doc.number) {
        fill(node, `Approved${by}${why} — ERP document `, el('span', { class: 'erp-number' }, doc.number), doc.status === 'closed' ? ' (closed)' : '');
        node.classList.add('result-done');
      } else {
        fill(node, `Approved${by}${why} — the ERP accepted it; waiting for its number…`);
      }
      break;
    case 'failed':
      fill(node, `Approved${by}, but the ERP refused it: ${doc.last_error || 'no reason given'}`);
      node.classList.add('result-failed');
      break;
    case 'rejected':
      fill(node, `Recommendation rejected${by}${why}`);
      break;
    default:
      fill(node, `Status: ${humanize(doc.status)}${by}${why}`);
  }
  entry.article.classList.add('decided');
  if (isSettled(doc)) entry.settled = true;
}

// --- live updates -------------------------------------------------------------------------------------

function onDocument(doc) {
  if (!doc || !doc.correlation_id) {
    reloadSoon();
    return;
  }
  const entry = entries.get(doc.correlation_id);
  if (entry) update(entry, doc);
  else if (doc.status === 'awaiting_approval') reloadSoon();
}

// --- start ----------------------------------------------------------------------------------------

loadList();
initPage('approvals', { live: true }).then(
  (me) => {
    if (!roleAllows(me.role, 'planner')) {
      const note = $('#role-note');
      note.textContent = `You are logged in as ${me.user}, a ${me.role}: you can read the recommendations, but approving or rejecting needs the planner role, and the gateway will refuse it.`;
      note.hidden = false;
    }
    connectEvents({ document: onDocument, resync: () => loadList() }, { onReconnect: () => loadList() });
  },
  () => {},
);

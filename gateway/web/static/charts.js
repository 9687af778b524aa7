// Charts drawn as inline SVG, written for plantwatch: a time-series line chart with labelled horizontal
// lines (thresholds, baselines), a sparkline for table rows, and an amplitude spectrum with labelled
// vertical markers at the machine's characteristic frequencies (shaft orders, bearing defect frequencies).
// Every chart redraws itself when its container changes width.

const SVG_NS = 'http://www.w3.org/2000/svg';
const FONT_PX = 11;
const CHAR_PX = 6.4; // a label's width per character at FONT_PX, for placing labels without measuring

/** A new SVG element with attributes and children (strings become text). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const round1 = (x) => Math.round(x * 10) / 10;

// --- scales and ticks -------------------------------------------------------------------------------------

function linear(domainMin, domainMax, rangeMin, rangeMax) {
  const span = domainMax - domainMin || 1;
  return (x) => rangeMin + ((x - domainMin) / span) * (rangeMax - rangeMin);
}

/** A round step (1, 2 or 5 × 10^n) giving about `count` intervals over `range`. */
export function niceStep(range, count) {
  if (!(range > 0)) return 1;
  const raw = range / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** Round tick values covering [min, max]. */
export function linearTicks(min, max, count = 5) {
  const step = niceStep(max - min, count);
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

function tickLabel(value, step) {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return Math.abs(value) >= 1e5 ? value.toExponential(1) : value.toFixed(Math.min(decimals, 6));
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIME_STEPS = [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 30 * DAY];

/** Ticks on round local times between two epoch ms, with labels fitting the span. */
export function timeTicks(minMs, maxMs, count = 6) {
  const span = Math.max(maxMs - minMs, MINUTE);
  const step = TIME_STEPS.find((s) => span / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const zoneOffset = new Date(minMs).getTimezoneOffset() * MINUTE; // round in local time
  const first = Math.ceil((minMs - zoneOffset) / step) * step + zoneOffset;
  const pad = (n) => String(n).padStart(2, '0');
  const ticks = [];
  for (let t = first; t <= maxMs; t += step) {
    const d = new Date(t);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const md = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    ticks.push({ t, label: step >= DAY ? md : span > DAY || d.getHours() + d.getMinutes() === 0 ? `${md} ${hm}` : hm });
  }
  return ticks;
}

// --- redrawing on resize ------------------------------------------------------------------------------

const drawers = new WeakMap();
const resizeObserver =
  typeof ResizeObserver === 'function'
    ? new ResizeObserver((entries) => {
        for (const entry of entries) {
          if (!entry.target.isConnected) {
            resizeObserver.unobserve(entry.target); // a chart taken off the page
            continue;
          }
          const drawer = drawers.get(entry.target);
          const width = Math.round(entry.contentRect.width);
          if (drawer && width > 0 && width !== drawer.width) {
            drawer.width = width;
            drawer.draw(width);
          }
        }
      })
    : null;

/** Draw with `draw(widthPx)` now and again whenever `container` changes width. */
function responsive(container, draw, fallbackWidth) {
  const width = Math.round(container.clientWidth) || fallbackWidth;
  drawers.set(container, { draw, width });
  if (resizeObserver) resizeObserver.observe(container);
  draw(width);
}

function note(text) {
  const p = document.createElement('p');
  p.className = 'chart-note';
  p.textContent = text;
  return p;
}

// --- the line chart -----------------------------------------------------------------------------------

/**
 * A time-series chart in `container`.
 *
 * options.series: [{points: [[epochMs, value], …], className, label}] — the lines;
 * options.lines: [{value, label, className, dashed}] — horizontal lines labelled at the right;
 * options.bands: [{from, to, className}] — shaded value ranges (to: Infinity for "and above");
 * options.dots: [{t, value, className, title}] — marked points (e.g. alerts);
 * options.height (px), options.unit (y axis), options.label (what the chart shows, for screen readers),
 * options.empty (the note when there is nothing to draw).
 */
export function lineChart(container, options) {
  responsive(container, (width) => drawLineChart(container, width, options), 640);
}

function drawLineChart(container, width, options) {
  const { series = [], lines = [], bands = [], dots = [], height = 220, unit = '', label = '', compact = false } = options;
  const points = series.flatMap((s) => s.points).filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v));
  if (!points.length) {
    container.replaceChildren(note(options.empty || 'No data yet.'));
    return;
  }
  const shownLines = lines.filter((line) => Number.isFinite(line.value));
  const lineLabelWidth = Math.max(0, ...shownLines.map((line) => line.label.length * CHAR_PX)) + 10;
  const margin = { top: 10, right: Math.max(compact ? 8 : 16, lineLabelWidth), bottom: 22, left: compact ? 40 : 50 };
  const plotWidth = Math.max(60, width - margin.left - margin.right);
  const plotHeight = Math.max(30, height - margin.top - margin.bottom);

  let tMin = points.reduce((m, p) => Math.min(m, p[0]), Infinity);
  let tMax = points.reduce((m, p) => Math.max(m, p[0]), -Infinity);
  if (tMax - tMin < MINUTE) {
    tMin -= MINUTE / 2;
    tMax += MINUTE / 2;
  }
  const values = [...points.map((p) => p[1]), ...shownLines.map((line) => line.value)];
  let vMin = values.reduce((m, v) => Math.min(m, v), 0);
  let vMax = values.reduce((m, v) => Math.max(m, v), -Infinity);
  if (vMax - vMin < 1e-12) vMax = vMin + (Math.abs(vMin) || 1);
  vMax += (vMax - vMin) * 0.08;
  if (vMin < 0) vMin -= (vMax - vMin) * 0.05;

  const x = linear(tMin, tMax, margin.left, margin.left + plotWidth);
  const y = linear(vMin, vMax, margin.top + plotHeight, margin.top);
  const root = svg('svg', {
    class: 'chart line-chart',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': label,
  });

  // shaded bands first, so lines draw over them
  for (const band of bands) {
    if (!Number.isFinite(band.from)) continue;
    const top = y(Math.min(Number.isFinite(band.to) ? band.to : vMax, vMax));
    const bottom = y(Math.max(band.from, vMin));
    if (bottom > top) root.append(svg('rect', { class: `band ${band.className || ''}`, x: margin.left, y: round1(top), width: plotWidth, height: round1(bottom - top) }));
  }

  // y axis: grid lines and values
  const yTicks = linearTicks(vMin, vMax, compact ? 3 : 5);
  const step = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  const axis = svg('g', { class: 'axis' });
  for (const v of yTicks) {
    const py = round1(y(v));
    axis.append(svg('line', { class: 'grid', x1: margin.left, x2: margin.left + plotWidth, y1: py, y2: py }));
    axis.append(svg('text', { x: margin.left - 6, y: py + 4, 'text-anchor': 'end' }, tickLabel(v, step)));
  }
  if (unit && !compact) axis.append(svg('text', { class: 'unit', x: 4, y: margin.top + 8 }, unit));
  // x axis: local times
  const bottomY = margin.top + plotHeight;
  axis.append(svg('line', { class: 'baseline-axis', x1: margin.left, x2: margin.left + plotWidth, y1: bottomY, y2: bottomY }));
  const xTicks = timeTicks(tMin, tMax, Math.max(2, Math.floor(plotWidth / (compact ? 110 : 90))));
  for (const tick of xTicks) {
    const px = round1(x(tick.t));
    axis.append(svg('line', { class: 'tick', x1: px, x2: px, y1: bottomY, y2: bottomY + 4 }));
    axis.append(svg('text', { x: px, y: bottomY + 15, 'text-anchor': 'middle' }, tick.label));
  }
  root.append(axis);

  // horizontal labelled lines, labels nudged apart when close
  const placed = [];
  for (const line of [...shownLines].sort((a, b) => b.value - a.value)) {
    const py = round1(y(line.value));
    let labelY = py + 4;
    for (const other of placed) if (Math.abs(other - labelY) < FONT_PX + 1) labelY = other + FONT_PX + 1;
    placed.push(labelY);
    root.append(
      svg(
        'g',
        { class: `hline ${line.className || ''}` },
        svg('line', { x1: margin.left, x2: margin.left + plotWidth, y1: py, y2: py, 'stroke-dasharray': line.dashed ? '5 4' : null }),
        svg('text', { x: margin.left + plotWidth + 5, y: labelY }, line.label),
      ),
    );
  }

  // the series: a gap in the data (over 5 typical steps) breaks the line
  for (const s of series) {
    const pts = s.points.filter(([t, v]) => Number.isFinite(t) && Number.isFinite(v));
    if (!pts.length) continue;
    const steps = pts.slice(1).map((p, i) => p[0] - pts[i][0]).sort((a, b) => a - b);
    const gapMs = steps.length ? Math.max(steps[Math.floor(steps.length / 2)] * 5, MINUTE) : Infinity;
    let d = '';
    pts.forEach(([t, v], i) => {
      const jump = i === 0 || t - pts[i - 1][0] > gapMs;
      d += `${jump ? 'M' : 'L'}${round1(x(t))},${round1(y(v))}`;
    });
    root.append(svg('path', { class: `series ${s.className || ''}`, d }, s.label ? svg('title', {}, s.label) : null));
    if (pts.length === 1) root.append(svg('circle', { class: `series-point ${s.className || ''}`, cx: round1(x(pts[0][0])), cy: round1(y(pts[0][1])), r: 3 }));
  }
  for (const dot of dots) {
    if (!Number.isFinite(dot.t) || !Number.isFinite(dot.value)) continue;
    root.append(svg('circle', { class: `dot ${dot.className || ''}`, cx: round1(x(dot.t)), cy: round1(y(dot.value)), r: 3.5 }, dot.title ? svg('title', {}, dot.title) : null));
  }
  container.replaceChildren(root);
}

// --- the sparkline ------------------------------------------------------------------------------------

/**
 * A small trend line (oldest → newest) as an SVG element, with the threshold dashed and the last point
 * marked in the colour of `state`. Decorative: the row states the numbers in words.
 */
export function sparkline(values, { threshold = null, state = 'normal', width = 88, height = 22 } = {}) {
  const root = svg('svg', { class: 'sparkline', width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true' });
  const data = (values || []).map(Number).filter(Number.isFinite);
  if (!data.length) return root;
  const all = Number.isFinite(threshold) ? [...data, threshold] : data;
  const max = Math.max(...all) || 1;
  const min = Math.min(0, ...all);
  const x = linear(0, Math.max(1, data.length - 1), 2, width - 4);
  const y = linear(min, max, height - 2, 2);
  if (Number.isFinite(threshold)) {
    const py = round1(y(threshold));
    root.append(svg('line', { class: 'spark-threshold', x1: 0, x2: width, y1: py, y2: py }));
  }
  root.append(svg('polyline', { class: 'spark-line', points: data.map((v, i) => `${round1(x(i))},${round1(y(v))}`).join(' ') }));
  const last = data.length - 1;
  root.append(svg('circle', { class: `spark-last spark-${state}`, cx: round1(x(last)), cy: round1(y(data[last])), r: 2.5 }));
  return root;
}

// --- the spectrum -------------------------------------------------------------------------------------

const BEARING = [
  ['bpfo', 'BPFO', 'outer race'],
  ['bpfi', 'BPFI', 'inner race'],
  ['bsf', 'BSF', 'rolling element'],
  ['ftf', 'FTF', 'cage'],
];
const HARMONICS = 3;

/**
 * The markers to draw for a snapshot's `markers_hz`: 1×, 2×, 3× the shaft speed, and each bearing
 * defect frequency present (BPFO, BPFI, BSF, FTF) with its 2nd and 3rd harmonics.
 * Each: {key: "bpfo" | "2x_bpfo" | "1x" …, label: "2×BPFO", hz, family, harmonic (1, 2, 3), meaning}.
 */
export function spectrumMarkers(markersHz, shaftHz) {
  const markers = [];
  const given = markersHz || {};
  for (let n = 1; n <= HARMONICS; n += 1) {
    const hz = Number(given[`${n}x`] ?? (Number.isFinite(Number(shaftHz)) ? n * Number(shaftHz) : NaN));
    if (Number.isFinite(hz) && hz > 0) markers.push({ key: `${n}x`, label: `${n}×`, hz, family: 'shaft', harmonic: n, meaning: `${n} × shaft speed` });
  }
  for (const [key, name, part] of BEARING) {
    const base = Number(given[key]);
    if (!Number.isFinite(base) || base <= 0) continue;
    for (let n = 1; n <= HARMONICS; n += 1) {
      markers.push({
        key: n === 1 ? key : `${n}x_${key}`,
        label: n === 1 ? name : `${n}×${name}`,
        hz: n * base,
        family: key,
        harmonic: n,
        meaning: `${n === 1 ? '' : `${n} × `}${part} defect frequency`,
      });
    }
  }
  // anything else the agent marks, drawn as given
  const known = new Set(['1x', '2x', '3x', ...BEARING.map(([key]) => key)]);
  for (const [key, value] of Object.entries(given)) {
    const hz = Number(value);
    if (!known.has(key) && Number.isFinite(hz) && hz > 0) markers.push({ key, label: key.toUpperCase(), hz, family: 'other', harmonic: 1, meaning: key });
  }
  return markers;
}

/** A legend of the marker families in `markers` (HTML, for a caption). */
export function markerLegend(markers) {
  const list = document.createElement('ul');
  list.className = 'marker-legend';
  const families = new Map();
  for (const m of markers) if (!families.has(m.family)) families.set(m.family, m);
  for (const [family, first] of families) {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch marker-${family}`;
    swatch.setAttribute('aria-hidden', 'true');
    const name = family === 'shaft' ? '1×, 2×, 3× shaft speed' : `${first.label} (${first.meaning})`;
    item.append(swatch, document.createTextNode(name));
    list.append(item);
  }
  if (markers.some((m) => m.harmonic > 1 && m.family !== 'shaft')) {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'swatch swatch-harmonic';
    swatch.setAttribute('aria-hidden', 'true');
    item.append(swatch, document.createTextNode('dashed: 2nd and 3rd harmonics'));
    list.append(item);
  }
  return list;
}

/**
 * An amplitude spectrum in `container`: amplitude at k·df_hz is bins[k]·scale (in `part.unit`),
 * with a vertical line per marker (an SVG <g class="marker" data-marker=… data-hz=…>). Markers beyond
 * the spectrum's range are listed in a note under it.
 *
 * options.part: {unit, df_hz, scale, bins}; options.markers: from spectrumMarkers;
 * options.height (px); options.compact (small, fewer label rows); options.label (for screen readers);
 * options.maxHz: draw only up to this frequency.
 */
export function spectrumChart(container, options) {
  responsive(container, (width) => drawSpectrum(container, width, options), 520);
}

function drawSpectrum(container, width, { part, markers = [], height = 260, compact = false, label = 'spectrum', empty, maxHz }) {
  const allBins = part && Array.isArray(part.bins) ? part.bins : [];
  const df = Number(part && part.df_hz);
  const scale = Number(part && part.scale) || 1;
  // maxHz: show the spectrum only up to there (a zoom on the low frequencies)
  const bins = Number.isFinite(maxHz) && df > 0 ? allBins.slice(0, Math.max(2, Math.ceil(maxHz / df) + 1)) : allBins;
  if (!bins.length || !(df > 0)) {
    container.replaceChildren(note(empty || 'No spectrum.'));
    return;
  }
  const unit = (part && part.unit) || '';
  const fMax = (bins.length - 1) * df;
  const inRange = markers.filter((m) => m.hz <= fMax);
  const beyond = markers.filter((m) => m.hz > fMax);
  const rows = compact ? 2 : 3;
  const margin = { top: rows * (FONT_PX + 2) + 6, right: 14, bottom: 30, left: compact ? 44 : 56 };
  const plotWidth = Math.max(60, width - margin.left - margin.right);
  const plotHeight = Math.max(30, height - margin.top - margin.bottom);
  const amplitudes = bins.map((b) => Number(b) * scale);
  const aMax = amplitudes.reduce((top, a) => (a > top ? a : top), 0) * 1.08 || scale; // no spread: bins may be many
  const x = linear(0, fMax, margin.left, margin.left + plotWidth);
  const y = linear(0, aMax, margin.top + plotHeight, margin.top);
  const root = svg('svg', {
    class: `chart spectrum-chart${compact ? ' compact' : ''}`,
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': label,
  });

  const axis = svg('g', { class: 'axis' });
  const yTicks = linearTicks(0, aMax, compact ? 3 : 4);
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : aMax;
  for (const v of yTicks) {
    const py = round1(y(v));
    axis.append(svg('line', { class: 'grid', x1: margin.left, x2: margin.left + plotWidth, y1: py, y2: py }));
    axis.append(svg('text', { x: margin.left - 6, y: py + 4, 'text-anchor': 'end' }, tickLabel(v, yStep)));
  }
  if (unit) axis.append(svg('text', { class: 'unit', x: 4, y: margin.top - 4 }, unit));
  const bottomY = margin.top + plotHeight;
  axis.append(svg('line', { class: 'baseline-axis', x1: margin.left, x2: margin.left + plotWidth, y1: bottomY, y2: bottomY }));
  const xTicks = linearTicks(0, fMax, Math.max(2, Math.floor(plotWidth / 70)));
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : fMax;
  for (const f of xTicks) {
    const px = round1(x(f));
    axis.append(svg('line', { class: 'tick', x1: px, x2: px, y1: bottomY, y2: bottomY + 4 }));
    axis.append(svg('text', { x: px, y: bottomY + 15, 'text-anchor': 'middle' }, tickLabel(f, xStep)));
  }
  axis.append(svg('text', { class: 'unit', x: margin.left + plotWidth, y: bottomY + 28, 'text-anchor': 'end' }, 'frequency (Hz)'));
  root.append(axis);

  root.append(svg('path', { class: 'spectrum-line', d: spectrumPath(amplitudes, df, x, y, plotWidth) }));
  root.append(drawMarkers(inRange, x, margin.top, bottomY, rows));
  const nodes = [root];
  if (beyond.length) {
    nodes.push(note(`Beyond the ${tickLabel(fMax, 0.1)} Hz shown: ` + beyond.map((m) => `${m.label} ${m.hz.toFixed(1)} Hz`).join(', ') + '.'));
  }
  container.replaceChildren(...nodes);
}

/** The spectrum as a path, one vertical stroke per pixel column (its largest bin) when bins outnumber pixels. */
function spectrumPath(amplitudes, df, x, y, plotWidth) {
  const columns = Math.max(1, Math.floor(plotWidth));
  const bottom = round1(y(0));
  if (amplitudes.length <= columns) {
    return amplitudes.map((a, k) => `${k ? 'L' : 'M'}${round1(x(k * df))},${round1(y(a))}`).join('');
  }
  const perColumn = amplitudes.length / columns;
  let d = '';
  for (let c = 0; c < columns; c += 1) {
    const from = Math.floor(c * perColumn);
    const to = Math.max(from + 1, Math.floor((c + 1) * perColumn));
    let top = 0;
    for (let k = from; k < to; k += 1) top = Math.max(top, amplitudes[k]);
    const px = round1(x(((from + to - 1) / 2) * df));
    d += `M${px},${bottom}V${round1(y(top))}`;
  }
  return d;
}

/** Labels first for the markers that matter most: 1×, then the defect frequencies, then harmonics. */
function labelPriority(marker) {
  const family = BEARING.findIndex(([key]) => key === marker.family); // BPFO, BPFI, BSF, FTF in this order
  if (marker.family === 'shaft') return marker.harmonic === 1 ? 0 : 20;
  return (marker.harmonic === 1 ? 10 : 30) + (family === -1 ? 9 : family);
}

/**
 * One <g class="marker"> per marker: a vertical line and its label. Labels go in `rows` rows above the
 * plot, most important first, each where it overlaps no other; one that fits nowhere is left out (its
 * line stays, with the frequency as tooltip).
 */
function drawMarkers(markers, x, top, bottom, rows) {
  const group = svg('g', { class: 'markers' });
  const taken = Array.from({ length: rows }, () => []); // per row: [start, end] of placed labels in px
  const rowOf = new Map();
  for (const m of [...markers].sort((a, b) => labelPriority(a) - labelPriority(b) || a.hz - b.hz)) {
    const start = x(m.hz) + 2;
    const end = start + m.label.length * CHAR_PX + 4;
    // the lowest row first: its labels sit closest to the plot
    for (let row = rows - 1; row >= 0; row -= 1) {
      if (taken[row].every(([s, e]) => end < s || start > e)) {
        taken[row].push([start, end]);
        rowOf.set(m, row);
        break;
      }
    }
  }
  for (const m of [...markers].sort((a, b) => a.hz - b.hz)) {
    const px = round1(x(m.hz));
    const row = rowOf.get(m);
    const labelY = row === undefined ? null : top - 6 - (rows - 1 - row) * (FONT_PX + 2);
    const harmonic = m.harmonic > 1 && m.family !== 'shaft';
    group.append(
      svg(
        'g',
        {
          class: `marker marker-${m.family}${harmonic ? ' harmonic' : ''}`,
          'data-marker': m.key,
          'data-hz': String(m.hz),
        },
        svg('title', {}, `${m.label}: ${m.hz.toFixed(2)} Hz (${m.meaning})`),
        svg('line', { x1: px, x2: px, y1: labelY === null ? top : labelY + 3, y2: bottom }),
        labelY === null ? null : svg('text', { x: px + 2, y: labelY }, m.label),
      ),
    );
  }
  return group;
}

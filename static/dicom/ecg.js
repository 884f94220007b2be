// 12-lead ECG viewer: the standard 3×4 layout (each column 2.5 s of three leads) plus a 10 s
// lead II rhythm strip, drawn as SVG on ECG paper at 25 mm/s and 10 mm/mV with a 1 mm / 5 mm grid
// and a 1 mV calibration pulse, as on a printed ECG. Automatic measurements come from the server
// (neurokit2) and are shown as reference data, never as a diagnosis.
const SPEED = 25; // mm per second
const GAIN = 10; // mm per mV
const COLUMN_S = 2.5;
const LEFT = 10;
const RIGHT = 5;
const HEADER = 10;
const BOTTOM = 5;
const ROW = 30;
const WIDTH = LEFT + 4 * COLUMN_S * SPEED + RIGHT; // 265 mm
const HEIGHT = HEADER + 4 * ROW + BOTTOM; // 135 mm
const LAYOUT = [['I', 'aVR', 'V1', 'V4'], ['II', 'aVL', 'V2', 'V5'], ['III', 'aVF', 'V3', 'V6']];
const RHYTHM = 'II';
const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}

function grid(svg) {
  const g = el('g', { class: 'grid' }, svg);
  const minor = [];
  const major = [];
  for (let x = 0; x <= WIDTH + 1e-9; x += 1) (x % 5 === 0 ? major : minor).push(`M${x} 0V${HEIGHT}`);
  for (let y = 0; y <= HEIGHT + 1e-9; y += 1) (y % 5 === 0 ? major : minor).push(`M0 ${y}H${WIDTH}`);
  el('path', { d: minor.join(''), class: 'grid-minor' }, g);
  el('path', { d: major.join(''), class: 'grid-major' }, g);
}

function calibration(svg, baseline) {
  // 1 mV for 200 ms: proof that the trace is at 10 mm/mV and 25 mm/s.
  const x = 2;
  const w = 0.2 * SPEED;
  el('path', {
    class: 'calibration',
    d: `M${x - 1.5} ${baseline}H${x}V${baseline - GAIN}H${x + w}V${baseline}H${x + w + 1.5}`,
  }, svg);
}

function trace(svg, data, lead, x0, baseline, startS, lengthS, extraClass) {
  const samples = data.leads[lead];
  el('text', { x: x0 + 1, y: baseline - 8, class: 'lead-label' }, svg).textContent = lead;
  if (!samples) {
    el('text', { x: x0 + 8, y: baseline, class: 'no-data' }, svg).textContent = 'データなし';
    return;
  }
  // Each lead is centred on its own median so offsets and drift keep it on its row.
  const offset = median(samples);
  const fs = data.sampling_hz;
  const first = Math.round(startS * fs);
  const last = Math.min(samples.length, Math.round((startS + lengthS) * fs));
  const parts = [];
  for (let i = first; i < last; i += 1) {
    const x = x0 + ((i - first) / fs) * SPEED;
    const y = baseline - (samples[i] - offset) * GAIN;
    parts.push(`${i === first ? 'M' : 'L'}${x.toFixed(2)} ${y.toFixed(2)}`);
  }
  el('path', { d: parts.join(''), class: `lead ${extraClass}`.trim(), 'data-lead': lead }, svg);
}

export function drawEcg(container, data) {
  container.replaceChildren();
  const svg = el('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': `12誘導心電図 ${SPEED} mm/s ${GAIN} mm/mV`,
    class: 'ecg-paper',
  }, container);
  grid(svg);
  const columnMm = COLUMN_S * SPEED;
  for (let row = 0; row < 4; row += 1) {
    const baseline = HEADER + (row + 0.5) * ROW;
    calibration(svg, baseline);
    if (row < 3) {
      LAYOUT[row].forEach((lead, col) => {
        const x0 = LEFT + col * columnMm;
        trace(svg, data, lead, x0, baseline, col * COLUMN_S, COLUMN_S, '');
        if (col) el('path', { d: `M${x0} ${baseline - 3}V${baseline + 3}`, class: 'separator' }, svg);
      });
    } else {
      trace(svg, data, RHYTHM, LEFT, baseline, 0, 4 * COLUMN_S, 'rhythm');
    }
  }
  el('text', { x: LEFT, y: HEADER / 2 + 1, class: 'header' }, svg).textContent =
    `${SPEED} mm/s  ${GAIN} mm/mV  ${data.sampling_hz} Hz`;
  return svg;
}

function showMeasurements(data) {
  const m = data.measurements;
  const value = (v, unit) => (v === null || v === undefined ? '判定不能' : `${v} ${unit}`);
  const rows = [
    ['心拍数', value(m.hr_bpm, 'bpm')],
    ['PR', value(m.pr_ms, 'ms')],
    ['QRS', value(m.qrs_ms, 'ms')],
    ['QT', value(m.qt_ms, 'ms')],
    [`QTc (${m.qtc_formula})`, value(m.qtc_ms, 'ms')],
    ['計測誘導', m.lead ?? '—'],
  ];
  const list = document.getElementById('ecg-measurements');
  list.replaceChildren();
  for (const [label, text] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = text;
    list.append(dt, dd);
  }
  document.getElementById('ecg-summary').textContent = data.summary_ja;
}

// The instance shown or being loaded. Opening is asked for twice on an ECG-only study (this
// module opens it, and the image viewer clicks the first series button): the second ask must not
// blank a trace already drawn, and a slow older answer must never overwrite a newer choice.
let current = null;

async function openEcg(instanceId) {
  const container = document.getElementById('ecg');
  document.getElementById('image-pane').hidden = true;
  document.getElementById('ecg-pane').hidden = false;
  if (current === instanceId) return;
  current = instanceId;
  delete container.dataset.rendered;
  container.textContent = '読み込み中…';
  let response;
  let data;
  try {
    response = await fetch(`/dicom/instances/${instanceId}/ecg.json`, { credentials: 'same-origin' });
    data = await response.json();
  } catch (error) {
    data = { detail: String(error) };
  }
  if (current !== instanceId) return; // another ECG was chosen meanwhile
  if (!response?.ok) {
    current = null; // let the user try again
    container.textContent = `心電図を表示できません: ${data.detail ?? response?.status}`;
    return;
  }
  drawEcg(container, data);
  showMeasurements(data);
  container.dataset.rendered = 'true';
}

const configNode = document.getElementById('viewer-config');
if (configNode) {
  const config = JSON.parse(configNode.textContent);
  document.querySelectorAll('button.series').forEach((button) => {
    const series = config.series.find((s) => s.uid === button.dataset.series);
    if (series?.ecg.length) button.addEventListener('click', () => openEcg(series.ecg[0]));
  });
  const hasImages = config.series.some((s) => !s.ecg.length && s.instances);
  const firstEcg = config.series.find((s) => s.ecg.length);
  if (!hasImages && firstEcg) openEcg(firstEcg.ecg[0]);
}

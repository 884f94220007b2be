// Study viewer: Cornerstone3D stack viewport reading our WADO-RS (series metadata + frames).
// Mouse: left drag window/level, middle drag pan, right drag zoom, wheel scrolls the stack.
// Keyboard (viewport focused): ↑/↓ or PageUp/PageDown slice, 1/2/3 presets, 0 file window, R reset.
import { init as coreInit, RenderingEngine, Enums, eventTarget } from '@cornerstonejs/core';
import { init as loaderInit, wadors } from '@cornerstonejs/dicom-image-loader';
import {
  init as toolsInit,
  addTool,
  ToolGroupManager,
  WindowLevelTool,
  PanTool,
  ZoomTool,
  StackScrollTool,
  Enums as ToolEnums,
} from '@cornerstonejs/tools';

const config = JSON.parse(document.getElementById('viewer-config').textContent);
const element = document.getElementById('viewport');
const statusLine = document.getElementById('viewer-status');
const sliceInfo = document.getElementById('slice-info');
const voiInfo = document.getElementById('voi-info');
const presetSelect = document.getElementById('preset');
const imagePane = document.getElementById('image-pane');
const ecgPane = document.getElementById('ecg-pane');
const staticBase = new URL('./', import.meta.url).href;

const ENGINE_ID = 'medlmm-engine';
const VIEWPORT_ID = 'stack';
const TOOL_GROUP_ID = 'stack-tools';
let viewport = null;
let ready = null;

function say(text) {
  statusLine.textContent = text;
}

async function setUp() {
  await coreInit();
  loaderInit({ maxWebWorkers: 1, wasmBasePath: staticBase });
  toolsInit();
  for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool]) addTool(tool);
  const group = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
  const { MouseBindings } = ToolEnums;
  group.addTool(WindowLevelTool.toolName);
  group.addTool(PanTool.toolName);
  group.addTool(ZoomTool.toolName);
  group.addTool(StackScrollTool.toolName);
  group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });

  const engine = new RenderingEngine(ENGINE_ID);
  engine.enableElement({
    viewportId: VIEWPORT_ID,
    type: Enums.ViewportType.STACK,
    element,
    defaultOptions: { background: [0, 0, 0] },
  });
  group.addViewport(VIEWPORT_ID, ENGINE_ID);
  viewport = engine.getViewport(VIEWPORT_ID);
  element.addEventListener(Enums.Events.STACK_NEW_IMAGE, showPosition);
  element.addEventListener(Enums.Events.VOI_MODIFIED, showVoi);
  element.addEventListener('contextmenu', (e) => e.preventDefault());
  element.addEventListener('keydown', onKey);
  eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, (e) => say(`画像を読み込めません: ${e.detail?.error ?? ''}`));
}

function tag(meta, key) {
  const value = meta[key]?.Value;
  return value ? value[0] : undefined;
}

async function openSeries(series) {
  if (series.ecg.length) return; // the ECG viewer (ecg.js) handles waveform series
  ecgPane.hidden = true;
  imagePane.hidden = false;
  ready = ready || setUp();
  await ready;
  say('読み込み中…');
  const base = `${config.dicomweb}/studies/${config.study}/series/${series.uid}`;
  const response = await fetch(`${base}/metadata`, { headers: { Accept: 'application/dicom+json' }, credentials: 'same-origin' });
  if (!response.ok) {
    say(`シリーズを読み込めません (${response.status})`);
    return;
  }
  const instances = (await response.json()).filter((m) => m['7FE00010'] || m['7FE00008'] || m['7FE00009']);
  instances.sort((a, b) => (tag(a, '00200013') ?? 0) - (tag(b, '00200013') ?? 0));
  const imageIds = [];
  for (const meta of instances) {
    const frames = Number(tag(meta, '00280008') || 1);
    for (let frame = 1; frame <= frames; frame += 1) {
      const imageId = `wadors:${base}/instances/${tag(meta, '00080018')}/frames/${frame}`;
      wadors.metaDataManager.add(imageId, meta);
      imageIds.push(imageId);
    }
  }
  if (!imageIds.length) {
    say('表示できる画像がありません');
    return;
  }
  await viewport.setStack(imageIds, Math.floor(imageIds.length / 2));
  presetSelect.value = '';
  viewport.render();
  element.focus();
  say('');
  element.dataset.rendered = 'true';
  showPosition();
  showVoi();
}

function showPosition() {
  if (!viewport) return;
  const ids = viewport.getImageIds();
  sliceInfo.textContent = `${viewport.getCurrentImageIdIndex() + 1} / ${ids.length}`;
}

function showVoi() {
  const range = viewport?.getProperties().voiRange;
  if (!range) return;
  const width = range.upper - range.lower;
  voiInfo.textContent = `WL ${Math.round(range.lower + width / 2)} / WW ${Math.round(width)}`;
}

function applyPreset(name) {
  if (!viewport) return;
  const preset = config.presets[name];
  if (preset) {
    viewport.setProperties({ voiRange: { lower: preset.center - preset.width / 2, upper: preset.center + preset.width / 2 } });
  } else {
    viewport.resetProperties();
  }
  presetSelect.value = preset ? name : '';
  viewport.render();
  showVoi();
}

function scroll(delta) {
  const ids = viewport.getImageIds();
  const next = Math.min(ids.length - 1, Math.max(0, viewport.getCurrentImageIdIndex() + delta));
  viewport.setImageIdIndex(next);
}

function onKey(event) {
  const keys = { ArrowUp: -1, PageUp: -5, ArrowDown: 1, PageDown: 5 };
  if (event.key in keys) {
    scroll(keys[event.key]);
  } else if (['1', '2', '3'].includes(event.key)) {
    applyPreset(['lung', 'mediastinum', 'bone'][Number(event.key) - 1]);
  } else if (event.key === '0') {
    applyPreset('');
  } else if (event.key === 'r' || event.key === 'R') {
    viewport.resetCamera();
    viewport.resetProperties();
    viewport.render();
    showVoi();
  } else {
    return;
  }
  event.preventDefault();
}

presetSelect.addEventListener('change', () => applyPreset(presetSelect.value));
document.getElementById('reset').addEventListener('click', () => onKey({ key: 'r', preventDefault() {} }));
const buttons = document.querySelectorAll('button.series');
buttons.forEach((button) => {
  button.addEventListener('click', () => {
    buttons.forEach((b) => b.setAttribute('aria-pressed', String(b === button)));
    const series = config.series.find((s) => s.uid === button.dataset.series);
    openSeries(series).catch((error) => say(`表示できません: ${error}`));
  });
});
// Open the first image series (or the ECG) straight away.
const first = config.series.find((s) => !s.ecg.length && s.instances) || config.series[0];
if (first) document.querySelector(`button.series[data-series="${first.uid}"]`)?.click();

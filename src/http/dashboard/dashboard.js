// The dashboard's only script: renders each view pushed by /api/v1/events. Every value goes
// into the page through textContent, never innerHTML: file names are data.
'use strict';

const TOKEN_KEY = 'shotrouter-token';
const openLogs = new Map(); // job id -> log text (or null while loading)
const thumbs = new Map(); // job id -> its <img>, made once, so a re-render loads nothing again
let withThumbnail = new Set(); // ids of the shown jobs that have a thumbnail on this node
let oldestShown = null;
let actionError = ''; // why the last control or action failed; kept across re-renders
const bumpedTo = new Map(); // job id -> the priority its bump gave it, while it is queued

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells, id) {
  const tr = document.createElement('tr');
  if (id !== undefined) tr.dataset.id = String(id);
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el('td', cell));
  return tr;
}

function pathCell(path) {
  return el('td', path, 'path');
}

function ago(ms) {
  if (ms === null || ms === undefined) return '';
  let s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + ' min ' + s + ' s';
  const h = Math.floor(m / 60);
  return h + ' h ' + (m % 60) + ' min';
}

function fill(id, rows, empty, columns) {
  const body = document.querySelector('#' + id + ' tbody');
  if (!rows.length) {
    const td = el('td', empty); td.colSpan = columns;
    body.replaceChildren(row([td]));
    return;
  }
  body.replaceChildren(...rows);
}

function progressCell(p) {
  const td = document.createElement('td');
  if (!p) { td.textContent = '–'; return td; }
  const fps = p.fps_milli / 1000;
  let text = 'frame ' + p.frame;
  if (p.total_frames) {
    const pct = Math.min(100, (100 * p.frame) / p.total_frames);
    const bar = el('span', null, 'bar');
    const fillBar = el('i'); fillBar.style.width = pct.toFixed(1) + '%';
    bar.append(fillBar); td.append(bar);
    text += ' / ' + p.total_frames + ' (' + pct.toFixed(0) + ' %)';
    if (fps > 0) text += ', ETA ' + ago(((p.total_frames - p.frame) / fps) * 1000);
  }
  text += ', ' + fps.toFixed(1) + ' fps';
  td.append(document.createTextNode(text));
  return td;
}

function statusCell(status) {
  return el('td', status, 'st-' + status);
}

// The poster frame of a job whose rule asks for one. Its address is built from the job's
// number only, never from a file name; the server lists which jobs have one.
function thumbnail(id, kind) {
  const key = (kind || 'list') + ':' + id;
  let img = thumbs.get(key);
  if (!img) {
    img = document.createElement('img');
    img.className = kind ? 'thumb ' + kind : 'thumb';
    img.alt = 'job ' + id;
    img.loading = 'lazy';
    img.src = '/api/v1/jobs/' + encodeURIComponent(String(Number(id))) + '/thumbnail';
    thumbs.set(key, img);
  }
  return img;
}

function thumbCell(id) {
  const td = el('td', null, 'pic');
  if (withThumbnail.has(id)) td.append(thumbnail(id));
  return td;
}

function jobRows(jobs) {
  return jobs.map((j) => row([el('td', j.id), statusCell(j.status), el('td', j.rule), pathCell(j.path), el('td', j.result || '', 'result'), thumbCell(j.id)], j.id));
}

function setCount(id, value) {
  document.getElementById(id).textContent = value === null || value === undefined ? '–' : String(value);
}

// The error area: the store's error (from the live view) and the last failed action's.
let storeError = '';

function paintError() {
  const text = [storeError, actionError].filter(Boolean).join(' — ');
  const box = document.getElementById('error');
  box.textContent = text;
  box.hidden = !text;
}

function showError(text) {
  actionError = text || '';
  paintError();
}

async function showLog(id) {
  if (openLogs.has(id)) { openLogs.delete(id); render(lastView); return; }
  openLogs.set(id, null);
  render(lastView);
  try {
    const r = await fetch('/api/v1/jobs/' + encodeURIComponent(id));
    const body = await r.json();
    openLogs.set(id, r.ok ? (body.log_tail.join('\n') || '(empty log)') : body.error);
  } catch (e) {
    openLogs.set(id, 'cannot load the log: ' + e);
  }
  render(lastView);
}

function token() {
  let t = sessionStorage.getItem(TOKEN_KEY);
  if (!t) {
    t = window.prompt('API token (the content of --http-token-file):');
    if (t) sessionStorage.setItem(TOKEN_KEY, t.trim());
  }
  updateTokenState();
  return t ? t.trim() : null;
}

function updateTokenState() {
  const has = !!sessionStorage.getItem(TOKEN_KEY);
  const span = document.getElementById('token-state');
  span.replaceChildren();
  if (has) {
    const b = el('button', 'forget token');
    b.type = 'button';
    b.addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); updateTokenState(); });
    span.append(b);
  }
}

// POST an action or a control to PATH with the token. Returns the answer's body, or null
// after showing why it failed in the error area (a 401 forgets the token, to ask again).
async function post(path, what, button) {
  const t = token();
  if (!t) return null;
  if (button) button.disabled = true;
  try {
    const r = await fetch(path, { method: 'POST', headers: { Authorization: 'Bearer ' + t } });
    const body = await r.json().catch(() => ({ error: r.status + ' ' + r.statusText }));
    if (r.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    updateTokenState();
    showError(r.ok ? '' : what + ': ' + body.error);
    return r.ok ? body : null;
  } catch (e) {
    showError(what + ' failed: ' + e);
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

function jobPath(id, action) {
  return '/api/v1/jobs/' + encodeURIComponent(String(Number(id))) + '/' + action;
}

// POST /api/v1/jobs/{id}/{action} (retry, cancel) with the token; the button says how it went.
async function act(id, action, button, doneText) {
  const body = await post(jobPath(id, action), action + ' job ' + id, button);
  button.textContent = body ? doneText : action;
}

// Bump a queued job to the top of the queue (one above every queued job's priority); its
// button shows the priority it got until the job leaves the queue.
async function bump(id, button) {
  const body = await post(jobPath(id, 'bump') + '?top=true', 'bump job ' + id, button);
  if (body) {
    bumpedTo.set(id, body.priority);
    button.textContent = 'priority ' + body.priority;
  }
}

// Let a job held by its rule's window start now.
async function runNow(id, button) {
  const body = await post(jobPath(id, 'run-now'), 'run job ' + id + ' now', button);
  if (body) button.textContent = 'starting';
}

// Pause or resume a node or a rule (KIND 'node' or 'rule'). The page shows the change at
// once; the next live view (the store's list of pauses) confirms it.
async function setPaused(kind, name, pause, button) {
  const action = pause ? 'pause' : 'resume';
  const body = await post('/api/v1/' + kind + 's/' + encodeURIComponent(name) + '/' + action,
    action + ' ' + kind + ' ' + name, button);
  if (!body || !lastView || !lastView.status) return;
  const s = lastView.status;
  s.paused = (s.paused || []).filter((p) => !(p.kind === kind && p.name === name));
  if (pause) s.paused.push({ kind, name, since_ms: Date.now() });
  render(lastView);
}

function button(text, cls, onClick) {
  const b = el('button', text, cls);
  b.type = 'button';
  b.addEventListener('click', () => onClick(b));
  return b;
}

// A queued job's buttons: bump, run now (when its rule's window holds it), cancel.
function queuedActions(j) {
  const td = el('td', null, 'acts');
  const bumped = bumpedTo.get(j.id);
  td.append(button(bumped === undefined ? 'bump' : 'priority ' + bumped, 'bump-button', (b) => bump(j.id, b)));
  if ((j.result || '').startsWith('waiting for window')) {
    td.append(' ', button('run now', 'run-now-button', (b) => runNow(j.id, b)));
  }
  td.append(' ', button('cancel', 'cancel-button', (b) => act(j.id, 'cancel', b, 'cancelled')));
  return td;
}

// The control panel: each rule and node known to the page, paused or not, with the button
// that changes it. Rules are the watcher's (in file order, with their priority and window),
// then any other with jobs, in the grid or paused.
let gridRules = [];

// What decides when a rule's jobs start besides a pause: "priority 10, 19:00–07:00 (closed)".
function scheduleText(rule) {
  if (!rule) return '';
  const parts = [];
  if (rule.priority) parts.push('priority ' + rule.priority);
  if (rule.windows.length) parts.push(rule.windows.join(', ') + (rule.open ? ' (open)' : ' (closed)'));
  return parts.join(', ');
}

function controlRows(kind, names, paused, configured) {
  return names.map((name) => {
    const p = paused.get(kind + ':' + name);
    const state = p ? el('td', 'paused ' + ago(Date.now() - p.since_ms) + ' ago', 'st-paused') : el('td', 'active', 'st-active');
    const action = p ? 'resume' : 'pause';
    const td = document.createElement('td');
    td.append(button(action, action + '-button', (b) => setPaused(kind, name, !p, b)));
    const cells = [el('td', name), state];
    if (kind === 'rule') {
      const rule = configured.get(name);
      cells.push(el('td', scheduleText(rule), rule && rule.windows.length && !rule.open ? 'schedule st-paused' : 'schedule'));
    }
    cells.push(td);
    return row(cells, name);
  });
}

function renderControl(view) {
  const s = view.status;
  const paused = new Map();
  for (const p of (s && s.paused) || []) paused.set(p.kind + ':' + p.name, p);
  const configured = new Map((view.configured || []).map((r) => [r.name, r]));
  const others = new Set([...view.rules.map((r) => r.name), ...gridRules]);
  const nodes = new Set((s ? s.nodes : []).map((n) => n.name));
  for (const p of paused.values()) (p.kind === 'rule' ? others : nodes).add(p.name);
  for (const name of configured.keys()) others.delete(name);
  const rules = [...configured.keys(), ...[...others].sort()];
  fill('control-rules', controlRows('rule', rules, paused, configured), 'no rule known yet', 4);
  fill('control-nodes', controlRows('node', [...nodes].sort(), paused, configured), 'no node known yet', 3);
}

function retry(id, button) {
  return act(id, 'retry', button, 'queued again');
}

function actionCell(id, action, doneText) {
  const td = document.createElement('td');
  const b = el('button', action, action + '-button');
  b.type = 'button';
  b.addEventListener('click', () => act(id, action, b, doneText));
  td.append(b);
  return td;
}

function failureRows(failures) {
  const rows = [];
  for (const j of failures) {
    const buttons = document.createElement('td');
    const log = el('button', openLogs.has(j.id) ? 'hide log' : 'log', 'log-button');
    log.type = 'button';
    log.addEventListener('click', () => showLog(j.id));
    const again = el('button', 'retry', 'retry-button');
    again.type = 'button';
    again.addEventListener('click', () => retry(j.id, again));
    buttons.append(log, ' ', again);
    rows.push(row([el('td', j.id), el('td', j.rule), pathCell(j.path), el('td', j.result || ''), el('td', j.attempts), buttons], j.id));
    if (openLogs.has(j.id)) {
      const td = document.createElement('td'); td.colSpan = 6;
      td.append(el('pre', openLogs.get(j.id) === null ? 'loading…' : openLogs.get(j.id), 'log'));
      rows.push(row([td]));
    }
  }
  return rows;
}

let lastView = null;

function render(view) {
  if (!view) return;
  lastView = view;
  storeError = view.error ? 'store: ' + view.error : '';
  paintError();
  const s = view.status;
  const now = Date.now();
  setCount('c-running', s && s.running + s.claimed);
  setCount('c-farm', s && s.on_farm);
  setCount('c-queued', s && s.queued);
  setCount('c-oldest', s && s.oldest_queued_s !== null ? ago(s.oldest_queued_s * 1000) : '–');
  setCount('c-failed', s && s.failed_24h);
  setCount('c-done1', s && s.done_1h);
  setCount('c-done24', s && s.done_24h);
  fill('running', view.running.map((j) => row([el('td', j.id), el('td', j.rule), pathCell(j.path), el('td', ago(j.started_at ? now - j.started_at : null)), progressCell(j.progress), actionCell(j.id, 'cancel', 'cancelling')], j.id)), 'nothing running', 6);
  const pausedRules = new Set(((s && s.paused) || []).filter((p) => p.kind === 'rule').map((p) => p.name));
  for (const id of bumpedTo.keys()) if (!view.queued.some((j) => j.id === id)) bumpedTo.delete(id);
  fill('queued', view.queued.map((j) => row([el('td', j.id), el('td', j.rule), pathCell(j.path), el('td', ago(now - j.created_at)), el('td', j.result || (pausedRules.has(j.rule) ? 'rule paused (shotrouter resume --rule ' + j.rule + ')' : ''), 'result'), queuedActions(j)], j.id)), 'queue empty', 6);
  setCount('c-waiting', s && s.waiting);
  document.getElementById('waiting-section').hidden = !view.waiting || !view.waiting.length;
  fill('waiting', (view.waiting || []).map((j) => row([el('td', j.id), el('td', j.rule), pathCell(j.path), el('td', (j.result || '').replace(/^waiting for /, '')), el('td', ago(now - j.created_at))], j.id)), '', 5);
  document.getElementById('queue-note').textContent = s && s.queued > view.queued.length ? '(newest ' + view.queued.length + ' of ' + s.queued + ')' : '';
  fill('failures', failureRows(view.failures), 'no failures in the last 24 h', 6);
  withThumbnail = new Set(view.thumbnails || []);
  fill('recent', jobRows(view.recent), 'no jobs yet', 6);
  // Pictures no longer shown are forgotten, so a page open for days holds only what it shows.
  if (thumbs.size > 100) for (const [key, img] of thumbs) if (!img.isConnected) thumbs.delete(key);
  if (oldestShown === null && view.recent.length) oldestShown = view.recent[view.recent.length - 1].id;
  fill('rules', view.rules.map((r) => row([el('td', r.name), el('td', r.done_1h), el('td', r.failed_24h), el('td', r.queued)])), 'no rules with jobs yet', 4);
  renderWaste(view.waste);
  renderControl(view);
  fill('nodes', (s ? s.nodes : []).map((n) => row([el('td', n.name), el('td', ago(n.last_seen_s * 1000) + ' ago'), el('td', n.health || 'ok')])), 'no node has run a daemon on this store', 3);
}

function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes, u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (u ? n.toFixed(1) : String(n)) + ' ' + units[u];
}

// Per cut the frames rendered that the cut does not show and those it shows that never
// arrived, as the watcher last worked them out; the worst shots below.
function renderWaste(waste) {
  const section = document.getElementById('waste-section');
  section.hidden = !waste || !waste.length;
  if (section.hidden) return;
  fill('waste', waste.map((c) => row([el('td', c.cut + ' rev ' + c.revision), el('td', c.outside_frames + ' (' + size(c.outside_bytes) + ')'), el('td', c.missing_frames), el('td', c.shots_off)])), '', 4);
  const shots = [];
  for (const c of waste) {
    for (const s of c.worst) {
      shots.push(row([el('td', c.cut), el('td', s.shot), el('td', s.head_in + '-' + s.tail_out), el('td', s.cut_in + '-' + s.cut_out),
        el('td', s.outside_frames + ' (' + size(s.outside_bytes) + ')'), el('td', s.missing_frames ? s.missing_frames + ': ' + s.missing : '0')]));
    }
  }
  fill('waste-shots', shots, 'every shot has its frames, and none outside the cut', 6);
  const at = Math.min(...waste.map((c) => c.computed_at_ms));
  document.getElementById('waste-note').textContent = '(worked out ' + ago(Date.now() - at) + ' ago)';
}

async function older() {
  if (oldestShown === null) return;
  const r = await fetch('/api/v1/jobs?limit=50&before=' + encodeURIComponent(oldestShown));
  const body = await r.json();
  if (!r.ok) { showError(body.error); return; }
  const table = document.getElementById('older');
  table.hidden = false;
  table.tBodies[0].append(...jobRows(body.jobs));
  if (body.jobs.length) oldestShown = body.jobs[body.jobs.length - 1].id;
  if (body.next_before === null) document.getElementById('more').disabled = true;
}

// The per-shot grid (/api/v1/shots): rows are shots, columns rules, each cell the latest job's
// state; its thumbnail shows on hover, a failure opens its log. A server without a watcher
// has no rules (503): the section stays hidden. Refreshed every few seconds while shown.
const SHOTS_EVERY_MS = 5000;

async function loadShots() {
  const section = document.getElementById('shots-section');
  try {
    const r = await fetch('/api/v1/shots');
    if (!r.ok) { section.hidden = true; return; }
    renderShots(await r.json());
  } catch (e) {
    section.hidden = true;
  }
}

function shotCell(cell) {
  const td = el('td', null, 'cell');
  if (!cell) { td.textContent = '·'; td.classList.add('none'); return td; }
  const mark = el('span', cell.status, 'st-' + cell.status);
  td.title = cell.path + (cell.result ? '\n' + cell.result : '');
  td.append(mark);
  if (cell.status === 'failed') {
    const log = el('button', 'log', 'shot-log-button');
    log.type = 'button';
    log.addEventListener('click', () => showShotLog(cell.id));
    td.append(' ', log);
  }
  if (cell.thumbnail) td.append(thumbnail(cell.id, 'pop'));
  return td;
}

function renderShots(grid) {
  const section = document.getElementById('shots-section');
  section.hidden = !grid.rules.length;
  if (section.hidden) return;
  const head = document.querySelector('#shots thead tr');
  head.replaceChildren(el('th', 'shot'), ...grid.rules.map((r) => el('th', r)));
  if (grid.rules.some((r) => !gridRules.includes(r))) { gridRules = grid.rules; render(lastView); }
  fill('shots', grid.shots.map((s) => row([el('td', s.shot, 'shot'), ...grid.rules.map((r) => shotCell(s.cells[r]))])),
    'no job of these rules yet', grid.rules.length + 1);
  document.getElementById('shots-note').textContent = '(' + grid.shots.length + ' shots, from the newest ' + grid.jobs_read + ' jobs)';
}

async function showShotLog(id) {
  const pre = document.getElementById('shot-log');
  pre.hidden = false;
  pre.textContent = 'job ' + id + ': loading…';
  try {
    const r = await fetch('/api/v1/jobs/' + encodeURIComponent(id));
    const body = await r.json();
    pre.textContent = 'job ' + id + '\n' + (r.ok ? (body.log_tail.join('\n') || '(empty log)') : body.error);
  } catch (e) {
    pre.textContent = 'cannot load the log: ' + e;
  }
}

// The charts are SVG the server draws, shown as images (no script runs in them); drawn again
// every CHARTS_EVERY_MS.
const CHARTS_EVERY_MS = 30000;

function reloadCharts() {
  for (const [id, name] of [['chart-done', 'done'], ['chart-queued', 'queued']]) {
    document.getElementById(id).src = '/api/v1/charts/' + name + '.svg?at=' + Date.now();
  }
}

function connect() {
  const conn = document.getElementById('conn');
  const source = new EventSource('/api/v1/events');
  source.addEventListener('live', (event) => {
    conn.textContent = 'live';
    conn.className = 'conn live';
    render(JSON.parse(event.data));
  });
  source.onerror = () => { conn.textContent = 'reconnecting…'; conn.className = 'conn'; };
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('more').addEventListener('click', older);
  updateTokenState();
  connect();
  loadShots();
  setInterval(loadShots, SHOTS_EVERY_MS);
  setInterval(reloadCharts, CHARTS_EVERY_MS);
});

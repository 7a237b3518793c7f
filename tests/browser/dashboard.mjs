// The dashboard in a real headless Chromium, against a daemon that
// tests/integration/http_browser.rs started. It writes the files itself, so it sees each job
// appear, run and end without reloading; a file named like an HTML payload must never open a
// dialog; Retry asks for the token once and the job runs again; a `thumbnail: true` rule's
// product shows its poster frame in the jobs list; the per-shot grid and the charts show;
// the control panel pauses a rule (its new job stays queued) and resumes it (the job runs),
// pauses and resumes the node; Bump and Run now act on queued jobs; Cancel stops a running
// job; the grid shows a cell's thumbnail on hover and a failed cell's log. Prints one JSON line.
//
// Environment: URL (the dashboard), TOKEN, SHOTS (a watched folder), OK (the file whose
// presence makes the `check` rule pass), EVIL_SHOT (a shot of the imported cut named like an
// HTML payload), SCREENSHOT (optional: where to save a PNG).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const { URL, TOKEN, SHOTS, OK, SCREENSHOT, EVIL_SHOT } = process.env;
const WAIT = { timeout: 20000 };
const EVIL = '<img src=x onerror=alert(1)>.tif';

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const dialogs = [];
  let prompts = 0;
  page.on('dialog', async (dialog) => {
    if (dialog.type() === 'prompt') {
      prompts += 1;
      await dialog.accept(TOKEN);
    } else {
      dialogs.push(dialog.type() + ': ' + dialog.message());
      await dialog.dismiss();
    }
  });
  let navigations = 0;
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations += 1; });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await page.goto(URL);
  await page.waitForSelector('#conn.live', WAIT);

  // The cut's waste, worked out by the watcher: sh010's frame 1000 lies outside, most of its
  // cut is missing, and a shot named like an HTML payload is shown as text.
  await page.waitForFunction(() => [...document.querySelectorAll('#waste tbody tr')]
    .some((tr) => tr.textContent.includes('reel1 rev 1')), null, WAIT);
  await page.waitForFunction((evil) => [...document.querySelectorAll('#waste-shots tbody tr')]
    .some((tr) => tr.textContent.includes(evil)), EVIL_SHOT, WAIT);
  const wasteText = await page.evaluate(() => document.querySelector('#waste-shots tbody').textContent);
  for (const want of ['sh010', '1001-1064', '1009-1056', '1 (4 B)', '1009,1011-1056']) {
    if (!wasteText.includes(want)) failures.push('the waste panel lacks ' + JSON.stringify(want) + ': ' + wasteText);
  }

  // No shot has its grade LUT: the three plates' graded jobs wait, and the waiting panel says
  // for what, as text (one shot is named like an HTML payload).
  await page.waitForFunction((evil) => [...document.querySelectorAll('#waiting tbody tr')]
    .some((tr) => tr.textContent.includes(evil + '/grade.cube')), EVIL_SHOT, WAIT);
  const waitingCount = await page.evaluate(() => document.getElementById('c-waiting').textContent);
  if (waitingCount !== '3') failures.push('the waiting counter shows ' + JSON.stringify(waitingCount));

  // The per-shot grid: a row per shot of the rules with a `shot` capture; the shot named like
  // an HTML payload is a row whose name is text, and each cell holds its latest job's state.
  await page.waitForFunction((evil) => [...document.querySelectorAll('#shots tbody td.shot')]
    .some((td) => td.textContent === evil), EVIL_SHOT, WAIT);
  const grid = await page.evaluate(() => ({
    head: [...document.querySelectorAll('#shots thead th')].map((th) => th.textContent),
    shots: [...document.querySelectorAll('#shots tbody td.shot')].map((td) => td.textContent),
    states: [...document.querySelectorAll('#shots tbody td.cell span')].map((s) => s.textContent),
  }));
  if (JSON.stringify(grid.head) !== JSON.stringify(['shot', 'plates', 'graded', 'preview', 'qc'])) failures.push('the grid has columns ' + JSON.stringify(grid.head));
  if (!grid.shots.includes('sh010')) failures.push('the grid lacks sh010: ' + JSON.stringify(grid.shots));
  if (!grid.states.includes('waiting')) failures.push('no grid cell shows a waiting job: ' + JSON.stringify(grid.states));

  // A job appears, runs and ends, without a reload.
  fs.writeFileSync(path.join(SHOTS, 'sh010_comp.tif'), 'frame');
  const rowWith = (table, text, extra) => page.waitForFunction(
    ([table, text, extra]) => [...document.querySelectorAll('#' + table + ' tbody tr')]
      .some((tr) => tr.textContent.includes(text) && (!extra || tr.querySelector(extra))),
    [table, text, extra], WAIT);
  await rowWith('running', 'sh010_comp.tif');
  await rowWith('recent', 'sh010_comp.tif', '.st-done');

  // A product of a `thumbnail: true` rule: its poster frame is drawn and shown in the jobs
  // list, loaded from the API by job number.
  fs.writeFileSync(path.join(SHOTS, 'sh010_review.poster'), 'go');
  await rowWith('recent', 'sh010_review.poster', 'img.thumb');
  await page.waitForFunction(() => [...document.querySelectorAll('#recent img.thumb')]
    .some((img) => img.complete && img.naturalWidth > 0), null, WAIT);
  const thumbWidth = await page.evaluate(() => Math.max(...[...document.querySelectorAll('#recent img.thumb')].map((img) => img.naturalWidth)));
  if (thumbWidth !== 320) failures.push('the thumbnail is ' + thumbWidth + ' pixels wide, not 320');

  // The charts: SVG drawn by the server, with a point for each minute since the first job
  // done, and the queue's first sample.
  await page.evaluate(() => reloadCharts());
  await page.waitForFunction(() => ['chart-done', 'chart-queued']
    .every((id) => { const img = document.getElementById(id); return img.complete && img.naturalWidth > 0; }), null, WAIT);
  const chartPoints = await page.evaluate(async () => {
    const count = async (name) => {
      const text = await (await fetch('/api/v1/charts/' + name + '.svg')).text();
      const svg = new DOMParser().parseFromString(text, 'image/svg+xml');
      return [...svg.querySelectorAll('polyline.series')]
        .map((line) => line.getAttribute('points').trim().split(/\s+/).filter(Boolean).length);
    };
    return { done: await count('done'), queued: await count('queued') };
  });
  if (!chartPoints.done.length || !chartPoints.done.every((n) => n > 0)) failures.push('the done chart has no points: ' + JSON.stringify(chartPoints));
  if (!chartPoints.queued.length) failures.push('the queue chart has no series: ' + JSON.stringify(chartPoints));

  // A failure whose name is an HTML payload: shown as text, never run.
  fs.writeFileSync(path.join(SHOTS, 'checked', EVIL), 'frame');
  await rowWith('failures', EVIL);
  const shownName = await page.evaluate(() => document.querySelector('#failures tbody tr td.path').textContent);
  if (!shownName.endsWith(EVIL)) failures.push('failure row shows ' + JSON.stringify(shownName));
  // The only pictures are thumbnails and charts, addressed by job number or chart name under
  // /api/ of this server: none made of a file name, none with a handler attribute.
  const foreign = await page.evaluate(() => [...document.querySelectorAll('img')]
    .filter((img) => {
      const url = new URL(img.src);
      const ours = (img.classList.contains('thumb') && /^\/api\/v1\/jobs\/[0-9]+\/thumbnail$/.test(url.pathname))
        || (img.classList.contains('chart') && /^\/api\/v1\/charts\/(done|queued)\.svg$/.test(url.pathname));
      return !(ours && url.origin === location.origin && !img.hasAttribute('onerror') && !img.hasAttribute('onload'));
    })
    .map((img) => img.outerHTML));
  if (foreign.length) failures.push(foreign.length + ' <img> elements neither thumbnails nor charts (made from a file name?): ' + foreign.join(' '));
  await page.click('#failures tbody tr .log-button');
  await page.waitForFunction(() => {
    const pre = document.querySelector('#failures pre.log');
    return pre && pre.textContent.includes('exited with status 1');
  }, null, WAIT);

  // Control: pause the `review` rule from the page (the token is asked for here, once); a
  // file it matches is recorded queued and stays so while the page shows the rule paused.
  const apiJob = (suffix) => page.evaluate(async (suffix) => {
    const body = await (await fetch('/api/v1/jobs?limit=100')).json();
    return body.jobs.find((j) => j.path.endsWith(suffix)) || null;
  }, suffix);
  const apiPaused = () => page.evaluate(async () => (await (await fetch('/api/v1/status')).json()).store.paused
    .map((p) => p.kind + ' ' + p.name));
  const controlShows = (table, name, state) => page.evaluate(([table, name, state]) => {
    const tr = [...document.querySelectorAll('#' + table + ' tbody tr')].find((tr) => tr.firstChild.textContent === name);
    return !!tr && !!tr.querySelector('.st-' + state) && !!tr.querySelector(state === 'paused' ? '.resume-button' : '.pause-button');
  }, [table, name, state]);
  const waitFor = async (what, check, ms = 20000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const last = await check();
      if (last === true) return;
      if (Date.now() > deadline) throw new Error('timed out waiting for ' + what + ': ' + JSON.stringify(last));
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const controlButton = (table, name, cls) => page.evaluate(([table, name, cls]) => [...document.querySelectorAll('#' + table + ' tbody tr')]
    .find((tr) => tr.firstChild.textContent === name).querySelector(cls).click(), [table, name, cls]);
  await waitFor('review in the control panel', () => controlShows('control-rules', 'review', 'active'));
  // The watcher's rules are listed before any of their jobs exist, with their windows read
  // against the daemon's clock (noon): `night` has no job yet.
  await waitFor('night\'s closed window in the control panel', () => page.evaluate(() => {
    const tr = [...document.querySelectorAll('#control-rules tbody tr')].find((tr) => tr.firstChild.textContent === 'night');
    const text = tr && tr.querySelector('.schedule').textContent;
    return text === '19:00–07:00 (closed)' || text || null;
  }));
  await controlButton('control-rules', 'review', '.pause-button');
  await waitFor('the API to list review paused', async () => (await apiPaused()).includes('rule review') || await apiPaused());
  await waitFor('the page to show review paused', () => controlShows('control-rules', 'review', 'paused'));
  fs.writeFileSync(path.join(SHOTS, 'sh010_paused.tif'), 'frame');
  await rowWith('queued', 'sh010_paused.tif', '.bump-button');
  await page.waitForFunction(() => [...document.querySelectorAll('#queued tbody tr')]
    .some((tr) => tr.textContent.includes('sh010_paused.tif') && tr.querySelector('td.result').textContent === 'rule paused (shotrouter resume --rule review)'), null, WAIT);
  const heldUntil = Date.now() + 3000;
  while (Date.now() < heldUntil) {
    const job = await apiJob('sh010_paused.tif');
    if (!job || job.status !== 'queued') { failures.push('the paused rule\'s job is ' + JSON.stringify(job)); break; }
    if (!await controlShows('control-rules', 'review', 'paused')) { failures.push('the page no longer shows review paused'); break; }
    await new Promise((r) => setTimeout(r, 200));
  }

  // Bump: the queued job goes to the top; the API answers its new priority, the button shows it.
  const bumped = page.waitForResponse((r) => r.url().includes('/bump?top=true') && r.request().method() === 'POST', WAIT);
  await page.evaluate(() => [...document.querySelectorAll('#queued tbody tr')]
    .find((tr) => tr.textContent.includes('sh010_paused.tif')).querySelector('.bump-button').click());
  const bumpAnswer = await (await bumped).json();
  if (!(bumpAnswer.priority > 0)) failures.push('bump answered ' + JSON.stringify(bumpAnswer));
  await rowWith('queued', 'sh010_paused.tif', '.bump-button');
  await page.waitForFunction((p) => [...document.querySelectorAll('#queued tbody tr')]
    .some((tr) => tr.textContent.includes('sh010_paused.tif') && tr.querySelector('.bump-button').textContent === 'priority ' + p),
  bumpAnswer.priority, WAIT);

  // A job held by its rule's window (the daemon's clock says 12:00) has its reason and a
  // "run now" button.
  fs.writeFileSync(path.join(SHOTS, 'sh010_late.night'), 'x');
  await rowWith('queued', 'sh010_late.night', '.run-now-button');
  const reason = await page.evaluate(() => [...document.querySelectorAll('#queued tbody tr')]
    .find((tr) => tr.textContent.includes('sh010_late.night')).querySelector('td.result').textContent);
  if (reason !== 'waiting for window 19:00–07:00') failures.push('the held job\'s reason reads ' + JSON.stringify(reason));
  const runNowButtons = await page.evaluate(() => [...document.querySelectorAll('#queued tbody tr')]
    .filter((tr) => tr.querySelector('.run-now-button')).map((tr) => tr.textContent));
  if (runNowButtons.length !== 1) failures.push('run-now buttons on ' + JSON.stringify(runNowButtons));
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Run now: it starts outside its window and ends done.
  await page.evaluate(() => [...document.querySelectorAll('#queued tbody tr')]
    .find((tr) => tr.textContent.includes('sh010_late.night')).querySelector('.run-now-button').click());
  await rowWith('recent', 'sh010_late.night', '.st-done');

  // Resume the rule from the page: its held job runs and ends done.
  await controlButton('control-rules', 'review', '.resume-button');
  await waitFor('the page to show review active', () => controlShows('control-rules', 'review', 'active'));
  await waitFor('the held job done', async () => { const job = await apiJob('sh010_paused.tif'); return (job && job.status === 'done') || job; });
  await rowWith('recent', 'sh010_paused.tif', '.st-done');
  if ((await apiPaused()).length) failures.push('still paused after resume: ' + JSON.stringify(await apiPaused()));

  // A node, paused and resumed from the page; the API agrees each time.
  const node = await page.evaluate(() => document.querySelector('#control-nodes tbody tr td').textContent);
  await controlButton('control-nodes', node, '.pause-button');
  await waitFor('the API to list the node paused', async () => (await apiPaused()).includes('node ' + node) || await apiPaused());
  await waitFor('the page to show the node paused', () => controlShows('control-nodes', node, 'paused'));
  await controlButton('control-nodes', node, '.resume-button');
  await waitFor('the API to list no pause', async () => (await apiPaused()).length === 0 || await apiPaused());
  await waitFor('the page to show the node active', () => controlShows('control-nodes', node, 'active'));

  // Retry, with the token already given: the job runs again and ends done.
  fs.writeFileSync(OK, '');
  await page.click('#failures tbody tr .retry-button');
  await page.waitForFunction((evil) => ![...document.querySelectorAll('#failures tbody tr')]
    .some((tr) => tr.textContent.includes(evil)), EVIL, WAIT);
  await page.waitForFunction((evil) => [...document.querySelectorAll('#recent tbody tr')]
    .some((tr) => tr.textContent.includes(evil) && tr.textContent.includes('check') && tr.querySelector('.st-done')), EVIL, WAIT);
  // Cancel, with the token already given: a long job stops and is recorded cancelled.
  fs.writeFileSync(path.join(SHOTS, 'sh010_long.hold'), 'x');
  await rowWith('running', 'sh010_long.hold', '.cancel-button');
  await page.evaluate(() => [...document.querySelectorAll('#running tbody tr')]
    .find((tr) => tr.textContent.includes('sh010_long.hold')).querySelector('.cancel-button').click());
  await rowWith('recent', 'sh010_long.hold', '.st-cancelled');

  // The per-shot grid's pictures and logs: a `thumbnail: true` rule's cell shows its poster
  // frame on hover (drawn, 320 pixels wide), a failed cell's `log` button opens its log.
  fs.writeFileSync(path.join(SHOTS, 'sh010.preview'), 'go');
  fs.writeFileSync(path.join(SHOTS, 'sh010.qc'), 'go');
  const gridTd = (rule) => page.evaluateHandle((rule) => {
    const col = [...document.querySelectorAll('#shots thead th')].findIndex((th) => th.textContent === rule);
    const tr = [...document.querySelectorAll('#shots tbody tr')].find((tr) => tr.firstChild.textContent === 'sh010');
    return tr && col > 0 ? tr.children[col] : null;
  }, rule);
  const gridCell = async (rule) => (await gridTd(rule)).evaluate((td) => {
    if (!td) return null;
    const img = td.querySelector('img.pop');
    const span = td.querySelector('span');
    return { state: span ? span.textContent : td.textContent, log: !!td.querySelector('.shot-log-button'), picture: !!img,
      shown: !!img && getComputedStyle(img).display !== 'none', width: img && img.complete ? img.naturalWidth : 0 };
  });
  await waitFor('the grid\'s preview cell done with a picture', async () => { const c = await gridCell('preview'); return (c && c.state === 'done' && c.picture) || c; });
  if ((await gridCell('preview') || {}).shown) failures.push('the grid\'s thumbnail shows without a hover');
  await waitFor('the grid\'s thumbnail on hover', async () => {
    // The grid is drawn again every 5 s: a cell replaced under the pointer is hovered again.
    try { await (await gridTd('preview')).hover({ timeout: 1000 }); } catch (e) { return String(e).split('\n')[0]; }
    const c = await gridCell('preview');
    return (c && c.shown && c.width === 320) || c;
  });
  await page.mouse.move(0, 0);
  await waitFor('the grid\'s qc cell failed with a log button', async () => { const c = await gridCell('qc'); return (c && c.state === 'failed' && c.log) || c; });
  await page.evaluate(() => {
    const col = [...document.querySelectorAll('#shots thead th')].findIndex((th) => th.textContent === 'qc');
    [...document.querySelectorAll('#shots tbody tr')].find((tr) => tr.firstChild.textContent === 'sh010').children[col].querySelector('.shot-log-button').click();
  });
  await page.waitForFunction(() => {
    const pre = document.getElementById('shot-log');
    return !pre.hidden && pre.textContent.includes('exited with status 1');
  }, null, WAIT);

  const kept = await page.evaluate(() => sessionStorage.getItem('shotrouter-token'));
  if (kept !== TOKEN) failures.push('token not kept in sessionStorage: ' + JSON.stringify(kept));
  if (prompts !== 1) failures.push('asked for the token ' + prompts + ' times');
  if (dialogs.length) failures.push('dialogs opened: ' + dialogs.join('; '));
  if (navigations !== 1) failures.push('the page navigated ' + navigations + ' times (reloads?)');
  if (errors.length) failures.push('script errors: ' + errors.join('; '));
} catch (e) {
  failures.push(String(e && e.stack ? e.stack : e));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ok: failures.length === 0, failures }));
process.exit(failures.length === 0 ? 0 : 1);

// The dashboard's first load: navigation start -> first live view drawn, in headless Chromium,
// each run in a fresh browser context (no cache). Prints one JSON line {"ms": [...]}.
// Usage: node benches/http_api_firstload.mjs URL [RUNS]
import { chromium } from '../tests/browser/node_modules/playwright-core/index.mjs';

const [url, runsText] = process.argv.slice(2);
const runs = Number(runsText || 5);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const ms = [];
for (let i = 0; i < runs; i += 1) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const start = performance.now();
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('#conn.live')
    && document.querySelector('#recent tbody tr'), null, { timeout: 60000, polling: 'raf' });
  ms.push(performance.now() - start);
  await context.close();
}
await browser.close();
console.log(JSON.stringify({ ms }));

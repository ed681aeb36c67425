// Browser benchmark of drift.html: opens each report in headless Chromium (the distribution's
// package, /usr/bin/chromium) from file:// and measures, inside the page:
//
//   load       navigation start -> the first frame after the `load` event with change rows in
//              the DOM (the page is drawn and its script has run: a reader can use it);
//   filter     a change of the Action select (and of the Field select) -> the count of shown
//              changes updated and the next frame drawn;
//   keystroke  one character typed into the search box (an `input` event) -> the same;
//   heap       the JavaScript heap in use after the load.
//
// Usage: node bench.mjs [--runs N] [--timeout SECONDS] [--steps N] FILE.html...
// (--steps N: only the first N filter changes and keystrokes, for a page that takes minutes.)
// Prints one line per file and a Markdown table at the end. Not part of CI: timings vary with
// the machine, so nothing here asserts a time. `check.mjs` checks behaviour instead.
import { chromium } from 'playwright-core';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
let runs = 3;
let timeout = 300;
let steps = Infinity;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--runs') runs = Number(args[++i]);
  else if (args[i] === '--timeout') timeout = Number(args[++i]);
  else if (args[i] === '--steps') steps = Number(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: node bench.mjs [--runs N] [--timeout SECONDS] FILE.html...');
  process.exit(2);
}

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--allow-file-access-from-files'],
});

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

// In the page: waits for the `load` event, then for a frame with change rows in the DOM.
async function measureLoad(page) {
  return page.evaluate(async () => {
    if (document.readyState !== 'complete') {
      await new Promise((r) => window.addEventListener('load', r, { once: true }));
    }
    const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    const rowsShown = () => document.querySelector('#changes tr.row, #changes tr[data-row]');
    while (!rowsShown()) await frame();
    await frame();
    return performance.now();
  });
}

// In the page: applies `change` (a function body run in the page) and waits until #shown is
// rewritten (every renderer rewrites it once per filter pass) and a frame is drawn.
async function measureInteraction(page, change, arg) {
  return page.evaluate(
    async ([body, arg]) => {
      const shown = document.getElementById('shown');
      const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      const done = new Promise((r) => {
        const obs = new MutationObserver(() => {
          obs.disconnect();
          r();
        });
        obs.observe(shown, { childList: true, characterData: true, subtree: true });
      });
      const t0 = performance.now();
      new Function('arg', body)(arg);
      await done;
      await frame();
      return { ms: performance.now() - t0, shown: shown.textContent };
    },
    [change, arg],
  );
}

const SELECT = `
  const s = document.querySelector('select[data-filter="' + arg.filter + '"]');
  s.value = arg.value;
  s.dispatchEvent(new Event('change', { bubbles: true }));`;
const TYPE = `
  const q = document.getElementById('q');
  q.value = arg;
  q.dispatchEvent(new Event('input', { bubbles: true }));`;

const results = [];
for (const file of files) {
  const url = pathToFileURL(resolve(file)).href;
  const size = statSync(file).size;
  const loads = [];
  let heap = NaN;
  let filters = [];
  let keys = [];
  let error = '';
  for (let run = 0; run < runs && !error; run++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout * 1000);
    page.on('dialog', (d) => {
      error = `a dialog opened: ${d.message()}`;
      d.dismiss();
    });
    try {
      await page.goto(url, { waitUntil: 'commit', timeout: timeout * 1000 });
      loads.push(await measureLoad(page));
      if (run === 0) {
        const cdp = await context.newCDPSession(page);
        await cdp.send('Performance.enable');
        const { metrics } = await cdp.send('Performance.getMetrics');
        heap = metrics.find((m) => m.name === 'JSHeapUsedSize').value / 2 ** 20;
        // Filters: every action in turn, then back to all; a field, then back to all.
        const actions = await page.$$eval('select[data-filter="data-action"] option', (os) =>
          os.map((o) => o.value),
        );
        const fields = await page.$$eval('select[data-filter="data-field"] option', (os) =>
          os.map((o) => o.value),
        );
        const plan = [
          ...actions.slice(1).map((value) => ({ filter: 'data-action', value })),
          { filter: 'data-action', value: '' },
          ...fields.slice(1, 4).map((value) => ({ filter: 'data-field', value })),
          { filter: 'data-field', value: '' },
        ];
        for (const step of plan.slice(0, steps)) {
          filters.push((await measureInteraction(page, SELECT, step)).ms);
        }
        // Keystrokes: a VM name typed one character at a time, then erased.
        const word = 'vm-00012';
        for (let i = 1; i <= Math.min(word.length, steps); i++) {
          keys.push((await measureInteraction(page, TYPE, word.slice(0, i))).ms);
        }
        for (let i = Math.min(word.length, steps) - 1; i >= 0 && steps === Infinity; i--) {
          keys.push((await measureInteraction(page, TYPE, word.slice(0, i))).ms);
        }
      }
    } catch (e) {
      error = String(e.message || e).split('\n')[0];
    }
    await context.close();
  }
  const row = {
    file,
    mb: size / 1e6,
    load: median(loads),
    loads,
    filter: median(filters),
    filterMax: Math.max(...filters),
    key: median(keys),
    keyMax: Math.max(...keys),
    heap,
    error,
  };
  results.push(row);
  console.log(
    `${file}: ${row.mb.toFixed(1)} MB, load ${row.load.toFixed(0)} ms (runs: ${loads
      .map((l) => l.toFixed(0))
      .join(', ')}), filter median ${row.filter.toFixed(0)} ms (max ${row.filterMax.toFixed(
      0,
    )}), keystroke median ${row.key.toFixed(0)} ms (max ${row.keyMax.toFixed(0)}), heap ${heap.toFixed(
      0,
    )} MiB${error ? ` ERROR ${error}` : ''}`,
  );
}
await browser.close();

console.log('\n| file | size | load | filter change (median / max) | keystroke (median / max) | JS heap |');
console.log('|---|---:|---:|---:|---:|---:|');
const ms = (x) => (Number.isFinite(x) ? `${x >= 1000 ? (x / 1000).toFixed(2) + ' s' : x.toFixed(0) + ' ms'}` : 'n/a');
for (const r of results) {
  console.log(
    `| ${r.file} | ${r.mb.toFixed(1)} MB | ${ms(r.load)} | ${ms(r.filter)} / ${ms(r.filterMax)} | ${ms(
      r.key,
    )} / ${ms(r.keyMax)} | ${Number.isFinite(r.heap) ? r.heap.toFixed(0) + ' MiB' : 'n/a'} |${
      r.error ? ' ' + r.error : ''
    }`,
  );
}

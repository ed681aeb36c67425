// Behaviour checks of drift.html in headless Chromium, on the files `cargo bench --bench
// report_html` writes: hostile values stay inert, filters, search and paging work.
// Usage: node check.mjs DIR (default ../../target/report-bench). Exits 1 on a failure.
import { chromium } from 'playwright-core';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2] || '../../target/report-bench';
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};

async function open(name) {
  const page = await browser.newPage();
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pathToFileURL(resolve(dir, name)).href, { waitUntil: 'load' });
  return { page, dialogs, errors };
}
// The count of shown changes once the page has caught up (typing is debounced on big pages).
const shown = async (page) => {
  await page.waitForTimeout(20);
  await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
  return page.textContent('#shown');
};
const select = (page, filter, value) =>
  page.selectOption(`select[data-filter="${filter}"]`, value);

{
  const { page, dialogs, errors } = await open('hostile.html');
  check(dialogs.length === 0, 'hostile: no dialog opened');
  check(errors.length === 0, `hostile: no script error ${errors.join(' ')}`);
  check((await page.$$('img')).length === 0, 'hostile: no <img> element');
  check((await page.$$('script')).length === 2, 'hostile: only the two script blocks');
  const names = await page.$$eval('#rows .name', (es) => es.map((e) => e.textContent));
  for (const v of ['</script>', '<img src=x onerror=alert(1)>', '<script>alert(1)</script>']) {
    check(names.includes(v), `hostile: ${v} shown as text`);
  }
  check((await page.$$('#rows table thead th')).length > 0, 'hostile: tables with headers');
  await page.close();
}
{
  const { page, errors } = await open('small.html');
  check(errors.length === 0, 'small: no script error');
  check((await shown(page)) === '8 of 8 changes', 'small: all 8 changes shown');
  check((await page.$$('#rows tr.row')).length === 8, 'small: 8 rows drawn');
  check(await page.isHidden('nav.pager'), 'small: no pager for one page');
  await select(page, 'data-action', 'update');
  check((await shown(page)) === '3 of 8 changes', 'small: action filter');
  await page.fill('#q', 'db-01');
  check((await shown(page)) === '3 of 8 changes', 'small: search within a filter');
  await select(page, 'data-action', '');
  await page.fill('#q', 'WEB SERVER (NEW');
  check((await shown(page)) === '1 of 8 changes', 'small: search is case-blind, reads values');
  await page.click('#reset');
  await select(page, 'data-c0', 'vcenter-east');
  check((await shown(page)) === '8 of 8 changes', 'small: context filter');
  await page.fill('#q', 'nothing like this');
  check(await page.isVisible('#nomatch'), 'small: "no change matches" shown');
  await page.click('#reset');
  check((await page.inputValue('#q')) === '' && (await shown(page)) === '8 of 8 changes', 'small: reset');
  const diff = await page.$eval('#rows td.diff del + ins', (e) => e.parentNode.innerHTML);
  check(diff.includes('<del>'), `small: diffs drawn with del/ins (${diff})`);
  await page.close();
}
{
  const { page, errors } = await open('drift-100000.html');
  check(errors.length === 0, '100k: no script error');
  const rows = (await page.$$('#rows tr.row')).length;
  check(rows >= 100 && rows < 200, `100k: one page of rows drawn (${rows})`);
  const info = () => page.textContent('nav.pager .info');
  check((await info()).startsWith('Page 1 of'), `100k: pager (${await info()})`);
  await page.click('nav.pager .next');
  check((await info()).startsWith('Page 2 of'), '100k: next page');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  check((await info()).startsWith('Page 1 of'), '100k: previous page from the keyboard');
  await select(page, 'data-field', 'cpus');
  const cpus = await page.$$eval('#rows td.field code', (es) => es.every((e) => e.textContent === 'cpus'));
  check(cpus, '100k: field filter draws only that field');
  const rels = () => page.$$eval('#relationships tbody tr', (es) => es.length);
  check((await rels()) === 500, '100k: 500 relationship rows in the HTML');
  await page.click('#rels-all');
  check((await rels()) === 1200, '100k: all 1,200 relationship rows after "Show the other"');
  await page.fill('#q', 'vm-000121');
  check((await shown(page)).startsWith('1 of'), `100k: search finds one VM's cpus change (${await shown(page)})`);
  await page.close();
}
await browser.close();
console.log(failures ? `${failures} failed` : 'all checks passed');
process.exit(failures ? 1 : 0);

// A customer imported from WeChat opens their continuity link in a phone's
// browser and finds their WeChat history in the widget: `kefu import wechat`
// runs against the live server's data, `kefu import continuity-links` writes
// the links, and headless Chromium opens one.
//
//   node --test tests/e2e/          (scripts/test runs it after cargo test)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACTS, Client, kefuBinary, launchBrowser, startKefu, stop } from './kefu.js';

const T = { timeout: 15000 };
let kefu;
let browser;
let inbox;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  kefu = await startKefu();
  const admin = new Client(kefu.base);
  const token = new URL(kefu.setupLink).searchParams.get('token');
  await admin.post('/api/v1/setup', { token, name: '店长', email: 'boss@example.com', password: 'correct horse battery' });
  inbox = await admin.post('/api/v1/inboxes', { kind: 'widget', name: '在线客服', member_ids: [] });
  browser = await launchBrowser();
});

after(stop);

/** Runs the kefu binary on the server's data directory. */
function kefuCli(args) {
  const run = spawnSync(kefuBinary(), [...args, '--data-dir', path.join(kefu.dir, 'data')], { cwd: kefu.dir, encoding: 'utf8' });
  assert.equal(run.status, 0, `kefu ${args.join(' ')}\n${run.stdout}\n${run.stderr}`);
  return run.stdout;
}

test('an imported customer opens their link and sees their WeChat history', async () => {
  // What the company kept from WeCom customer service (kf/sync_msg items).
  const at = Math.floor(Date.now() / 1000) - 3 * 86400;
  const item = (n, origin, text) => JSON.stringify({
    msgid: `e2e-${n}`, open_kfid: 'wkE2E', external_userid: 'wmE2Ecustomer', send_time: at + n * 60,
    origin, servicer_userid: origin === 5 ? 'zhangsan' : undefined, msgtype: 'text', text: { content: text },
  });
  const history = path.join(kefu.dir, 'kf.ndjson');
  await writeFile(history, [
    item(1, 3, '我上周在微信问过退款的事'),
    item(2, 5, '您好，退款已经提交，3 个工作日到账'),
    item(3, 3, '好的，谢谢'),
  ].join('\n') + '\n');
  const customers = path.join(kefu.dir, 'customers.json');
  await writeFile(customers, JSON.stringify({ errcode: 0, customer_list: [
    { external_userid: 'wmE2Ecustomer', nickname: '微信老客户', avatar: '', gender: 1, unionid: 'oE2Eunion' },
  ] }));
  const report = kefuCli(['import', 'wechat', customers, history]);
  assert.match(report, /3/);

  const csv = path.join(kefu.dir, 'links.csv');
  kefuCli(['import', 'continuity-links', '--out', csv, '--inbox', inbox.id, '--base-url', kefu.base]);
  const rows = (await readFile(csv, 'utf8')).trim().split('\n');
  assert.equal(rows.length, 2, rows.join('\n'));
  assert.match(rows[1], /微信老客户/);
  const url = rows[1].split(',').find((f) => f.includes('/c/'));

  const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(url);
  const w = (sel) => page.locator(`#kefu-widget ${sel}`);
  await w('.panel').waitFor(T);
  await w('.bub').filter({ hasText: '我上周在微信问过退款的事' }).waitFor(T);
  await w('.bub').filter({ hasText: '退款已经提交' }).waitFor(T);
  await page.screenshot({ path: path.join(ARTIFACTS, 'continuity-link-phone.png') });

  // The customer carries on in the same widget.
  await w('textarea').fill('退款还没到账');
  await w('textarea').press('Enter');
  await w('.row.me:not(.pend) .bub').filter({ hasText: '退款还没到账' }).waitFor(T);
  await context.close();

  // The admin sees the run in the console: who, how it ended, what came across.
  const desk = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1280, height: 800 } });
  const admin = await desk.newPage();
  admin.on('pageerror', (e) => console.error('page error:', e.message));
  await admin.goto(`${kefu.base}/login`);
  await admin.fill('input[name=email]', 'boss@example.com');
  await admin.fill('input[name=password]', 'correct horse battery');
  await admin.click('button[type=submit]');
  await admin.waitForURL(`${kefu.base}/`);
  await admin.goto(`${kefu.base}/#/admin/imports`);
  const run = admin.locator('table.imports tbody tr[data-run]');
  await run.first().waitFor(T);
  assert.equal(await run.count(), 1);
  const cells = await run.first().locator('td').allTextContents();
  assert.equal(cells[2], '已完成', cells.join(' | '));
  assert.equal(cells[4], '1', 'one contact');
  assert.equal(cells[6], '3', 'three messages');
  await run.first().getByRole('button', { name: '报告' }).click();
  await admin.locator('tr.import-detail pre').filter({ hasText: 'kf.ndjson' }).waitFor(T);
  await admin.screenshot({ path: path.join(ARTIFACTS, 'console-imports.png') });
  await desk.close();
});

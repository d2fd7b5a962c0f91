// The customer's status page (/s/{token}) shows message times in the
// reader's own time zone: Chromium set to Asia/Shanghai reads Beijing time,
// set to New York reads New York time, and without JavaScript the page says
// Beijing time with its offset (Chinese) or UTC (English).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACTS, Client, launchBrowser, startKefu, stop } from './kefu.js';

const T = { timeout: 15000 };
const ADMIN = { name: '店长', email: 'boss@example.com', password: 'correct horse battery' };
let kefu;
let browser;
let statusUrl;
let times; // created_at of the ticket's messages, oldest first

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  kefu = await startKefu();
  const admin = new Client(kefu.base);
  const token = new URL(kefu.setupLink).searchParams.get('token');
  await admin.post('/api/v1/setup', { token, ...ADMIN });
  const inbox = await admin.post('/api/v1/inboxes', {
    kind: 'form', name: '售后服务', member_ids: [],
    settings: { form: { slug: 'aftersales', title: '售后申请', fields: [{ name: 'message', type: 'textarea', required: true }] } },
  });
  const { conversation } = await admin.post('/api/v1/conversations', {
    inbox_id: inbox.id, contact: { name: '王小明', phone: '+86 138 0013 8000' },
    message: { direction: 'incoming', text: '耳机没有收到，麻烦查一下物流。' },
  });
  await admin.post(`/api/v1/conversations/${conversation.id}/messages`, { direction: 'outgoing', text: '您好，已联系快递，明天送达。' });
  statusUrl = (await admin.post(`/api/v1/conversations/${conversation.id}/status-link`)).status_url;
  times = (await admin.get(`/api/v1/conversations/${conversation.id}/messages`)).map((m) => m.created_at);
  assert.equal(times.length, 2);
  browser = await launchBrowser();
});

after(stop);

/** YYYY-MM-DD HH:MM of an instant at a fixed offset from UTC, by arithmetic. */
function at(iso, offsetHours) {
  const d = new Date(new Date(iso).getTime() + offsetHours * 3600 * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}

/** New York's offset from UTC at that instant (−4 in summer, −5 in winter). */
function newYorkOffset(iso) {
  const name = new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', timeZoneName: 'shortOffset' })
    .formatToParts(new Date(iso)).find((x) => x.type === 'timeZoneName').value;
  return Number(/GMT([+-]\d+)/.exec(name)[1]);
}

async function shownTimes(options) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(statusUrl);
  await page.locator('.msg.theirs .text').filter({ hasText: '明天送达' }).waitFor(T);
  const shown = await page.locator('.thread time').evaluateAll((ts) => ts.map((t) => ({
    text: t.textContent, datetime: t.getAttribute('datetime'), title: t.title,
  })));
  return { page, shown, errors, context };
}

test('a reader in Shanghai sees Beijing time, one in New York sees New York time', async () => {
  const sh = await shownTimes({ locale: 'zh-CN', timezoneId: 'Asia/Shanghai' });
  assert.deepEqual(sh.shown.map((t) => t.text), times.map((t) => at(t, 8)));
  // The attribute is the instant in UTC; the server's text stays as the tooltip.
  for (const [i, t] of sh.shown.entries()) {
    assert.equal(new Date(t.datetime).getTime(), Math.floor(new Date(times[i]).getTime() / 1000) * 1000);
    assert.match(t.datetime, /Z$/);
    assert.equal(t.title, `${at(times[i], 8)} (UTC+8)`);
  }
  await sh.page.screenshot({ path: path.join(ARTIFACTS, 'status-page-shanghai.png'), fullPage: true });
  assert.deepEqual(sh.errors, []);
  await sh.context.close();

  const ny = await shownTimes({ locale: 'zh-CN', timezoneId: 'America/New_York' });
  assert.deepEqual(ny.shown.map((t) => t.text), times.map((t) => at(t, newYorkOffset(t))));
  assert.deepEqual(ny.errors, []);
  await ny.context.close();
});

test('without JavaScript the page says which zone its times are in', async () => {
  const zh = await shownTimes({ locale: 'zh-CN', timezoneId: 'America/New_York', javaScriptEnabled: false });
  assert.deepEqual(zh.shown.map((t) => t.text), times.map((t) => `${at(t, 8)} (UTC+8)`));
  await zh.page.screenshot({ path: path.join(ARTIFACTS, 'status-page-nojs.png'), fullPage: true });
  await zh.context.close();

  const en = await shownTimes({ locale: 'en-US', timezoneId: 'Europe/London', javaScriptEnabled: false });
  assert.deepEqual(en.shown.map((t) => t.text), times.map((t) => `${at(t, 0)} UTC`));
  await en.context.close();
});

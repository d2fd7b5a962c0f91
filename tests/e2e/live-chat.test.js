// Live chat end to end, in a real browser against a real server: a shop page
// on another origin embeds the widget, the customer writes, an agent in the
// console answers in real time, HTML in messages stays text on both sides,
// the conversation is resolved and rated, and the widget fits a phone.
//
//   node --test tests/e2e/          (scripts/test runs it after cargo test)
//
// KEFU_BIN=path skips `cargo build -p kefu`; KEFU_CHROMIUM overrides
// /usr/bin/chromium. Screenshots go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { ARTIFACTS, Client, launchBrowser, startHostSite, startKefu, stop } from './kefu.js';

const XSS = '<img src=x onerror=alert(1)>';
const ADMIN = { name: '李雷', email: 'lilei@example.com', password: 'correct horse battery' };
const T = { timeout: 15000 };

let kefu;
let site;
let browser;
let inbox;
let admin;
let mailbox;
const WIDGET = { color: '#0f62fe', greeting: '您好！欢迎来到示例商城，有什么可以帮您？', position: 'right' };
const dialogs = [];

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  kefu = await startKefu();
  assert.ok(kefu.setupLink, 'the setup link is printed before the listening line');
  admin = new Client(kefu.base);
  const token = new URL(kefu.setupLink).searchParams.get('token');
  const me = await admin.post('/api/v1/setup', { token, ...ADMIN });
  inbox = await admin.post('/api/v1/inboxes', {
    kind: 'widget',
    name: '官网客服',
    member_ids: [me.agent.id],
    settings: { widget: WIDGET },
  });
  // The email inbox the widget is linked to for a while (its relay is
  // never reached: no agent answers while the link is on).
  mailbox = await admin.post('/api/v1/inboxes', {
    kind: 'email',
    name: '邮件客服',
    settings: { email: { address: 'support@shop.example', smtp: { host: '127.0.0.1', port: 9, security: 'none' } } },
  });
  const keys = await admin.get(`/api/v1/inboxes/${inbox.id}/widget`);
  assert.match(keys.snippet, /widget\.js/);
  inbox.token = keys.public_token;
  await admin.post('/api/v1/canned-responses', { shortcut: 'refund', text: '退款会在 3 个工作日内原路退回。' });
  // The shop signs its user's id on its server for every page view. A hash
  // is single-use and covers only identifier + timestamp (seconds), so two
  // views in the same second would get the same, spent hash: move on a second.
  let last = 0;
  const member = () => {
    const timestamp = (last = Math.max(Math.floor(Date.now() / 1000), last + 1));
    const identifier_hash = createHmac('sha256', keys.identity_secret).update(`10086${timestamp}`).digest('hex');
    return { identifier: '10086', timestamp, identifier_hash, name: '张伟', email: 'zhangwei@example.com' };
  };
  site = await startHostSite(kefu.base, inbox.token, { member });
  browser = await launchBrowser();
});

after(stop);

/** A small PNG: a blue square with a white band, like a screenshot of an order. */
function png(size = 96) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, tail]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < size; y++) {
    const row = [0];
    for (let x = 0; x < size; x++) row.push(...(y > size * 0.4 && y < size * 0.6 ? [255, 255, 255] : [15, 98, 254]));
    rows.push(Buffer.from(row));
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

/** A page that records every dialog (an XSS would open one) and page error. */
async function newPage(options) {
  const context = await browser.newContext({ locale: 'zh-CN', ...options });
  const page = await context.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return page;
}

async function agentConsole() {
  const page = await newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(`${kefu.base}/login`);
  await page.fill('input[name=email]', ADMIN.email);
  await page.fill('input[name=password]', ADMIN.password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${kefu.base}/`);
  await page.locator('#conn.online').waitFor(T);
  return page;
}

test('a customer and an agent chat in real time across origins', async () => {
  const agent = await agentConsole();
  await agent.click('[data-view="all:"]');

  // The widget script is served for other origins, without a CSP of kefu's pages.
  const res = await fetch(`${kefu.base}/widget.js`);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('content-type'), /^text\/javascript/);
  assert.equal(res.headers.get('content-security-policy'), null);

  const customer = await newPage({ viewport: { width: 1280, height: 800 } });
  await customer.goto(site);
  const w = (sel) => customer.locator(`#kefu-widget ${sel}`);
  await w('.launch').click(T);
  await w('.panel').waitFor(T);
  await assert.doesNotReject(w('.bub').filter({ hasText: '欢迎来到示例商城' }).waitFor(T));
  assert.equal(await w('.head b').textContent(), '官网客服');

  // The customer writes; it is acknowledged (no longer pending).
  await w('textarea').fill('你好，我想申请退款');
  await w('textarea').press('Enter');
  await w('.row.me:not(.pend) .bub').filter({ hasText: '你好，我想申请退款' }).waitFor(T);

  // The agent, whose console was open all along, sees it arrive: a new
  // conversation at the top of the list with an unread count.
  const row = agent.locator('.conv').filter({ hasText: '你好，我想申请退款' });
  await row.waitFor(T);
  assert.equal(await agent.locator('.conv').first().getAttribute('data-id'), await row.getAttribute('data-id'));
  await agent.locator('.conv.unread .count').first().waitFor(T);
  await row.click();
  await agent.locator('.msg.incoming .bubble').filter({ hasText: '你好，我想申请退款' }).waitFor(T);
  await agent.locator('.contact-panel h4').first().waitFor(T);

  // Typing shows on the customer's side; the reply goes pending → acknowledged.
  const box = agent.locator('.reply-box');
  await box.fill('您好');
  await box.press('Space');
  await w('.typing').filter({ hasText: '李雷' }).waitFor(T);
  await box.fill('您好，请提供订单号，我来帮您处理退款。');
  await box.press('Enter');
  await agent.locator('.msg.outgoing:not(.pending) .bubble').filter({ hasText: '请提供订单号' }).waitFor(T);

  // The customer sees the reply with the agent's name; the agent read the
  // customer's message, so the widget shows it as read.
  await w('.row:not(.me) .bub').filter({ hasText: '您好，请提供订单号，我来帮您处理退款。' }).waitFor(T);
  await w('.row:not(.me) .meta').filter({ hasText: '李雷' }).first().waitFor(T);
  await w('.row.me .meta').filter({ hasText: '已读' }).waitFor(T);

  // The customer types; the agent sees it.
  await w('textarea').pressSequentially('订单号');
  await agent.locator('.typing-line').filter({ hasText: '正在输入' }).waitFor(T);

  // HTML is text, on both sides. The agent's tab is in the background now:
  // a desktop notification (stubbed: headless has no notification centre)
  // and the unread count in the title tell of the new message.
  await agent.evaluate(() => {
    window.shown = [];
    window.Notification = class { constructor(title, o) { window.shown.push(`${title}|${o.body}`); } close() {} };
    window.Notification.permission = 'granted';
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
  });
  await w('textarea').fill(`截图在这里 ${XSS}`);
  await w('textarea').press('Enter');
  await agent.locator('.msg.incoming .bubble').filter({ hasText: XSS }).waitFor(T);
  await agent.waitForFunction(() => window.shown.length === 1, null, T);
  assert.match(await agent.evaluate(() => window.shown[0]), /\|截图在这里 <img src=x onerror=alert\(1\)>$/);
  assert.match(await agent.title(), /^\(1\) kefu/);
  await agent.evaluate(() => { delete document.hidden; document.dispatchEvent(new Event('visibilitychange')); });
  await agent.waitForFunction(() => !document.title.startsWith('('), null, T);
  await box.fill(`我们收到了：${XSS}`);
  await box.press('Enter');
  await w('.row:not(.me) .bub').filter({ hasText: `我们收到了：${XSS}` }).waitFor(T);
  await customer.waitForTimeout(300);
  assert.equal(await w('.bub img').count(), 0, 'no <img> in the widget');
  assert.equal(await agent.locator('.messages img').count(), 0, 'no <img> in the console');
  assert.deepEqual(dialogs, [], 'no script ran from a message');

  // Canned response by "/": the picker inserts the text.
  await box.fill('/ref');
  await agent.locator('.canned li').filter({ hasText: '/refund' }).waitFor(T);
  await box.press('Enter');
  assert.equal(await box.inputValue(), '退款会在 3 个工作日内原路退回。');
  await box.press('Enter');
  await w('.row:not(.me) .bub').filter({ hasText: '3 个工作日' }).waitFor(T);

  // A picture from the customer shows in the console; a file from the agent
  // reaches the customer as a link.
  await w('input[type=file]').setInputFiles({ name: '订单截图.png', mimeType: 'image/png', buffer: png() });
  const picture = agent.locator('.msg.incoming .attachment.image img');
  await picture.waitFor(T);
  await agent.waitForFunction(() => document.querySelector('.msg.incoming .attachment.image img')?.naturalWidth === 96, null, T);
  await agent.locator('.composer input[type=file]').setInputFiles({ name: '退款说明.txt', mimeType: 'text/plain', buffer: Buffer.from('退款流程：1. 提交订单号 2. 等待审核') });
  await agent.locator('.files .chip').filter({ hasText: '退款说明.txt' }).waitFor(T);
  await box.fill('请查看附件中的退款说明。');
  await box.press('Enter');
  await w('.row:not(.me) a.file').filter({ hasText: '退款说明.txt' }).waitFor(T);
  await w('.row.me img.att').waitFor(T);
  assert.equal(await customer.evaluate(() => document.querySelector('#kefu-widget').shadowRoot.querySelector('img.att').naturalWidth), 96);

  await customer.waitForTimeout(300);
  await customer.screenshot({ path: path.join(ARTIFACTS, 'widget-desktop.png') });
  await agent.screenshot({ path: path.join(ARTIFACTS, 'console.png') });

  // Search finds the conversation by its messages.
  const search = agent.locator('.search');
  await search.fill('申请退款');
  await agent.locator('.conv').filter({ hasText: '访客' }).waitFor(T);
  await search.fill('没有这样的话');
  await agent.locator('.conv-list .empty').waitFor(T);
  await search.fill('');
  await agent.locator('.conv').first().waitFor(T);

  // A reload keeps the conversation (visitor token in localStorage, replay by seq).
  await customer.reload();
  await w('.launch').click(T);
  await w('.row.me .bub').filter({ hasText: '你好，我想申请退款' }).waitFor(T);
  await w('.row:not(.me) .bub').filter({ hasText: '3 个工作日' }).waitFor(T);
  assert.equal(await w('.row.me .bub').filter({ hasText: '你好，我想申请退款' }).count(), 1, 'no duplicates after replay');

  // Resolving asks the customer for a rating, which reaches the console.
  await agent.locator('.thread-head .actions button').filter({ hasText: '解决' }).click();
  await w('.card .stars button').nth(4).click(T);
  await w('.card textarea').fill('很快就解决了');
  await w('.card .btn:not(.ghost)').click();
  await w('.card').filter({ hasText: '感谢您的评价' }).waitFor(T);
  await agent.locator('.thread-title .sub').filter({ hasText: '★★★★★' }).waitFor(T);

  await customer.context().close();
  await agent.context().close();
  assert.deepEqual(dialogs, []);
});

test('the widget fills a phone screen, as in WeChat', async () => {
  const phone = await newPage({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 MicroMessenger/8.0.47',
  });
  await phone.goto(site);
  const w = (sel) => phone.locator(`#kefu-widget ${sel}`);
  await w('.launch').tap(T);
  const panel = await w('.panel').boundingBox();
  assert.deepEqual([panel.x, panel.y, panel.width, panel.height], [0, 0, 390, 844], 'full-screen panel');
  assert.equal(await w('.launch').isVisible(), false, 'the launcher hides behind the open panel');
  await w('textarea').fill('手机上可以聊天吗？');
  await w('.send').tap();
  await w('.row.me:not(.pend) .bub').filter({ hasText: '手机上可以聊天吗？' }).waitFor(T);
  // No console is open: the widget says so. It promises an answer by email
  // only once the inbox sends its replies by mail (linked to an email inbox).
  await w('.head small').filter({ hasText: '不在线' }).waitFor(T);
  await w('.note').filter({ hasText: '不在线' }).waitFor(T);
  assert.equal(await w('.note input[type=email]').count(), 0, 'no email promise without a linked email inbox');
  assert.equal(await w('.note').filter({ hasText: '邮箱' }).count(), 0);
  await admin.patch(`/api/v1/inboxes/${inbox.id}`, { settings: { widget: { ...WIDGET, reply_email_inbox: mailbox.id } } });
  await phone.reload();
  await w('.launch').tap(T);
  await w('.note').filter({ hasText: '留下邮箱，回复会同时发送到您的邮箱' }).waitFor(T);
  await w('.note input[type=email]').fill('wang@example.com');
  await w('.note .btn').tap();
  await w('.note').filter({ hasText: 'wang@example.com' }).waitFor(T);
  await phone.screenshot({ path: path.join(ARTIFACTS, 'widget-phone.png') });
  await w('.x').tap();
  assert.equal(await w('.panel').isVisible(), false);
  await phone.context().close();
  await admin.patch(`/api/v1/inboxes/${inbox.id}`, { settings: { widget: WIDGET } });
});

test('settings: the widget snippet, a new agent, and signing out other devices', async () => {
  const agent = await agentConsole();
  // Unread counts come from the server's read positions: the phone's
  // message is unread until opened, and stays read after a reload.
  await agent.click('[data-view="all:"]');
  const phoneRow = agent.locator('.conv').filter({ hasText: '手机上可以聊天吗' });
  assert.equal(await phoneRow.locator('.count').textContent(T), '1');
  await phoneRow.click();
  await agent.locator('.msg.incoming').first().waitFor(T);
  await agent.waitForTimeout(1500); // the read position is posted after a second
  await agent.reload();
  await agent.locator('#conn.online').waitFor(T);
  await phoneRow.waitFor(T);
  assert.equal(await phoneRow.locator('.count').count(), 0);

  await agent.goto(`${kefu.base}/#/admin/inboxes`);
  const snippet = agent.locator('.snippet');
  await agent.waitForFunction(() => document.querySelector('.snippet')?.value.includes('widget.js'), null, T);
  assert.equal(await snippet.inputValue(), `<script src="${kefu.base}/widget.js" data-inbox="${inbox.token}" async></script>`);
  await agent.screenshot({ path: path.join(ARTIFACTS, 'console-settings.png') });

  // The rating given in the first test shows in the satisfaction report.
  await agent.click('a[href="#/admin/csat"]');
  await agent.locator('table.data td').filter({ hasText: '5.00' }).first().waitFor(T);

  await agent.click('a[href="#/admin/agents"]');
  await agent.fill('.inline-form input[name=name]', '韩梅梅');
  await agent.fill('.inline-form input[name=email]', 'hanmeimei@example.com');
  await agent.click('.inline-form button[type=submit]');
  await agent.locator('table.data td').filter({ hasText: 'hanmeimei@example.com' }).waitFor(T);

  // Another device signs in; this one signs it out.
  const other = new Client(kefu.base);
  await other.post('/api/v1/auth/login', { email: ADMIN.email, password: ADMIN.password });
  await other.get('/api/v1/auth/me');
  await agent.click('a[href="#/sessions"]');
  await agent.locator('table.data tbody tr').nth(1).waitFor(T);
  await agent.click('#signout-others');
  await agent.locator('.toast').filter({ hasText: '已退出' }).waitFor(T);
  await assert.rejects(other.get('/api/v1/auth/me'), /401/);
  await agent.waitForFunction(() => document.querySelectorAll('table.data tbody tr').length === 1, null, T);
  await agent.context().close();
});

test('a signed-in shop user finds their conversation on another device', async () => {
  const open = async () => {
    const page = await newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${site}member`);
    await page.locator('#kefu-widget .launch').click(T);
    return (sel) => page.locator(`#kefu-widget ${sel}`);
  };
  const laptop = await open();
  await laptop('textarea').fill('我是会员张伟，积分没到账');
  await laptop('textarea').press('Enter');
  await laptop('.row.me:not(.pend) .bub').filter({ hasText: '积分没到账' }).waitFor(T);

  // A fresh browser (no stored visitor token), a fresh signature: same history.
  const phone = await open();
  await phone('.row.me .bub').filter({ hasText: '积分没到账' }).waitFor(T);
  assert.equal(await phone('.row.me .bub').filter({ hasText: '积分没到账' }).count(), 1);

  // The console shows the verified identity in the contact panel.
  const agent = await agentConsole();
  await agent.click('[data-view="all:"]');
  await agent.locator('.conv').filter({ hasText: '张伟' }).click(T);
  await agent.locator('.identities li').filter({ hasText: 'site_user' }).filter({ hasText: '10086' }).waitFor(T);

  // Assign, prioritise and tag it; the views follow.
  await agent.selectOption('.actions select[aria-label="负责人"]', { label: '● 李雷（我）' });
  await agent.selectOption('.actions select[aria-label="优先级"]', 'urgent');
  await agent.fill('.tag-input', '会员');
  await agent.press('.tag-input', 'Enter');
  await agent.locator('.tags-row .chip').filter({ hasText: '会员' }).waitFor(T);
  await agent.click('[data-view="mine:"]');
  const mine = agent.locator('.conv').filter({ hasText: '张伟' });
  await mine.locator('.prio').filter({ hasText: '紧急' }).waitFor(T);
  await agent.click('[data-view="tag:会员"]');
  await agent.locator('.conv').filter({ hasText: '张伟' }).waitFor(T);
  assert.equal(await agent.locator('.conv').count(), 1);
  await agent.context().close();
});

test('messages written while the server restarts arrive once, on both sides', async () => {
  const agent = await agentConsole();
  await agent.click('[data-view="all:"]');
  const customer = await newPage({ viewport: { width: 1280, height: 800 } });
  await customer.goto(site);
  const w = (sel) => customer.locator(`#kefu-widget ${sel}`);
  await w('.launch').click(T);
  await w('textarea').fill('我的订单还没到');
  await w('textarea').press('Enter');
  await w('.row.me:not(.pend) .bub').filter({ hasText: '我的订单还没到' }).waitFor(T);
  await agent.locator('.conv').filter({ hasText: '我的订单还没到' }).click(T);
  await agent.locator('.msg.incoming .bubble').filter({ hasText: '我的订单还没到' }).waitFor(T);

  // Both write while the server is down: the messages stay pending, are sent
  // again after the reconnect, and are stored and shown once.
  await kefu.stop();
  await w('textarea').fill('服务器重启时写的消息');
  await w('textarea').press('Enter');
  await w('.row.me.pend .bub').filter({ hasText: '服务器重启时写的消息' }).waitFor(T);
  const box = agent.locator('.reply-box');
  await box.fill('我们正在查询物流');
  await box.press('Enter');
  await agent.locator('.msg.outgoing.pending .bubble').filter({ hasText: '我们正在查询物流' }).waitFor(T);

  kefu = await startKefu({ dir: kefu.dir, port: kefu.port });
  const long = { timeout: 45000 };
  await w('.row.me:not(.pend) .bub').filter({ hasText: '服务器重启时写的消息' }).waitFor(long);
  await agent.locator('.msg.incoming .bubble').filter({ hasText: '服务器重启时写的消息' }).waitFor(long);
  await agent.locator('.msg.outgoing:not(.pending) .bubble').filter({ hasText: '我们正在查询物流' }).waitFor(long);
  await w('.row:not(.me) .bub').filter({ hasText: '我们正在查询物流' }).waitFor(long);
  await customer.waitForTimeout(500);
  assert.equal(await w('.bub').filter({ hasText: '服务器重启时写的消息' }).count(), 1);
  assert.equal(await agent.locator('.msg .bubble').filter({ hasText: '服务器重启时写的消息' }).count(), 1);
  assert.equal(await agent.locator('.msg .bubble').filter({ hasText: '我们正在查询物流' }).count(), 1);
  assert.equal(await w('.bub').filter({ hasText: '我们正在查询物流' }).count(), 1);
  await customer.context().close();
  await agent.context().close();
});

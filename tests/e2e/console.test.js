// The agent console's first minutes, in a real browser against a real
// server: it opens on the work that needs someone (open, unassigned), its
// sidebar counts conversations per view and keeps the counts live, the
// contact panel follows a resolve, sign-in failures read in Chinese, a
// signed-out visit goes to the sign-in page without errors, and toasts stay
// few and short-lived.
//
//   KEFU_BIN=path KEFU_CHROMIUM=/usr/bin/chromium node --test tests/e2e/

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACTS, Client, launchBrowser, startHostSite, startKefu, stop } from './kefu.js';

const ADMIN = { name: '韩梅梅', email: 'hanmeimei@example.com', password: 'correct horse battery' };
const T = { timeout: 15000 };

let kefu;
let admin;
let me;
let site;
let browser;
let widgetInbox;
let apiInbox;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  kefu = await startKefu();
  admin = new Client(kefu.base);
  const token = new URL(kefu.setupLink).searchParams.get('token');
  me = (await admin.post('/api/v1/setup', { token, ...ADMIN })).agent;
  widgetInbox = await admin.post('/api/v1/inboxes', { kind: 'widget', name: '官网客服', member_ids: [me.id] });
  apiInbox = await admin.post('/api/v1/inboxes', { kind: 'api', name: '小程序', member_ids: [me.id] });
  const keys = await admin.get(`/api/v1/inboxes/${widgetInbox.id}/widget`);
  site = await startHostSite(kefu.base, keys.public_token);
  browser = await launchBrowser();
});

after(stop);

/** A page that collects uncaught errors and console errors. */
async function newPage(options = {}) {
  const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1440, height: 900 }, ...options });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
  return page;
}

async function signIn(page, password = ADMIN.password) {
  await page.goto(`${kefu.base}/login`);
  await page.fill('input[name=email]', ADMIN.email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

async function agentConsole() {
  const page = await newPage();
  await signIn(page);
  await page.waitForURL(`${kefu.base}/`);
  await page.locator('#conn.online').waitFor(T);
  return page;
}

/** The badge of a sidebar view, '' when it has none. */
async function badge(page, view) {
  const b = page.locator(`.views [data-view="${view}"] .count`);
  return (await b.count()) ? b.textContent() : '';
}

async function badgeIs(page, view, want) {
  await page.waitForFunction(([v, w]) => (document.querySelector(`.views [data-view="${v}"] .count`)?.textContent || '') === w,
    [view, want], T).catch(async () => {
    assert.equal(await badge(page, view), want, `badge of ${view}`);
  });
}

test('the console opens on open unassigned conversations and counts conversations per view, live', async () => {
  const agent = await agentConsole();
  // A first visit: the queue of open conversations nobody has taken.
  const active = agent.locator('.views .view.active');
  assert.equal(await active.getAttribute('data-view'), 'unassigned:');
  assert.equal(await agent.locator('.status-filter').inputValue(), 'open');
  await agent.locator('.conv-list .empty').waitFor(T);
  assert.equal(await agent.locator('.views .count').count(), 0, 'nothing to count yet');

  // The first chat arrives through the widget on the shop's site.
  const customer = await newPage({ viewport: { width: 1280, height: 800 } });
  await customer.goto(site);
  const w = (sel) => customer.locator(`#kefu-widget ${sel}`);
  await w('.launch').click(T);
  await w('textarea').fill('你好，我的快递三天没动了');
  await w('textarea').press('Enter');
  await w('.row.me:not(.pend) .bub').filter({ hasText: '快递三天没动了' }).waitFor(T);

  // It shows at once in the view the console opened on, and the badges
  // count one waiting conversation, not its messages.
  await agent.locator('.conv').filter({ hasText: '快递三天没动了' }).waitFor(T);
  await w('textarea').fill('订单号 20261207001');
  await w('textarea').press('Enter');
  await agent.locator('.conv').filter({ hasText: '订单号 20261207001' }).waitFor(T);
  await badgeIs(agent, 'unassigned:', '1');
  await badgeIs(agent, 'all:', '1');
  await badgeIs(agent, `inbox:${widgetInbox.id}`, '1');
  await badgeIs(agent, 'status:open', '1');
  await badgeIs(agent, 'mine:', '');

  // Two more by the API (a mini-program backend); the badges follow.
  const made = [];
  for (const text of ['发票抬头写错了', '想换个颜色']) {
    made.push((await admin.post('/api/v1/conversations', {
      inbox_id: apiInbox.id, contact: { name: '王芳' }, message: { direction: 'incoming', text },
    })).conversation);
  }
  await badgeIs(agent, 'unassigned:', '3');
  await badgeIs(agent, 'all:', '3');
  await badgeIs(agent, `inbox:${apiInbox.id}`, '2');

  // Someone takes one (here through the API, as from another console):
  // it moves from Unassigned to Mine.
  await admin.post(`/api/v1/conversations/${made[0].id}/assign`, { assignee_id: me.id });
  await badgeIs(agent, 'mine:', '1');
  await badgeIs(agent, 'unassigned:', '2');
  await agent.screenshot({ path: path.join(ARTIFACTS, 'console-counts.png') });

  // Resolved: no longer waiting anywhere; a tag view counts its open ones.
  await admin.post(`/api/v1/conversations/${made[0].id}/status`, { status: 'resolved' });
  await admin.post(`/api/v1/conversations/${made[1].id}/tags`, { tags: ['换货'] });
  await badgeIs(agent, 'mine:', '');
  await badgeIs(agent, 'all:', '2');
  await badgeIs(agent, 'tag:换货', '1');
  await badgeIs(agent, 'status:resolved', '');

  // With "any status" the views count everything, resolved included.
  await agent.selectOption('.status-filter', '');
  await badgeIs(agent, 'all:', '3');
  await badgeIs(agent, 'mine:', '1');
  assert.deepEqual(agent.errors, []);
  await agent.context().close();
  await customer.context().close();
});

test('after Resolve the contact panel shows the ticket as resolved', async () => {
  const c = (await admin.post('/api/v1/conversations', {
    inbox_id: apiInbox.id, contact: { name: '赵强' }, message: { direction: 'incoming', text: '耳机左边没声音' },
  })).conversation;
  const agent = await agentConsole();
  await agent.goto(`${kefu.base}/#/c/${c.id}`);
  const past = agent.locator('.contact-panel .past li.current');
  await past.locator('.st').filter({ hasText: '进行中' }).waitFor(T);
  await agent.locator('.thread button').filter({ hasText: /^解决$/ }).click();
  await past.locator('.st').filter({ hasText: '已解决' }).waitFor(T);
  await agent.locator('.thread button').filter({ hasText: /^重新打开$/ }).waitFor(T);
  await agent.screenshot({ path: path.join(ARTIFACTS, 'console-resolved.png') });
  assert.deepEqual(agent.errors, []);
  await agent.context().close();
});

test('a wrong password is refused in Chinese, with the API code kept', async () => {
  const page = await newPage();
  await signIn(page, 'wrong horse battery');
  const error = page.locator('#error');
  await error.filter({ hasText: '邮箱或密码不正确' }).waitFor(T);
  assert.equal(await error.getAttribute('data-code'), 'unauthorized');
  assert.doesNotMatch(await error.textContent(), /authentication required/);
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.screenshot({ path: path.join(ARTIFACTS, 'login-refused.png') });
  await page.context().close();
});

test('signed out, / goes to the sign-in page without an error', async () => {
  const page = await newPage();
  const res = await page.goto(`${kefu.base}/`);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(res.status(), 200);
  await page.locator('#login').waitFor(T);
  await page.waitForTimeout(300);
  assert.deepEqual(page.errors, []);

  // A session that ends while the console is open (signed out on another
  // device) lands on the sign-in page too, with no uncaught error, and
  // comes back to where it was after signing in.
  const agent = await agentConsole();
  const c = (await admin.post('/api/v1/conversations', {
    inbox_id: apiInbox.id, contact: { name: '孙丽' }, message: { direction: 'incoming', text: '还在吗' },
  })).conversation;
  await agent.evaluate((id) => { location.hash = `#/c/${id}`; }, c.id);
  await agent.locator('.msg.incoming').filter({ hasText: '还在吗' }).waitFor(T);
  await agent.context().clearCookies();
  // The next request is refused: the agent's click, or the read position
  // the console posts a second after showing the message, whichever is first.
  await agent.click('[data-view="all:"]', { noWaitAfter: true, timeout: 2000 }).catch(() => {});
  await agent.waitForURL(/\/login\?next=/, T);
  await agent.waitForTimeout(300);
  assert.deepEqual(agent.errors.filter((e) => e.startsWith('pageerror')), [], 'no uncaught error');
  await agent.fill('input[name=email]', ADMIN.email);
  await agent.fill('input[name=password]', ADMIN.password);
  await agent.click('button[type=submit]');
  await agent.waitForURL(`${kefu.base}/#/c/${c.id}`, T);
  await agent.locator('.msg.incoming').filter({ hasText: '还在吗' }).waitFor(T);
  await agent.context().close();
  await page.context().close();
});

test('toasts are capped, dismissed after a while and cleared on navigation', async () => {
  const agent = await agentConsole();
  const toasts = agent.locator('#toasts .toast');
  await agent.evaluate(async () => {
    const { toast } = await import('/assets/console/dom.js');
    for (let i = 1; i <= 8; i++) toast(`保存失败 ${i}`, 'error');
  });
  assert.equal(await toasts.count(), 3);
  assert.deepEqual(await toasts.allTextContents(), ['保存失败 6', '保存失败 7', '保存失败 8']);
  await agent.evaluate(() => { location.hash = '#/sessions'; });
  await agent.waitForFunction(() => !document.querySelector('#toasts .toast'), null, T);

  await agent.evaluate(async () => {
    const { toast } = await import('/assets/console/dom.js');
    toast('已保存');
  });
  assert.equal(await toasts.count(), 1);
  await agent.waitForFunction(() => !document.querySelector('#toasts .toast'), null, { timeout: 5000 });
  assert.deepEqual(agent.errors, []);
  await agent.context().close();
});

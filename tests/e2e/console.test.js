// The agent console's first minutes, in a real browser against a real
// server: it opens on the work that needs someone (open, unassigned), and
// its sidebar counts conversations per view and keeps the counts live.
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

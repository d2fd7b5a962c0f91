// The H5 form in a phone's browser: a customer fills /f/{slug} and sends it,
// sees the ticket number; the agent sees the ticket arrive in the console and
// answers; the customer's status link shows the answer, and their reply from
// the status page reaches the console. The agent resets the status link:
// the old one stops, the new one works.
//
//   node --test tests/e2e/          (scripts/test runs it after cargo test)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACTS, Client, launchBrowser, startKefu, stop } from './kefu.js';

const T = { timeout: 15000 };
const ADMIN = { name: '店长', email: 'boss@example.com', password: 'correct horse battery' };
let kefu;
let browser;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  kefu = await startKefu();
  const admin = new Client(kefu.base);
  const token = new URL(kefu.setupLink).searchParams.get('token');
  await admin.post('/api/v1/setup', { token, ...ADMIN });
  await admin.post('/api/v1/inboxes', {
    kind: 'form', name: '售后服务', member_ids: [],
    settings: { form: {
      slug: 'aftersales', title: '售后申请', intro: '请填写订单信息，我们会尽快回复。',
      fields: [
        { name: 'name', type: 'text', required: true },
        { name: 'phone', type: 'phone' },
        { name: 'email', type: 'email' },
        { name: 'kind', label: '问题类型', type: 'select', options: ['退款', '换货', '其他'], required: true },
        { name: 'message', type: 'textarea', required: true },
      ],
    } },
  });
  browser = await launchBrowser();
});

after(stop);

/** A browser context of its own (the agent's desk or the customer's phone). */
async function open(options) {
  const page = await (await browser.newContext({ locale: 'zh-CN', ...options })).newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return page;
}

test('a customer sends the form from a phone, the agent answers, the status link shows it', async () => {
  const agent = await open({ viewport: { width: 1440, height: 900 } });
  await agent.goto(`${kefu.base}/login`);
  for (const [field, value] of [['email', ADMIN.email], ['password', ADMIN.password]]) await agent.fill(`input[name=${field}]`, value);
  await agent.click('button[type=submit]');
  await agent.locator('#conn.online').waitFor(T);
  await agent.click('[data-view="all:"]');

  const phone = await open({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await phone.goto(`${kefu.base}/f/aftersales`);
  await phone.locator('h1').filter({ hasText: '售后申请' }).waitFor(T);

  // A mistake first: no way to reach the customer. The page says so at the
  // field and keeps everything typed.
  await phone.fill('#f-name', '王小明');
  await phone.selectOption('#f-kind', '退款');
  await phone.fill('#f-message', '订单 20240501 的耳机没有收到，麻烦查一下物流。');
  // The script solves the challenge in the background and hides the question.
  await phone.locator('.challenge[data-solved="true"]').waitFor({ state: 'attached', ...T });
  await phone.click('button[type=submit]');
  await phone.locator('.field.invalid .error').filter({ hasText: '请填写邮箱或手机号' }).waitFor(T);
  assert.equal(await phone.inputValue('#f-name'), '王小明');
  assert.equal(await phone.inputValue('#f-message'), '订单 20240501 的耳机没有收到，麻烦查一下物流。');
  assert.equal(await phone.inputValue('#f-kind'), '退款');

  await phone.fill('#f-phone', '138 0013 8000');
  await phone.screenshot({ path: path.join(ARTIFACTS, 'form-phone.png'), fullPage: true });
  await phone.click('button[type=submit]');
  const number = (await phone.locator('#ticket-number').textContent({ timeout: 15000 })).trim();
  assert.match(number, /^#\d+$/);
  const statusUrl = await phone.locator('#status-link').getAttribute('href');
  assert.match(statusUrl, /\/s\/s1\./);

  // The agent's console shows the new ticket without a reload, with the
  // answers under their labels; the agent answers it.
  const row = agent.locator('.conv').filter({ hasText: '耳机没有收到' });
  await row.waitFor(T);
  // Clicked in its middle: a long preview line stays inside the list pane.
  await row.click();
  const first = agent.locator('.msg.incoming .bubble').filter({ hasText: '问题类型：退款' });
  await first.waitFor(T);
  assert.match(await first.textContent(), /姓名：王小明/);
  const box = agent.locator('.reply-box');
  await box.fill('您好，已联系快递，明天送达。');
  await box.press('Enter');
  await agent.locator('.msg.outgoing:not(.pending) .bubble').filter({ hasText: '明天送达' }).waitFor(T);

  // The customer opens the status link and reads the answer.
  await phone.goto(statusUrl);
  await phone.locator('.msg.theirs .text').filter({ hasText: '您好，已联系快递，明天送达。' }).waitFor(T);
  assert.match(await phone.locator('h1').textContent(), new RegExp(number));
  // And answers from the page; it reaches the console live.
  await phone.fill('#f-reply', '好的，谢谢！');
  await phone.click('form.reply button[type=submit]');
  await phone.locator('.msg.mine .text').filter({ hasText: '好的，谢谢！' }).waitFor(T);
  await phone.screenshot({ path: path.join(ARTIFACTS, 'form-status-phone.png'), fullPage: true });
  await agent.locator('.msg.incoming .bubble').filter({ hasText: '好的，谢谢！' }).waitFor(T);

  // A link with a changed signature is refused with a clear page.
  await phone.goto(statusUrl.slice(0, -2) + 'xx');
  await phone.locator('#error-message').filter({ hasText: '这个链接无效' }).waitFor(T);

  // The agent resets the ticket's status link from the console: the old one
  // stops at once, the new one (shown to the agent to pass on) works.
  let newUrl = '';
  const onDialog = async (d) => {
    if (d.type() === 'prompt') newUrl = d.defaultValue();
    await d.accept();
  };
  agent.on('dialog', onDialog);
  await agent.locator('button[data-action="revoke-status-link"]').click();
  for (let i = 0; i < 100 && !newUrl; i++) await new Promise((r) => setTimeout(r, 100));
  agent.off('dialog', onDialog);
  assert.match(newUrl, /\/s\/s1\./);
  assert.notEqual(newUrl, statusUrl);
  await phone.goto(statusUrl);
  await phone.locator('#error-message').filter({ hasText: '这个链接已被客服停用' }).waitFor(T);
  await phone.goto(newUrl);
  await phone.locator('.msg.theirs .text').filter({ hasText: '您好，已联系快递，明天送达。' }).waitFor(T);

  // The admin sees the form's public address and edits its settings as
  // JSON; a mistake is named under the editor and nothing changes.
  await agent.goto(`${kefu.base}/#/admin/inboxes`);
  const formBox = agent.locator('.form-box');
  await formBox.locator('a.form-url').filter({ hasText: '/f/aftersales' }).waitFor(T);
  const editor = formBox.locator('textarea.form-json');
  const settings = JSON.parse(await editor.inputValue());
  assert.equal(settings.fields.length, 5);
  settings.fields.push({ name: 'size', type: 'select' });
  await editor.fill(JSON.stringify(settings));
  await formBox.locator('button.primary').click();
  await formBox.locator('.error').filter({ hasText: 'settings.form.fields[5].options' }).waitFor(T);
  settings.fields[5].options = ['S', 'M', 'L'];
  await editor.fill(JSON.stringify(settings));
  await formBox.locator('button.primary').click();
  // The save is a request of its own: open the form once it has landed.
  await agent.locator('#toasts .toast.info').filter({ hasText: '已保存' }).waitFor(T);
  await phone.goto(`${kefu.base}/f/aftersales`);
  await phone.locator('#f-size option[value="M"]').waitFor({ state: 'attached', ...T });
});

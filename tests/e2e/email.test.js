// Replies that leave by email show their delivery state in the console: an
// agent answers two email conversations; a real SMTP server on loopback (a
// few lines of Node below) takes the mail for one customer and refuses the
// other's address. Under each reply the console shows "sent", or "not
// delivered" with the relay's reason, without a reload.
//
//   node --test tests/e2e/email.test.js

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { ARTIFACTS, Client, launchBrowser, startKefu, stop } from './kefu.js';

const T = { timeout: 20000 };
const ADMIN = { name: '店长', email: 'boss@example.com', password: 'correct horse battery' };
let kefu;
let browser;
let sink;
const received = [];

/** An SMTP server that keeps mail, and refuses recipients named refuse@…. */
function startSink() {
  const server = createServer((sock) => {
    let data = null;
    let buf = '';
    sock.write('220 sink.test ESMTP\r\n');
    sock.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      for (;;) {
        if (data !== null) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          received.push(data + buf.slice(0, end));
          buf = buf.slice(end + 5);
          data = null;
          sock.write('250 2.0.0 kept\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') sock.write('250 sink.test\r\n');
        else if (verb === 'RCPT') sock.write(/<refuse@/i.test(line) ? '550 5.1.1 no such user here\r\n' : '250 2.1.5 ok\r\n');
        else if (verb === 'DATA') { data = ''; sock.write('354 go on\r\n'); }
        else if (verb === 'QUIT') { sock.end('221 bye\r\n'); return; }
        else sock.write('250 ok\r\n');
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  sink = await startSink();
  kefu = await startKefu();
  const admin = new Client(kefu.base);
  const token = new URL(kefu.setupLink).searchParams.get('token');
  const me = await admin.post('/api/v1/setup', { token, ...ADMIN });
  const inbox = await admin.post('/api/v1/inboxes', {
    kind: 'email', name: '邮件客服', member_ids: [me.agent?.id || me.id].filter(Boolean),
    settings: { email: { address: 'support@shop.example', smtp: { host: '127.0.0.1', port: sink.address().port, security: 'none' } } },
  });
  for (const [name, email, text] of [['王小明', 'wang@customer.example', '发票什么时候开？'], ['赵六', 'refuse@customer.example', '退款没到账']]) {
    await admin.post('/api/v1/conversations', {
      inbox_id: inbox.id, subject: text, contact: { name, email }, message: { direction: 'incoming', text },
    });
  }
  browser = await launchBrowser();
});

after(async () => {
  await stop();
  sink?.close();
});

test('each reply by email shows sent, or not delivered with the reason', async () => {
  const agent = await (await browser.newContext({ locale: 'zh-CN', viewport: { width: 1440, height: 900 } })).newPage();
  agent.on('pageerror', (e) => console.error('page error:', e.message));
  await agent.goto(`${kefu.base}/login`);
  for (const [field, value] of [['email', ADMIN.email], ['password', ADMIN.password]]) await agent.fill(`input[name=${field}]`, value);
  await agent.click('button[type=submit]');
  await agent.locator('#conn.online').waitFor(T);
  await agent.click('[data-view="all:"]');

  for (const [preview, reply, state, text] of [
    ['发票什么时候开', '您好，发票今天开出。', 'sent', '邮件已发送'],
    ['退款没到账', '您好，退款已原路退回。', 'failed', '邮件发送失败'],
  ]) {
    await agent.locator('.conv').filter({ hasText: preview }).click();
    await agent.locator('.msg.incoming .bubble').filter({ hasText: preview }).waitFor(T);
    const box = agent.locator('.reply-box');
    await box.fill(reply);
    await box.press('Enter');
    const mine = agent.locator('.msg.outgoing').filter({ hasText: reply });
    const line = mine.locator(`.email-state[data-status="${state}"]`);
    await line.waitFor(T);
    assert.match(await line.textContent(), new RegExp(text));
    if (state === 'failed') {
      assert.match(await line.textContent(), /550/);
      assert.match(await line.getAttribute('title'), /550/);
    }
  }
  await agent.screenshot({ path: path.join(ARTIFACTS, 'email-delivery-state.png') });
  assert.equal(received.length, 1);
  assert.match(received[0], /To: wang@customer\.example/i);
});

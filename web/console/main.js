// The agent console: boots the session (GET /api/v1/auth/me for the agent and
// the CSRF token), opens /ws/agent, routes between the inbox, settings and
// sessions pages (location.hash), and turns socket frames into state.
//
// Modules: api (REST), socket (/ws/agent), state (what is known), inbox
// (views and list), thread (conversation and composer), contact (side panel),
// admin, sessions, notify (notification and sound), dom (helpers).

import { get, post, setCsrf } from './api.js';
import { $, h, fill, L, clearToasts } from './dom.js';
import { AgentSocket } from './socket.js';
import { state, onChange, changed, loadDirectory, remember, conversation, markRead, countUnread, contact, contactName, totalUnread, refreshCounts } from './state.js';
import { mountInbox, drawInbox, reload, setPreview } from './inbox.js';
import { initThread, mountThread, openThread, closeThread, drawThread, onMessage, onMessageUpdated, refreshDelivery, onAck, sendRead, threadResume } from './thread.js';
import { mountContact, drawContact } from './contact.js';
import { drawAdmin } from './admin.js';
import { drawSessions } from './sessions.js';
import { unlock, askPermission, permission, notify } from './notify.js';

const me = await get('/api/v1/auth/me');
setCsrf(me.csrf_token);
state.me = me.agent;
document.documentElement.lang = L('zh-CN', 'en');

// ------------------------------------------------------------------ layout
const inboxPage = $('#inbox-page');
const otherPage = $('#other-page');
const views = h('div.views-wrap');
const thread = h('main.thread', { 'aria-label': L('会话', 'Conversation') });
const side = h('aside.contact-panel', { 'aria-label': L('客户资料', 'Contact') });
fill(inboxPage, views, thread, side);

$('#who').textContent = state.me.name;
$('#role').textContent = state.me.role === 'admin' ? L('管理员', 'Admin') : L('客服', 'Agent');
for (const a of document.querySelectorAll('.admin-only')) a.hidden = state.me.role !== 'admin';
$('#logout').addEventListener('click', async () => {
  try { await post('/api/v1/auth/logout'); } finally { location.href = '/login'; }
});
const notifyBtn = $('#notify');
notifyBtn.hidden = permission() !== 'default';
notifyBtn.addEventListener('click', async () => {
  await askPermission();
  notifyBtn.hidden = permission() !== 'default';
});
addEventListener('pointerdown', unlock, { once: true, capture: true });
addEventListener('keydown', unlock, { once: true, capture: true });

// ------------------------------------------------------------------ socket
const sock = new AgentSocket({
  onFrame,
  onState: (s) => { state.connection = s; changed(); },
  resume: threadResume,
});
initThread(sock);

const go = (id) => { location.hash = `#/c/${id}`; };
mountInbox(views, { onOpen: go });
mountThread(thread, { onBack: () => { location.hash = '#/'; } });
mountContact(side, go);

async function onFrame(f) {
  switch (f.type) {
    case 'agent_welcome':
      if (f.reconnected) {
        reload();
        refreshCounts();
        loadDirectory().catch(() => {});
        refreshDelivery();
      }
      break;
    case 'message_updated':
      onMessageUpdated(f.message);
      break;
    case 'message': {
      const m = f.message;
      let c;
      try { c = await conversation(m.conversation_id); } catch { return; }
      if (m.seq > c.last_seq) c.last_seq = m.seq;
      if (m.created_at > c.last_activity_at) c.last_activity_at = m.created_at;
      setPreview(m);
      const shown = onMessage(m);
      if (m.direction === 'incoming') {
        state.typing.delete(c.id);
        if (!shown || document.hidden) countUnread(c.id, m.seq);
        if (document.hidden) {
          notify(`${contactName(contact(c.contact_id))} · #${c.number}`, m.text || L('[附件]', '[attachment]'), c.id, () => go(c.id));
        }
      } else if (shown || m.sender_id === state.me.id) {
        markRead(c.id, m.seq);
      }
      break;
    }
    case 'conversation': {
      const old = state.convs.get(f.conversation.id);
      remember(f.conversation);
      refreshCounts();
      // A tag made just now (by another agent, or an import) gets its view.
      if (f.conversation.tags.some((t) => !state.tags.some((x) => x.name === t))) loadDirectory().catch(() => {});
      // A conversation that re-opens after being resolved needs attention again.
      if (old && old.status !== 'open' && f.conversation.status === 'open' && state.openId !== old.id) {
        state.unread.set(old.id, Math.max(1, state.unread.get(old.id) || 0));
      }
      break;
    }
    case 'typing': {
      const name = f.from.kind === 'contact' ? contactName(contact(await conversationContact(f.conversation_id))) : f.from.name;
      state.typing.set(f.conversation_id, { name, until: f.on ? Date.now() + 8000 : 0 });
      if (f.on) setTimeout(changed, 8100);
      break;
    }
    case 'read':
      if (f.from.kind === 'contact') state.contactRead.set(f.conversation_id, Math.max(state.contactRead.get(f.conversation_id) || 0, f.seq));
      break;
    case 'presence':
      if (f.online) state.online.add(f.agent_id);
      else state.online.delete(f.agent_id);
      break;
    case 'ack':
      onAck(f);
      break;
    case 'error':
      if (!f.pending) console.warn('kefu socket:', f.code, f.message);
      break;
  }
  changed();
}

async function conversationContact(id) {
  try { return (await conversation(id)).contact_id; } catch { return null; }
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden || !state.openId) return;
  const c = state.convs.get(state.openId);
  if (c) markRead(c.id, c.last_seq);
  sendRead();
  changed();
});

// ------------------------------------------------------------------ routing
let page = '';
function route() {
  const [, first = '', second = ''] = location.hash.split('/');
  const next = first === 'admin' && state.me.role === 'admin' ? 'admin' : first === 'sessions' ? 'sessions' : 'inbox';
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === next);
  inboxPage.hidden = next !== 'inbox';
  otherPage.hidden = next === 'inbox';
  page = next;
  if (next === 'admin') drawAdmin(otherPage, second);
  else if (next === 'sessions') drawSessions(otherPage);
  else if (first === 'c' && second) {
    inboxPage.classList.add('has-thread');
    openThread(second);
  } else {
    inboxPage.classList.remove('has-thread');
    closeThread();
  }
  changed();
}

onChange(() => {
  const n = totalUnread();
  document.title = `${n ? `(${n}) ` : ''}kefu ${L('客服', 'Console')}`;
  const conn = $('#conn');
  conn.className = `conn ${state.connection}`;
  conn.title = { online: L('已连接', 'Connected'), connecting: L('连接中…', 'Connecting…'), offline: L('连接断开，正在重连', 'Offline, reconnecting') }[state.connection];
  $('#conn-text').textContent = conn.title;
  if (page !== 'inbox') return;
  drawInbox();
  drawThread();
  drawContact();
});

await loadDirectory().catch(() => {});
sock.connect();
reload();
refreshCounts();
route();
// Listened to only now: a hash changed while the directory loaded is read
// by the route() above. Listening earlier drew such a page twice, and the
// second draw emptied it while its data loaded (a flicker, and a flaky
// browser test reading the imports table in between).
addEventListener('hashchange', () => { clearToasts(); route(); });

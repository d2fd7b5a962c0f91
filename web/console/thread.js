// The open conversation: its messages in real time, the reply/note composer
// (sent over the socket with a client_id, shown pending until acknowledged),
// canned responses on `/`, typing both ways, read receipts, the delivery state
// of replies that go out by email, and the actions (assign, team, status,
// priority, tags) that go through the REST API.

import { get, patch, post, del, upload } from './api.js';
import { h, fill, L, fmtTime, avatar, toast, STATUSES, PRIORITIES, statusName, priorityName } from './dom.js';
import { state, changed, remember, markRead, contact, contactName, agentName, loadDirectory } from './state.js';
import { setPreview } from './inbox.js';

let sock = null;
let cur = null; // {id, msgs: Map, maxSeq, loading, readSent, rev (bumped when a message changes in place)}
let els = null;

export function initThread(socket) { sock = socket; }
export const openConversationId = () => cur?.id || null;
/** What the socket should replay after a reconnect. */
export const threadResume = () => (cur && !cur.loading ? { [cur.id]: cur.maxSeq } : {});

export function mountThread(root, { onBack }) {
  els = { root, onBack };
  fill(root, h('div.placeholder', h('div.placeholder-icon', { 'aria-hidden': 'true' }), h('p', L('选择一个会话开始回复', 'Pick a conversation to reply'))));
}

export async function openThread(id) {
  if (cur?.id === id) return;
  stopTyping();
  cur = { id, msgs: new Map(), maxSeq: 0, loading: true, readSent: 0, rev: 0 };
  state.openId = id;
  build();
  try {
    const c = remember(await get(`/api/v1/conversations/${id}`));
    let after = 0;
    for (;;) {
      const page = await get(`/api/v1/conversations/${id}/messages?after_seq=${after}&limit=500`);
      if (cur?.id !== id) return;
      for (const m of page) add(m);
      if (page.length < 500) break;
      after = page[page.length - 1].seq;
    }
    cur.loading = false;
    markRead(id, c.last_seq);
    sendRead();
  } catch (e) {
    if (cur?.id === id) cur.loading = false;
    toast(`${L('打开会话失败', 'Could not open the conversation')}: ${e.message}`, 'error');
  }
  changed();
}

export function closeThread() {
  stopTyping();
  cur = null;
  state.openId = null;
  if (els) mountThread(els.root, els);
  changed();
}

function add(m) {
  cur.msgs.set(m.id, m);
  if (m.seq > cur.maxSeq) cur.maxSeq = m.seq;
}

/** A message frame (live or replayed). */
export function onMessage(m) {
  if (!cur || m.conversation_id !== cur.id) return false;
  add(m);
  if (!document.hidden) {
    markRead(cur.id, m.seq);
    sendRead();
  }
  return true;
}

export function onAck(f) {
  if (!cur || f.conversation_id !== cur.id || !f.pending || cur.msgs.has(f.message_id)) return;
  const p = f.pending;
  add({
    id: f.message_id, conversation_id: f.conversation_id, seq: f.seq, direction: p.note ? 'note' : 'outgoing',
    sender_kind: 'agent', sender_id: state.me.id, text: p.text, attachments: p.attachments, created_at: p.at,
  });
  markRead(cur.id, f.seq);
}

/** Tells the customer (and other agents) what this agent has read. */
export function sendRead() {
  if (!cur || cur.loading || document.hidden) return;
  let top = 0;
  for (const m of cur.msgs.values()) if (m.direction === 'incoming' && m.seq > top) top = m.seq;
  if (top > cur.readSent && sock.send({ type: 'read', conversation_id: cur.id, seq: top })) cur.readSent = top;
}

// ----------------------------------------------------------- email delivery
// An agent's reply that leaves by email (an email inbox, or a form inbox that
// answers by mail) is queued, then sent or failed, after it was created. The
// server announces each change in a `message_updated` frame. Frames missed
// while the socket was down are not replayed, so after a reconnect the open
// thread re-reads, once, its replies of the last week that were still queued.
export function onMessageUpdated(m) {
  if (!cur || m.conversation_id !== cur.id || !cur.msgs.has(m.id)) return false;
  cur.rev++;
  add(m);
  return true;
}

export async function refreshDelivery() {
  if (!cur || cur.loading) return;
  const since = Date.now() - 7 * 86_400_000;
  const waiting = [...cur.msgs.values()].filter((m) => m.direction === 'outgoing' && m.sender_kind === 'agent'
    && Date.parse(m.created_at) > since && (!m.metadata?.email || m.metadata.email.status === 'queued'));
  if (!waiting.length) return;
  const id = cur.id;
  const after = Math.min(...waiting.map((m) => m.seq)) - 1;
  try {
    const page = await get(`/api/v1/conversations/${id}/messages?after_seq=${after}&limit=500`);
    if (cur?.id !== id) return;
    for (const m of page) if (!onMessageUpdated(m)) add(m);
    changed();
  } catch { /* the next reconnect tries again */ }
}

/** "Email sent" under a reply, or queued / failed with the reason. */
function deliveryLine(e) {
  const names = { queued: L('邮件排队中', 'Email queued'), sent: L('邮件已发送', 'Email sent'), failed: L('邮件发送失败', 'Email not delivered') };
  const name = names[e.status] || e.status;
  const reason = e.error ? String(e.error) : '';
  const text = e.status === 'failed' && reason ? `${name}: ${reason}`
    : e.status === 'queued' && reason ? `${name} · ${L('将重试', 'will retry')}` : name;
  return h(`div.receipt.email-state.email-${e.status}`, { 'data-status': e.status, title: reason }, text);
}

// ------------------------------------------------------------------- typing
let typingOn = false;
let typingTimer = 0;
function typing(on) {
  if (!cur || on === typingOn) return;
  if (sock.send({ type: 'typing', conversation_id: cur.id, on })) typingOn = on;
}
function stopTyping() {
  clearTimeout(typingTimer);
  typing(false);
}

// -------------------------------------------------------------------- build
function build() {
  const id = cur.id;
  const head = h('header.thread-head');
  const tagsRow = h('div.tags-row');
  const messages = h('ol.messages', { 'aria-live': 'polite', 'aria-label': L('消息', 'Messages') });
  const typingLine = h('div.typing-line');
  const composer = buildComposer(id);
  els.head = head;
  els.tags = tagsRow;
  els.messages = messages;
  els.typing = typingLine;
  els.stick = true;
  els.headSig = els.tagSig = els.msgSig = null;
  messages.addEventListener('scroll', () => {
    els.stick = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  });
  fill(els.root, head, tagsRow, messages, typingLine, composer);
}

function buildComposer(id) {
  let mode = 'reply';
  const box = h('textarea.reply-box', {
    rows: 3, placeholder: L('输入回复…  Enter 发送，Shift+Enter 换行，/ 快捷回复', 'Write a reply…  Enter to send, Shift+Enter for a new line, / for canned responses'),
    'aria-label': L('回复', 'Reply'), maxLength: 20000,
  });
  const sendBtn = h('button.primary', { type: 'submit' }, L('发送', 'Send'));
  const tabs = ['reply', 'note'].map((m) => h('button.tab', {
    type: 'button', 'data-mode': m, class: m === mode ? 'active' : '',
    onclick: () => {
      mode = m;
      for (const t of tabs) t.classList.toggle('active', t.dataset.mode === mode);
      form.classList.toggle('note-mode', mode === 'note');
      box.placeholder = mode === 'note' ? L('内部备注，仅同事可见…', 'Internal note, only your team sees it…') : L('输入回复…  Enter 发送，Shift+Enter 换行，/ 快捷回复', 'Write a reply…  Enter to send, Shift+Enter for a new line, / for canned responses');
      sendBtn.textContent = mode === 'note' ? L('添加备注', 'Add note') : L('发送', 'Send');
      if (mode === 'note') stopTyping();
      box.focus();
    },
  }, m === 'reply' ? L('回复', 'Reply') : L('内部备注', 'Private note')));
  const canned = h('ul.canned', { role: 'listbox', hidden: true });
  // Files are uploaded when picked and go with the next message.
  let files = [];
  const fileList = h('div.files');
  const picker = h('input', { type: 'file', multiple: true, hidden: true });
  const drawFiles = () => fill(fileList, files.map((a) => h('span.chip', a.filename,
    h('button', { type: 'button', 'aria-label': L('移除', 'Remove'), onclick: () => { files = files.filter((x) => x !== a); drawFiles(); } }, '×'))));
  picker.addEventListener('change', async () => {
    for (const file of picker.files) {
      try { files.push(await upload(file)); } catch (e) { toast(`${file.name}: ${e.message}`, 'error'); }
    }
    picker.value = '';
    drawFiles();
  });
  const attach = h('button.secondary.small', { type: 'button', title: L('添加附件', 'Attach files'), onclick: () => picker.click() }, L('附件', 'Attach'));
  const form = h('form.composer', h('div.composer-tabs', tabs), canned, fileList, box,
    h('div.composer-foot', h('span.foot-left', attach, picker, h('span.hint', L('对客户可见', 'The customer sees replies'))), sendBtn));
  const submit = () => {
    const text = box.value.trim();
    if (!text && !files.length) return;
    box.value = '';
    closeCanned();
    stopTyping();
    const p = sock.sendMessage(id, text, mode === 'note', files);
    files = [];
    drawFiles();
    setPreview({ conversation_id: id, seq: cur?.maxSeq || 0, text, direction: p.note ? 'note' : 'outgoing', sender_id: state.me.id });
    els.stick = true;
    changed();
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });

  // Canned responses: "/short" before the caret opens the picker.
  let items = [];
  let sel = 0;
  let seq = 0;
  const token = () => /(^|\s)\/([^\s/]*)$/.exec(box.value.slice(0, box.selectionStart));
  function closeCanned() { canned.hidden = true; items = []; }
  function drawCanned() {
    fill(canned, items.map((c, i) => h('li', {
      role: 'option', 'aria-selected': i === sel ? 'true' : 'false', class: i === sel ? 'sel' : '',
      onmousedown: (e) => { e.preventDefault(); pick(i); },
    }, h('b', `/${c.shortcut}`), h('span', c.text))));
    canned.hidden = !items.length;
  }
  function pick(i) {
    const c = items[i];
    const m = token();
    if (!c || !m) return closeCanned();
    const start = box.selectionStart - m[2].length - 1;
    box.value = box.value.slice(0, start) + c.text + box.value.slice(box.selectionStart);
    box.selectionStart = box.selectionEnd = start + c.text.length;
    closeCanned();
    box.focus();
  }
  box.addEventListener('input', async () => {
    if (mode === 'reply') {
      if (box.value.trim()) {
        typing(true);
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => typing(false), 3000);
      } else stopTyping();
    }
    const m = token();
    if (!m) return closeCanned();
    const mine = ++seq;
    try {
      const found = await get(`/api/v1/canned-responses?q=${encodeURIComponent(m[2])}`);
      if (mine !== seq) return;
      items = found.slice(0, 8);
      sel = 0;
      drawCanned();
    } catch { closeCanned(); }
  });
  box.addEventListener('keydown', (e) => {
    if (!canned.hidden && items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        sel = (sel + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        return drawCanned();
      }
      if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); return pick(sel); }
      if (e.key === 'Escape') { e.preventDefault(); return closeCanned(); }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  box.addEventListener('blur', () => setTimeout(closeCanned, 150));
  return form;
}

// --------------------------------------------------------------------- draw
export function drawThread() {
  if (!cur || !els?.head) return;
  const c = state.convs.get(cur.id);
  if (!c) return;
  // Rebuilt only when what they show changed, so an open dropdown or a
  // half-typed tag survives the frames that keep arriving.
  const who = state.contacts.get(c.contact_id);
  const headSig = [c.updated_at, c.assignee_id, c.team_id, c.status, c.priority, c.csat_score, who?.id, state.agents.size, state.teams.size, [...state.online].join()].join('|');
  if (els.headSig !== headSig) { els.headSig = headSig; drawHead(c); }
  const tagSig = c.tags.join('\u0000') + '|' + state.tags.length;
  if (els.tagSig !== tagSig) { els.tagSig = tagSig; drawTags(c); }
  let pend = '';
  for (const p of sock.pending.values()) if (p.conversation_id === c.id) pend += `${p.client_id}${p.error ? '!' : ''},`;
  const msgSig = [cur.msgs.size, cur.maxSeq, cur.loading, state.contactRead.get(c.id) || 0, who?.id, pend, cur.rev].join('|');
  if (els.msgSig !== msgSig) { els.msgSig = msgSig; drawMessages(c); }
  const t = state.typing.get(c.id);
  els.typing.textContent = t && t.until > Date.now() ? `${t.name} ${L('正在输入…', 'is typing…')}` : '';
}

function select(label, value, options, onchange) {
  const s = h('select', { 'aria-label': label, title: label }, options.map(([v, text]) => h('option', { value: v }, text)));
  s.value = value;
  s.addEventListener('change', () => onchange(s.value, s));
  return s;
}

async function update(id, body) {
  try {
    const c = await patch(`/api/v1/conversations/${id}`, body);
    state.convs.set(c.id, c);
  } catch (e) {
    toast(e.message, 'error');
  }
  changed();
}

function drawHead(c) {
  const who = contact(c.contact_id);
  const inbox = state.inboxes.get(c.inbox_id);
  const eligible = [...state.agents.values()].filter((a) => a.active && (a.role === 'admin' || inbox?.member_ids.includes(a.id)));
  const assignee = select(L('负责人', 'Assignee'), c.assignee_id || '',
    [['', L('未分配', 'Unassigned')], ...eligible.map((a) => [a.id, `${state.online.has(a.id) || a.id === state.me.id ? '● ' : ''}${a.name}${a.id === state.me.id ? L('（我）', ' (me)') : ''}`])],
    (v) => update(c.id, { assignee_id: v || null }));
  const team = select(L('团队', 'Team'), c.team_id || '',
    [['', L('无团队', 'No team')], ...[...state.teams.values()].map((t) => [t.id, t.name])],
    (v) => update(c.id, { team_id: v || null }));
  const priority = select(L('优先级', 'Priority'), c.priority, PRIORITIES.map((p) => [p, `${L('优先级', 'Priority')}: ${priorityName(p)}`]),
    (v) => update(c.id, { priority: v }));
  const status = select(L('状态', 'Status'), c.status,
    [...STATUSES.filter((s) => s !== 'snoozed').map((s) => [s, statusName(s)]), ['snoozed', statusName('snoozed')], ['snooze:1h', L('暂停 1 小时', 'Snooze 1 hour')], ['snooze:1d', L('暂停到明天', 'Snooze until tomorrow')]],
    (v, s) => {
      if (v === 'snoozed') { s.value = c.status; return; }
      if (v.startsWith('snooze:')) {
        const until = new Date(Date.now() + (v === 'snooze:1h' ? 3600e3 : 86400e3));
        return update(c.id, { status: 'snoozed', snoozed_until: until.toISOString() });
      }
      update(c.id, { status: v });
    });
  const resolved = c.status === 'resolved' || c.status === 'closed';
  const resolve = h('button', {
    type: 'button', class: resolved ? 'secondary' : 'primary',
    onclick: () => update(c.id, { status: resolved ? 'open' : 'resolved' }),
  }, resolved ? L('重新打开', 'Reopen') : L('解决', 'Resolve'));
  // A form ticket's customer reads it through a status link: revoking gives a
  // new link to pass on (by email or phone) and stops the old ones at once.
  const revoke = inbox?.kind === 'form' ? h('button.secondary', {
    type: 'button', 'data-action': 'revoke-status-link',
    title: L('让客户手中的状态链接立即失效，并生成新链接', "Turn off the customer's status links now and make a new one"),
    onclick: () => revokeStatusLink(c),
  }, L('重置状态链接', 'Reset status link')) : null;
  fill(els.head,
    h('button.back', { type: 'button', 'aria-label': L('返回', 'Back'), onclick: els.onBack }, '‹'),
    avatar(contactName(who), who?.avatar_url),
    h('div.thread-title',
      h('h2', contactName(who)),
      h('div.sub', `#${c.number}`, inbox ? ` · ${inbox.name}` : '', ` · ${fmtTime(c.created_at, true)}`, c.csat_score ? ` · ${L('评分', 'CSAT')} ${'★'.repeat(c.csat_score)}` : '')),
    h('div.actions', assignee, team, priority, status, resolve, revoke));
}

async function revokeStatusLink(c) {
  if (!confirm(L('客户现有的状态链接将立即失效。继续？', "The customer's current status links stop working now. Go on?"))) return;
  try {
    const r = await post(`/api/v1/conversations/${c.id}/status-link`, {});
    prompt(L('新的状态链接（旧链接已失效），请发给客户：', 'New status link (the old ones no longer work); send it to the customer:'), r.status_url);
  } catch (e) {
    toast(e.message, 'error');
  }
}

function drawTags(c) {
  const input = h('input.tag-input', { placeholder: L('+ 标签', '+ tag'), list: 'tag-options', 'aria-label': L('添加标签', 'Add a tag'), maxLength: 50 });
  input.addEventListener('keydown', async (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    const tag = input.value.trim();
    if (!tag) return;
    try {
      state.convs.set(c.id, await post(`/api/v1/conversations/${c.id}/tags`, { tags: [tag] }));
      if (!state.tags.some((t) => t.name === tag)) loadDirectory().catch(() => {});
    } catch (err) { toast(err.message, 'error'); }
    changed();
  });
  const focused = document.activeElement?.classList.contains('tag-input');
  fill(els.tags,
    c.tags.map((t) => h('span.chip', t, h('button', {
      type: 'button', 'aria-label': `${L('移除', 'Remove')} ${t}`,
      onclick: async () => {
        try { state.convs.set(c.id, await del(`/api/v1/conversations/${c.id}/tags/${encodeURIComponent(t)}`)); } catch (err) { toast(err.message, 'error'); }
        changed();
      },
    }, '×'))),
    input,
    h('datalist', { id: 'tag-options' }, state.tags.filter((t) => !c.tags.includes(t.name)).map((t) => h('option', { value: t.name }))));
  if (focused) input.focus();
}

function drawMessages(c) {
  const list = els.messages;
  const msgs = [...cur.msgs.values()].sort((a, b) => a.seq - b.seq);
  const who = contact(c.contact_id);
  const read = state.contactRead.get(c.id) || 0;
  let lastOut = null;
  for (const m of msgs) if (m.direction === 'outgoing') lastOut = m;
  const rows = [];
  let day = '';
  for (const m of msgs) {
    const d = new Date(m.created_at).toDateString();
    if (d !== day) {
      day = d;
      rows.push(h('li.day', fmtTime(m.created_at, true).replace(/\s\S+$/, '')));
    }
    rows.push(message(m, who, m === lastOut && read >= m.seq));
  }
  for (const p of sock.pending.values()) {
    if (p.conversation_id !== c.id) continue;
    rows.push(h(`li.msg.${p.note ? 'note' : 'outgoing'}.${p.error ? 'failed' : 'pending'}`, { 'data-client-id': p.client_id },
      h('div.bubble', p.text, p.attachments.map((a) => h('div.attachment', a.filename))),
      h('div.meta', p.error
        ? [`${L('发送失败', 'Not sent')}: ${p.error} · `,
          h('button.link', { type: 'button', onclick: () => { sock.retry(p); changed(); } }, L('重试', 'Retry')), ' · ',
          h('button.link', { type: 'button', onclick: () => { sock.discard(p); changed(); } }, L('删除', 'Discard'))]
        : L('发送中…', 'Sending…'))));
  }
  if (cur.loading) rows.push(h('li.loading', L('加载中…', 'Loading…')));
  fill(list, rows);
  if (els.stick) list.scrollTop = list.scrollHeight;
}

const pictures = new Map(); // attachment id -> its link, kept so redraws do not reload it
function attachment(a) {
  const href = `/api/v1/attachments/${encodeURIComponent(a.id)}`;
  if (pictures.has(a.id)) return pictures.get(a.id);
  if (/^image\/(png|jpeg|gif|webp)$/.test(a.content_type)) {
    const img = h('img', { src: href, alt: a.filename });
    img.addEventListener('load', () => { if (els?.stick) els.messages.scrollTop = els.messages.scrollHeight; });
    const link = h('a.attachment.image', { href, target: '_blank', rel: 'noopener' }, img);
    if (pictures.size > 500) pictures.clear();
    pictures.set(a.id, link);
    return link;
  }
  return h('a.attachment.file', { href, target: '_blank', rel: 'noopener' }, `${a.filename} · ${Math.max(1, Math.round(a.size / 1024))} KB`);
}

function message(m, who, readMark) {
  if (m.direction === 'system') return h('li.msg.system', { 'data-id': m.id }, h('div.bubble', m.text));
  const name = m.direction === 'incoming' ? contactName(who) : m.sender_id ? agentName(m.sender_id) : L('系统', 'System');
  return h(`li.msg.${m.direction}`, { 'data-id': m.id, 'data-seq': m.seq },
    h('div.meta', h('b', name), m.direction === 'note' ? h('span.note-tag', L('内部备注', 'Private note')) : null, h('time', { title: m.created_at }, fmtTime(m.created_at))),
    h('div.bubble', m.text, (m.attachments || []).map(attachment)),
    m.direction === 'outgoing' && m.metadata?.email?.status ? deliveryLine(m.metadata.email) : null,
    readMark ? h('div.receipt', L('已读', 'Read')) : null);
}

// The left side of the console: views (unassigned, mine, all, by status, by
// inbox, by tag) with how many conversations each holds, and the live conversation list of the
// chosen view with search. New conversations and new messages move to the top.

import { get, query } from './api.js';
import { h, fill, L, ago, avatar, statusName, STATUSES, toast } from './dom.js';
import { state, changed, remember, matches, viewQuery, countIn, refreshCounts, contact, contactName, agentName } from './state.js';

let listIds = null; // with a search: the server's results; else null (all matching, from the cache)
let cursor = null;
let loading = false;
let els = null;

export function mountInbox(root, { onOpen }) {
  const search = h('input.search', {
    type: 'search', placeholder: L('搜索会话…', 'Search conversations…'), 'aria-label': L('搜索', 'Search'),
  });
  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.view.q = search.value.trim(); reload(); }, 300);
  });
  const status = h('select.status-filter', { 'aria-label': L('状态', 'Status') },
    STATUSES.map((s) => h('option', { value: s }, statusName(s))), h('option', { value: '' }, L('全部状态', 'Any status')));
  status.value = state.view.status;
  status.addEventListener('change', () => { state.view.status = status.value; saveView(); reload(); refreshCounts(); });
  els = {
    views: h('nav.views', { 'aria-label': L('视图', 'Views') }),
    title: h('h2'),
    status,
    search,
    list: h('ul.conv-list', { role: 'list' }),
    more: h('button.more', { type: 'button', hidden: true, onclick: () => load(true) }, L('加载更多', 'Load more')),
    onOpen,
  };
  // On narrow screens the sidebar is hidden: the same views in a menu.
  els.viewSelect = h('select.view-select', { 'aria-label': L('视图', 'View') });
  els.viewSelect.addEventListener('change', () => {
    const [kind, ...rest] = els.viewSelect.value.split(':');
    setView(kind, rest.join(':') || null);
  });
  fill(root,
    els.views,
    h('section.list-pane',
      h('header.list-head', els.viewSelect, h('div.list-title', els.title, status), search),
      els.list, els.more));
  try {
    const v = JSON.parse(localStorage.getItem(`kefu.view.${state.me.id}`));
    if (v?.kind) Object.assign(state.view, v, { q: '' });
    status.value = state.view.status;
  } catch { /* none */ }
}

function saveView() {
  const { kind, value, status } = state.view;
  try { localStorage.setItem(`kefu.view.${state.me.id}`, JSON.stringify({ kind, value, status })); } catch { /* full */ }
}

export function setView(kind, value = null) {
  Object.assign(state.view, { kind, value });
  saveView();
  reload();
}

export function reload() {
  cursor = null;
  listIds = state.view.q ? [] : null;
  load(false);
  changed();
}

async function load(more) {
  if (loading) return;
  loading = true;
  try {
    const q = viewQuery(state.view);
    if (more && cursor) q.cursor = cursor;
    const page = await get(`/api/v1/conversations${query(q)}`);
    for (const c of page.items) remember(c);
    if (listIds) listIds.push(...page.items.map((c) => c.id).filter((id) => !listIds.includes(id)));
    cursor = page.next_cursor;
  } catch (e) {
    toast(`${L('加载会话失败', 'Could not load conversations')}: ${e.message}`, 'error');
  } finally {
    loading = false;
    changed();
  }
}

// ------------------------------------------------------------------ drawing
function viewItem(label, view, icon) {
  const active = state.view.kind === view.kind && state.view.value === view.value;
  const n = countIn(view);
  return h('button.view', {
    type: 'button', class: active ? 'active' : '', 'aria-current': active ? 'true' : null,
    'data-view': `${view.kind}:${view.value ?? ''}`,
    onclick: () => { setView(view.kind, view.value); },
  }, icon ? h('span.view-icon', icon) : null, h('span.view-label', label),
  n ? h('span.count', { title: L(`${n} 个会话`, `${n} conversations`) }, String(n)) : null);
}

function drawViews() {
  const v = (kind, value = null) => ({ kind, value });
  const inboxes = [...state.inboxes.values()].sort((a, b) => a.name.localeCompare(b.name));
  fill(els.views,
    h('h3', L('会话', 'Conversations')),
    viewItem(L('未分配', 'Unassigned'), v('unassigned'), '○'),
    viewItem(L('我的', 'Mine'), v('mine'), '◉'),
    viewItem(L('全部', 'All'), v('all'), '≡'),
    h('h3', L('状态', 'Status')),
    STATUSES.map((s) => viewItem(statusName(s), v('status', s), h('i.dot', { class: `st-${s}` }))),
    inboxes.length ? h('h3', L('收件箱', 'Inboxes')) : null,
    inboxes.map((i) => viewItem(i.name, v('inbox', i.id), '#')),
    state.tags.length ? h('h3', L('标签', 'Tags')) : null,
    state.tags.map((t) => viewItem(t.name, v('tag', t.name), tagDot(t.color))));
}

function tagDot(color) {
  const dot = h('i.tag-dot');
  if (/^#[0-9a-f]{6}$/i.test(color || '')) dot.style.background = color;
  return dot;
}

function drawViewSelect() {
  const opt = (label, kind, value = '') => h('option', { value: `${kind}:${value}` }, label);
  fill(els.viewSelect,
    opt(L('未分配', 'Unassigned'), 'unassigned'), opt(L('我的', 'Mine'), 'mine'), opt(L('全部', 'All'), 'all'),
    h('optgroup', { label: L('状态', 'Status') }, STATUSES.map((st) => opt(statusName(st), 'status', st))),
    state.inboxes.size ? h('optgroup', { label: L('收件箱', 'Inboxes') }, [...state.inboxes.values()].map((i) => opt(i.name, 'inbox', i.id))) : null,
    state.tags.length ? h('optgroup', { label: L('标签', 'Tags') }, state.tags.map((t) => opt(t.name, 'tag', t.name))) : null);
  els.viewSelect.value = `${state.view.kind}:${state.view.value ?? ''}`;
}

function viewTitle() {
  const { kind, value } = state.view;
  if (kind === 'mine') return L('我的会话', 'Mine');
  if (kind === 'unassigned') return L('未分配', 'Unassigned');
  if (kind === 'all') return L('全部会话', 'All conversations');
  if (kind === 'status') return statusName(value);
  if (kind === 'inbox') return state.inboxes.get(value)?.name || L('收件箱', 'Inbox');
  return `# ${value}`;
}

export function visibleConversations() {
  const list = listIds
    ? listIds.map((id) => state.convs.get(id)).filter(Boolean)
    : [...state.convs.values()].filter((c) => matches(state.view, c) && !c.merged_into_id);
  return list.sort((a, b) => (a.last_activity_at < b.last_activity_at ? 1 : a.last_activity_at > b.last_activity_at ? -1 : 0));
}

export function drawInbox() {
  if (!els) return;
  drawViews();
  if (getComputedStyle(els.viewSelect).display !== 'none' && document.activeElement !== els.viewSelect) drawViewSelect();
  els.title.textContent = viewTitle();
  els.status.hidden = state.view.kind === 'status';
  const list = visibleConversations();
  const items = list.map(item);
  if (!items.length && !loading) {
    items.push(h('li.empty', state.view.q ? L('没有找到匹配的会话', 'No conversations match') : L('这里没有会话', 'No conversations here')));
  }
  fill(els.list, items);
  els.more.hidden = !cursor;
  previewsFor(list.slice(0, 60));
}

function item(c) {
  const who = contact(c.contact_id);
  const unread = state.unread.get(c.id) || 0;
  const typing = state.typing.get(c.id);
  const p = state.previews.get(c.id);
  const line = typing && typing.until > Date.now()
    ? h('span.typing-text', `${typing.name} ${L('正在输入…', 'is typing…')}`)
    : h('span', p ? `${prefix(p)}${p.text || L('[附件]', '[attachment]')}` : c.subject || '');
  const inbox = state.inboxes.get(c.inbox_id);
  return h('li.conv', {
    class: `${c.id === state.openId ? 'active' : ''} ${unread ? 'unread' : ''}`,
    'data-id': c.id,
    tabIndex: 0,
    onclick: () => els.onOpen(c.id),
    onkeydown: (e) => { if (e.key === 'Enter') els.onOpen(c.id); },
  },
  avatar(contactName(who), who?.avatar_url),
  h('div.conv-main',
    h('div.conv-top', h('b.conv-name', contactName(who)), h('time', { title: c.last_activity_at }, ago(c.last_activity_at))),
    h('div.conv-preview', line, unread ? h('span.count', { 'aria-label': L('未读', 'unread') }, String(unread)) : null),
    h('div.conv-meta',
      h('span', `#${c.number}`),
      inbox ? h('span', inbox.name) : null,
      c.assignee_id ? h('span', `→ ${agentName(c.assignee_id)}`) : h('span.unassigned', L('未分配', 'Unassigned')),
      c.priority === 'high' || c.priority === 'urgent' ? h('span.prio', { class: c.priority }, c.priority === 'urgent' ? L('紧急', 'Urgent') : L('高', 'High')) : null,
      h('span.st', { class: `st-${c.status}` }, statusName(c.status)))));
}

function prefix(p) {
  if (p.direction === 'note') return L('备注：', 'Note: ');
  if (p.direction !== 'outgoing') return '';
  return p.sender_id === state.me.id ? L('你：', 'You: ') : `${agentName(p.sender_id)}: `;
}

// Each list item carries its latest message; live ones arrive by socket.
function previewsFor(list) {
  for (const c of list) {
    if (c.last_message) setPreview({ ...c.last_message, conversation_id: c.id });
  }
}

export function setPreview(m) {
  const p = state.previews.get(m.conversation_id);
  if (p && p.seq > m.seq) return;
  if (m.direction === 'system') return;
  state.previews.set(m.conversation_id, { seq: m.seq, text: m.text, direction: m.direction, sender_id: m.sender_id });
}

/** A conversation the list does not show yet joins a search result only by reloading. */
export function keepInSearch(id) {
  if (listIds && !listIds.includes(id) && state.openId === id) listIds.unshift(id);
}

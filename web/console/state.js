// What the console knows: the agent, the organisation's agents, teams,
// inboxes and tags, every conversation seen so far (from lists and live
// frames), unread counts, how many conversations each view holds,
// last-message previews and who is typing. Modules
// read it directly and call `changed()` to have the screen redrawn.

import { get, post } from './api.js';
import { L } from './dom.js';

export const state = {
  me: null,
  agents: new Map(),
  teams: new Map(),
  inboxes: new Map(),
  tags: [],
  convs: new Map(),
  contacts: new Map(),
  previews: new Map(),
  unread: new Map(),
  typing: new Map(), // conversation id -> {name, until}
  contactRead: new Map(), // conversation id -> seq the customer read up to
  online: new Set(),
  // The console opens on the queue: open conversations nobody has taken
  // (Zammad's "Unassigned & Open", Chatwoot's Unassigned tab), so a new
  // chat shows up at once; "Mine" would stay empty until someone assigns it.
  view: { kind: 'unassigned', value: null, status: 'open', q: '' },
  counts: null, // GET /api/v1/conversations/counts for view.status
  openId: null,
  connection: 'connecting',
};

const listeners = new Set();
let queued = false;
export function onChange(fn) { listeners.add(fn); }
/** Redraws once per task, however often it is called. */
export function changed() {
  if (queued) return;
  queued = true;
  queueMicrotask(() => {
    queued = false;
    for (const fn of listeners) fn();
  });
}

export async function loadDirectory() {
  const [agents, teams, inboxes, tags] = await Promise.all([
    get('/api/v1/agents'), get('/api/v1/teams'), get('/api/v1/inboxes'), get('/api/v1/tags'),
  ]);
  state.agents = new Map(agents.map((a) => [a.id, a]));
  state.teams = new Map(teams.map((t) => [t.id, t]));
  state.inboxes = new Map(inboxes.map((i) => [i.id, i]));
  state.tags = tags;
  changed();
}

// ------------------------------------------------------------------ unread
// The server keeps each agent's read position per conversation and returns
// the unread count with every list; between lists, new customer messages
// count up here, and reading posts the position back.
const counted = new Map(); // conversation id -> highest seq already counted
const posted = new Map(); // conversation id -> read position sent to the server
const timers = new Map();

export function markRead(id, seq) {
  state.unread.set(id, 0);
  if ((counted.get(id) || 0) < seq) counted.set(id, seq);
  if ((posted.get(id) || 0) >= seq) return;
  posted.set(id, seq);
  // One request per conversation and second, however fast messages come.
  if (timers.has(id)) return;
  timers.set(id, setTimeout(() => {
    timers.delete(id);
    post(`/api/v1/conversations/${id}/read`, { seq: posted.get(id) }).catch(() => posted.delete(id));
  }, 1000));
}

/**
 * Adds or refreshes a conversation; returns the cached object. A list item
 * carries the caller's unread count, which is the truth at that moment.
 */
export function remember(item) {
  const { unread, ...c } = item;
  const old = state.convs.get(c.id);
  state.convs.set(c.id, c);
  if (typeof unread === 'number' && c.id !== state.openId) {
    state.unread.set(c.id, unread);
    counted.set(c.id, c.last_seq);
  } else if (!old && !state.unread.has(c.id)) {
    state.unread.set(c.id, 0);
  }
  return c;
}

/** A new customer message arrived where the agent is not looking. */
export function countUnread(id, seq) {
  if (seq <= (counted.get(id) || 0)) return;
  counted.set(id, seq);
  state.unread.set(id, (state.unread.get(id) || 0) + 1);
}

export async function conversation(id) {
  return state.convs.get(id) || remember(await get(`/api/v1/conversations/${id}`));
}

/** The contact, fetched once; null until it arrives. */
export function contact(id) {
  const c = state.contacts.get(id);
  if (c === undefined) {
    state.contacts.set(id, null);
    get(`/api/v1/contacts/${id}`).then((x) => { state.contacts.set(id, x); changed(); }, () => {});
    return null;
  }
  return c;
}

export function contactName(c) {
  if (!c) return L('访客', 'Visitor');
  return c.name || c.email || c.phone || `${L('访客', 'Visitor')} ${c.id.slice(-4)}`;
}

export const agentName = (id) => state.agents.get(id)?.name || L('客服', 'Agent');

// --------------------------------------------------------------------- views
export function matches(view, c, withStatus = true) {
  if (withStatus && view.status && view.kind !== 'status' && c.status !== view.status) return false;
  switch (view.kind) {
    case 'mine': return c.assignee_id === state.me.id;
    case 'unassigned': return !c.assignee_id;
    case 'status': return c.status === view.value;
    case 'inbox': return c.inbox_id === view.value;
    case 'tag': return c.tags.includes(view.value);
    default: return true;
  }
}

export function viewQuery(view) {
  const q = { limit: 50 };
  if (view.status && view.kind !== 'status') q.status = view.status;
  if (view.q) q.q = view.q;
  if (view.kind === 'mine') q.assignee_id = state.me.id;
  if (view.kind === 'unassigned') q.assignee_id = 'none';
  if (view.kind === 'status') q.status = view.value;
  if (view.kind === 'inbox') q.inbox_id = view.value;
  if (view.kind === 'tag') q.tag = view.value;
  return q;
}

// -------------------------------------------------------------- view counts
// The sidebar's badges count conversations (of the list's status, "open" by
// default: the ones waiting for someone), not unread messages. The server
// counts, since the console holds only what it has listed; it is asked
// again, half a second after the first of a burst (one request per console
// however busy the floor), whenever a conversation event arrives or the
// status filter changes.
let countTimer = 0;
let counting = false;
let countAgain = false;

export function refreshCounts() {
  if (counting) { countAgain = true; return; }
  if (countTimer) return;
  countTimer = setTimeout(async () => {
    countTimer = 0;
    counting = true;
    const status = state.view.status;
    try {
      const c = await get(`/api/v1/conversations/counts${status ? `?status=${status}` : ''}`);
      state.counts = { ...c, status };
    } catch { /* keep the last counts; the next event asks again */ }
    counting = false;
    changed();
    if (countAgain) { countAgain = false; refreshCounts(); }
  }, 500);
}

/** Statuses whose conversations still wait for someone (a badge in the status views). */
const WAITING = ['open', 'pending', 'snoozed'];

/** How many conversations the view holds, with the list's status filter. */
export function countIn(view) {
  const c = state.counts;
  if (!c) return 0;
  switch (view.kind) {
    case 'mine': return c.mine;
    case 'unassigned': return c.unassigned;
    case 'all': return c.all;
    case 'inbox': return c.inboxes[view.value] || 0;
    case 'tag': return c.tags[view.value] || 0;
    case 'status': return WAITING.includes(view.value) ? c.statuses[view.value] || 0 : 0;
    default: return 0;
  }
}

export function totalUnread() {
  let n = 0;
  for (const v of state.unread.values()) n += v;
  return n;
}

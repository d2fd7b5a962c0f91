// The contact panel beside a conversation: who the customer is, their
// external identities (WeChat, email, site user…), tags and attributes, and
// their other conversations.

import { get } from './api.js';
import { h, fill, L, fmtTime, avatar, statusName } from './dom.js';
import { state, contact, contactName } from './state.js';

let shown = null; // {contactId, convs}
let root = null;
let onOpen = null;

export function mountContact(el, open) {
  root = el;
  onOpen = open;
  fill(root);
}

export function drawContact() {
  if (!root) return;
  const conv = state.openId && state.convs.get(state.openId);
  if (!conv) { fill(root); shown = null; root.hidden = true; return; }
  root.hidden = false;
  const c = contact(conv.contact_id);
  if (!shown || shown.contactId !== conv.contact_id) {
    shown = { contactId: conv.contact_id, convs: null };
    const mine = shown;
    get(`/api/v1/contacts/${conv.contact_id}/conversations?limit=20`).then((page) => {
      mine.convs = page.items;
      if (shown === mine) drawContact();
    }, () => { mine.convs = []; });
  }
  // The list came from the server once; a conversation the console has
  // heard of since (resolved here, reopened by the customer) shows as it is now.
  const past = shown.convs && pastConversations(conv.contact_id, shown.convs);
  const sig = [conv.contact_id, c?.updated_at, state.openId, past?.map((x) => `${x.id}:${x.status}`).join()].join('|');
  if (root.dataset.sig === sig) return;
  root.dataset.sig = sig;
  if (!c) { fill(root, h('p.muted', L('加载中…', 'Loading…'))); return; }
  const field = (label, value) => (value ? h('div.field', h('dt', label), h('dd', value)) : null);
  const attrs = Object.entries(c.attributes || {}).filter(([, v]) => v != null && typeof v !== 'object');
  fill(root,
    h('div.contact-card',
      avatar(contactName(c), c.avatar_url, 'avatar.big'),
      h('h3', contactName(c)),
      c.email ? h('a.muted', { href: `mailto:${c.email}` }, c.email) : null),
    h('section',
      h('h4', L('联系方式', 'Contact')),
      h('dl',
        field(L('邮箱', 'Email'), c.email),
        field(L('电话', 'Phone'), c.phone),
        field(L('语言', 'Language'), c.language),
        field(L('创建于', 'Since'), fmtTime(c.created_at, true)),
        attrs.map(([k, v]) => field(k, String(v)))),
      !c.email && !c.phone ? h('p.muted', L('未留下联系方式', 'No contact details yet')) : null),
    h('section',
      h('h4', L('外部身份', 'Identities')),
      c.identities.length
        ? h('ul.identities', c.identities.map((i) => h('li', h('span.kind', i.kind), h('code', i.value))))
        : h('p.muted', L('无', 'None'))),
    h('section',
      h('h4', L('客户标签', 'Contact tags')),
      c.tags.length ? h('div.chips', c.tags.map((t) => h('span.chip', t))) : h('p.muted', L('无', 'None'))),
    h('section',
      h('h4', L('历史会话', 'Conversations')),
      past == null
        ? h('p.muted', L('加载中…', 'Loading…'))
        : h('ul.past', past.map((x) => h('li', {
          class: x.id === state.openId ? 'current' : '',
        }, h('button.link', { type: 'button', onclick: () => onOpen(x.id) }, `#${x.number}`),
        h('span.st', { class: `st-${x.status}` }, statusName(x.status)),
        h('time', fmtTime(x.last_activity_at)))))));
}

/** The contact's conversations as listed, updated and joined by what arrived live. */
function pastConversations(contactId, listed) {
  const all = new Map(listed.map((x) => [x.id, state.convs.get(x.id) || x]));
  for (const x of state.convs.values()) if (x.contact_id === contactId && !all.has(x.id)) all.set(x.id, x);
  return [...all.values()].sort((a, b) => (a.last_activity_at < b.last_activity_at ? 1 : -1)).slice(0, 20);
}

// Small DOM helpers shared by the console's modules. Text always goes in
// through textContent (h's string children), never as HTML.

export const ZH = /^zh/i.test(navigator.language || 'zh');
/** The phrase in the agent's language: Chinese or English. */
export const L = (zh, en) => (ZH ? zh : en);

/**
 * h('div.a.b', {onclick, title, ...}, child...) — children are nodes or
 * strings (as text), arrays are flattened, null/false skipped.
 * Properties go onto the element; `data-*`, `aria-*` and `for` as attributes.
 */
export function h(spec, props, ...children) {
  const [tag, ...classes] = spec.split('.');
  const e = document.createElement(tag || 'div');
  if (classes.length) e.className = classes.join(' ');
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('data-') || k.startsWith('aria-') || k === 'for' || k === 'role' || k === 'list') e.setAttribute(k, v);
    else if (k === 'class') e.className += (e.className ? ' ' : '') + v;
    else e[k] = v;
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else e.append(c instanceof Node ? c : String(c));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** Replaces the element's children. */
export function fill(e, ...children) {
  e.replaceChildren();
  append(e, children);
  return e;
}

export function fmtTime(iso, long = false) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const hm = d.toLocaleTimeString(ZH ? 'zh-CN' : 'en', { hour: '2-digit', minute: '2-digit', hour12: false });
  if (!long && d.toDateString() === now.toDateString()) return hm;
  const opts = { month: 'short', day: 'numeric' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  const day = d.toLocaleDateString(ZH ? 'zh-CN' : 'en', opts);
  return long ? `${day} ${hm}` : day;
}

/** "3 min", "2 h", "5 d" since the time. */
export function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return L('刚刚', 'now');
  if (s < 3600) return `${Math.floor(s / 60)}${L(' 分钟', 'm')}`;
  if (s < 86400) return `${Math.floor(s / 3600)}${L(' 小时', 'h')}`;
  return `${Math.floor(s / 86400)}${L(' 天', 'd')}`;
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** The first character of a name, for an avatar circle. */
export function avatar(name, url, cls = 'avatar') {
  const a = h(`span.${cls}`, { 'aria-hidden': 'true' });
  if (url && /^https:\/\//.test(url)) a.append(h('img', { src: url, alt: '' }));
  else a.textContent = Array.from((name || '?').trim())[0]?.toUpperCase() || '?';
  return a;
}

/** Toasts shown at once; a burst of failures shows its latest few, not a wall. */
const MAX_TOASTS = 3;

/**
 * A short-lived message at the bottom of the screen: gone after a few
 * seconds, on a click, when newer ones push it out, or when the agent moves
 * to another page (clearToasts) — a failure belongs to where it happened.
 */
export function toast(text, kind = 'info') {
  let box = $('#toasts');
  if (!box) document.body.append((box = h('div', { id: 'toasts', role: 'status' })));
  // The same message again (a retry failing the same way) renews the old one.
  for (const old of box.children) if (old.textContent === text) old.remove();
  const t = h(`div.toast.${kind}`, { onclick: () => t.remove() }, text);
  box.append(t);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 6000 : 3000);
}

export function clearToasts() {
  $('#toasts')?.replaceChildren();
}

export const STATUSES = ['open', 'pending', 'snoozed', 'resolved', 'closed'];
export const PRIORITIES = ['low', 'medium', 'high', 'urgent'];
export const statusName = (s) => ({
  open: L('进行中', 'Open'), pending: L('待处理', 'Pending'), snoozed: L('已暂停', 'Snoozed'),
  resolved: L('已解决', 'Resolved'), closed: L('已关闭', 'Closed'),
}[s] || s);
export const priorityName = (p) => ({
  low: L('低', 'Low'), medium: L('中', 'Medium'), high: L('高', 'High'), urgent: L('紧急', 'Urgent'),
}[p] || p);

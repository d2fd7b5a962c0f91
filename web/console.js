// A first, read-mostly console over the REST API: the conversation list with
// search and status filter, a thread view, and replies and notes. The full
// real-time console arrives with the WebSocket layer. Everything users typed
// goes into the page through textContent, never innerHTML.
let csrf = '';

async function api(path, options = {}) {
  const headers = { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, ...(options.headers || {}) };
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) { location.href = '/login'; throw new Error('signed out'); }
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error?.message || res.status);
  return res.status === 204 ? null : res.json();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

async function loadList() {
  const form = new FormData(document.getElementById('filter'));
  const params = new URLSearchParams();
  for (const [k, v] of form) if (v) params.set(k, v);
  const page = await api(`/api/v1/conversations?${params}`);
  const list = document.getElementById('conversations');
  list.replaceChildren(...page.items.map((c) => {
    const li = el('li');
    li.append(el('b', `#${c.number} `), el('span', c.subject || '(无主题)'), el('small', ` ${c.status}`));
    li.addEventListener('click', () => openThread(c));
    return li;
  }));
}

async function openThread(c) {
  const thread = document.getElementById('thread');
  const messages = await api(`/api/v1/conversations/${c.id}/messages`);
  const list = el('ol', undefined, 'messages');
  for (const m of messages) list.append(el('li', m.text, `msg ${m.direction}`));
  const box = el('textarea'); box.placeholder = '回复 Reply';
  const send = (direction) => async () => {
    await api(`/api/v1/conversations/${c.id}/messages`, { method: 'POST', body: JSON.stringify({ direction, text: box.value }) });
    openThread(c);
  };
  const reply = el('button', '发送 Send'); reply.onclick = send('outgoing');
  const note = el('button', '内部备注 Note'); note.onclick = send('note');
  thread.replaceChildren(el('h2', `#${c.number} ${c.subject || ''}`), list, box, reply, note);
}

const me = await api('/api/v1/auth/me');
csrf = me.csrf_token || '';
document.getElementById('who').textContent = `${me.agent.name} · ${me.agent.role}`;
document.getElementById('logout').onclick = async () => { await api('/api/v1/auth/logout', { method: 'POST' }); location.href = '/login'; };
document.getElementById('filter').addEventListener('submit', (e) => { e.preventDefault(); loadList(); });
loadList();

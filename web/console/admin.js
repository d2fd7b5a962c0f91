// Admin pages: agents, teams, inboxes (with the widget's embed code and
// look), canned responses, satisfaction, import runs (imports.js). Simple
// tables and forms over the REST API.

import { get, post, patch, del } from './api.js';
import { h, fill, L, fmtTime, toast } from './dom.js';
import { state, loadDirectory } from './state.js';
import { importsPage } from './imports.js';

const PAGES = {
  agents: [L('客服', 'Agents'), agentsPage],
  teams: [L('团队', 'Teams'), teamsPage],
  inboxes: [L('收件箱', 'Inboxes'), inboxesPage],
  canned: [L('快捷回复', 'Canned responses'), cannedPage],
  csat: [L('满意度', 'Satisfaction'), csatPage],
  imports: [L('导入记录', 'Imports'), importsPage],
};

export function drawAdmin(root, page) {
  if (!PAGES[page]) page = 'inboxes';
  const body = h('div.admin-body');
  fill(root, h('div.admin',
    h('nav.admin-nav', h('h3', L('设置', 'Settings')),
      Object.entries(PAGES).map(([k, [label]]) => h('a', { href: `#/admin/${k}`, class: k === page ? 'active' : '' }, label))),
    body));
  const redraw = () => PAGES[page][1](body, redraw).catch((e) => fill(body, h('p.error', e.message)));
  redraw();
}

/** Runs a write, reports its error, refreshes the directory and the page. */
async function act(fn, redraw, done = L('已保存', 'Saved')) {
  try {
    await fn();
    if (done) toast(done);
    await loadDirectory().catch(() => {});
    redraw();
  } catch (e) {
    toast(e.message, 'error');
  }
}

function form(fields, submitLabel, onSubmit) {
  const f = h('form.inline-form', fields, h('button.primary', { type: 'submit' }, submitLabel));
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    onSubmit(Object.fromEntries(new FormData(f)), f);
  });
  return f;
}
const input = (name, label, props = {}) => h('label', h('span', label), h('input', { name, ...props }));
const table = (head, rows) => h('table.data', h('thead', h('tr', head.map((x) => h('th', x)))), h('tbody', rows));

function memberPicker(selected) {
  const agents = [...state.agents.values()].filter((a) => a.active);
  return h('fieldset.members', h('legend', L('成员', 'Members')),
    agents.map((a) => h('label.check', h('input', { type: 'checkbox', value: a.id, checked: selected.includes(a.id) }), a.name)));
}
const picked = (fs) => [...fs.querySelectorAll('input:checked')].map((i) => i.value);
const names = (ids) => ids.map((id) => state.agents.get(id)?.name || '?').join(L('、', ', '));

// ------------------------------------------------------------------- agents
async function agentsPage(root, redraw) {
  const agents = await get('/api/v1/agents');
  fill(root,
    h('h2', L('客服', 'Agents')),
    form([
      input('name', L('姓名', 'Name'), { required: true, maxLength: 200 }),
      input('email', L('邮箱', 'Email'), { type: 'email', required: true }),
      h('label', h('span', L('角色', 'Role')), h('select', { name: 'role' }, h('option', { value: 'agent' }, L('客服', 'Agent')), h('option', { value: 'admin' }, L('管理员', 'Admin')))),
      input('password', L('初始密码（≥10 位）', 'Password (10+)'), { type: 'password', minLength: 10, autocomplete: 'new-password' }),
    ], L('添加客服', 'Add agent'), (v) => act(() => post('/api/v1/agents', { ...v, password: v.password || null }), redraw, L('已添加', 'Added'))),
    table([L('姓名', 'Name'), L('邮箱', 'Email'), L('角色', 'Role'), L('状态', 'Status'), ''], agents.map((a) => h('tr', { class: a.active ? '' : 'inactive' },
      h('td', a.name, a.id === state.me.id ? h('span.muted', L('（我）', ' (me)')) : null),
      h('td', a.email),
      h('td', a.role === 'admin' ? L('管理员', 'Admin') : L('客服', 'Agent')),
      h('td', a.active ? (state.online.has(a.id) || a.id === state.me.id ? h('span.online', L('● 在线', '● Online')) : L('正常', 'Active')) : L('已停用', 'Deactivated')),
      h('td.row-actions', a.id === state.me.id ? null : [
        h('button.secondary', { type: 'button', onclick: () => act(() => patch(`/api/v1/agents/${a.id}`, { active: !a.active }), redraw) },
          a.active ? L('停用', 'Deactivate') : L('启用', 'Activate')),
        h('button.secondary', { type: 'button', onclick: () => act(() => del(`/api/v1/agents/${a.id}/sessions`), redraw, L('已让其在所有设备退出', 'Signed out everywhere')) },
          L('退出所有设备', 'Sign out everywhere')),
      ])))));
}

// -------------------------------------------------------------------- teams
async function teamsPage(root, redraw) {
  const teams = await get('/api/v1/teams');
  const members = memberPicker([]);
  fill(root,
    h('h2', L('团队', 'Teams')),
    form([input('name', L('名称', 'Name'), { required: true, maxLength: 200 }), input('description', L('说明', 'Description'), { maxLength: 2000 }), members],
      L('创建团队', 'Create team'),
      (v) => act(() => post('/api/v1/teams', { name: v.name, description: v.description || null, member_ids: picked(members) }), redraw, L('已创建', 'Created'))),
    table([L('名称', 'Name'), L('成员', 'Members'), ''], teams.map((t) => {
      const edit = memberPicker(t.member_ids);
      return h('tr',
        h('td', h('b', t.name), t.description ? h('div.muted', t.description) : null),
        h('td', edit),
        h('td.row-actions',
          h('button.secondary', { type: 'button', onclick: () => act(() => patch(`/api/v1/teams/${t.id}`, { member_ids: picked(edit) }), redraw) }, L('保存成员', 'Save members')),
          h('button.danger', { type: 'button', onclick: () => confirm(L(`删除团队「${t.name}」？`, `Delete team "${t.name}"?`)) && act(() => del(`/api/v1/teams/${t.id}`), redraw, L('已删除', 'Deleted')) }, L('删除', 'Delete'))));
    })));
}

// ------------------------------------------------------------------ inboxes
const KINDS = { widget: L('网页聊天', 'Web chat'), email: L('邮件', 'Email'), form: L('表单', 'Form'), api: 'API' };

async function inboxesPage(root, redraw) {
  const inboxes = await get('/api/v1/inboxes');
  const members = memberPicker([state.me.id]);
  fill(root,
    h('h2', L('收件箱', 'Inboxes')),
    form([
      h('label', h('span', L('类型', 'Kind')), h('select', { name: 'kind' }, Object.entries(KINDS).map(([k, v]) => h('option', { value: k }, v)))),
      input('name', L('名称', 'Name'), { required: true, maxLength: 200 }),
      members,
    ], L('创建收件箱', 'Create inbox'), (v) => act(() => post('/api/v1/inboxes', { kind: v.kind, name: v.name, member_ids: picked(members) }), redraw, L('已创建', 'Created'))),
    inboxes.map((i) => inboxCard(i, redraw)));
}

function inboxCard(i, redraw) {
  const edit = memberPicker(i.member_ids);
  const card = h('section.box',
    h('header.card-head', h('h3', i.name), h('span.badge', KINDS[i.kind] || i.kind), h('span.muted', fmtTime(i.created_at, true))),
    h('div.card-row', edit, h('button.secondary', { type: 'button', onclick: () => act(() => patch(`/api/v1/inboxes/${i.id}`, { member_ids: picked(edit) }), redraw) }, L('保存成员', 'Save members'))));
  if (i.kind === 'widget') card.append(widgetSettings(i, redraw));
  if (i.kind === 'form') card.append(formSettings(i, redraw));
  return card;
}

// The H5 form: its public address, and its settings as JSON (fields, texts,
// CORS origins, upload limits — see docs/forms.md). The server checks them
// and names the wrong field; the message is shown under the editor.
function formSettings(i, redraw) {
  const f = i.settings?.form || {};
  const url = `${location.origin}/f/${f.slug || ''}`;
  const editor = h('textarea.form-json', { rows: 14, spellcheck: false, value: JSON.stringify(f, null, 2), 'aria-label': L('表单设置（JSON）', 'Form settings (JSON)') });
  const problem = h('p.error', { role: 'alert' });
  const save = async () => {
    problem.textContent = '';
    let form;
    try { form = JSON.parse(editor.value); } catch (e) { problem.textContent = L('JSON 格式错误：', 'Not valid JSON: ') + e.message; return; }
    try {
      await patch(`/api/v1/inboxes/${i.id}`, { settings: { ...(i.settings || {}), form } });
      toast(L('已保存', 'Saved'));
      redraw();
    } catch (e) { problem.textContent = e.message; }
  };
  return h('div.widget-box.form-box',
    h('h4', L('H5 表单', 'H5 form')),
    h('p.muted', L('表单地址（可放入公众号菜单、二维码或网页链接）：', 'Public address (for a WeChat menu, a QR code or a link):')),
    h('div.copy-row', h('a.form-url', { href: url, target: '_blank', rel: 'noopener' }, url), h('button.secondary', {
      type: 'button',
      onclick: async () => { try { await navigator.clipboard.writeText(url); toast(L('已复制', 'Copied')); } catch { toast(url); } },
    }, L('复制', 'Copy'))),
    h('p.muted', L('字段、说明文字、允许跨域的来源、附件限制（见 docs/forms.md）：', 'Fields, texts, CORS origins, upload limits (see docs/forms.md):')),
    editor, problem,
    h('button.primary', { type: 'button', onclick: save }, L('保存表单设置', 'Save form settings')));
}

function widgetSettings(i, redraw) {
  const w = i.settings?.widget || {};
  const pre = Array.isArray(w.prechat?.fields) ? w.prechat.fields : Array.isArray(w.prechat) ? w.prechat : [];
  const snippet = h('textarea.snippet', { readOnly: true, rows: 2, 'aria-label': L('嵌入代码', 'Embed code') });
  const secret = h('code.secret', '••••••••');
  let keys = null;
  get(`/api/v1/inboxes/${i.id}/widget`).then((k) => {
    keys = k;
    // Without a configured public_url the server gives a relative src, which
    // would load nothing on another site: make it absolute from here.
    snippet.value = k.snippet.replace('src="/', `src="${location.origin}/`);
  }, (e) => { snippet.value = e.message; });
  const look = form([
    input('color', L('主题色', 'Colour'), { type: 'color', value: /^#[0-9a-f]{6}$/i.test(w.color || '') ? w.color : '#1f6feb' }),
    input('greeting', L('欢迎语', 'Greeting'), { value: typeof w.greeting === 'string' ? w.greeting : '', maxLength: 500 }),
    h('label', h('span', L('位置', 'Position')), h('select', { name: 'position', value: w.position || 'right' },
      h('option', { value: 'right', selected: w.position !== 'left' }, L('右下角', 'Bottom right')), h('option', { value: 'left', selected: w.position === 'left' }, L('左下角', 'Bottom left')))),
    h('fieldset.members', h('legend', L('对话前表单', 'Pre-chat form')),
      ['name', 'email', 'phone'].map((f) => h('label.check', h('input', { type: 'checkbox', name: `pre_${f}`, checked: pre.includes(f) }),
        { name: L('姓名', 'Name'), email: L('邮箱', 'Email'), phone: L('电话', 'Phone') }[f]))),
  ], L('保存外观', 'Save look'), (v) => {
    const fields = ['name', 'email', 'phone'].filter((f) => v[`pre_${f}`]);
    const widget = { ...w, color: v.color, greeting: v.greeting || undefined, position: v.position, prechat: { fields } };
    act(() => patch(`/api/v1/inboxes/${i.id}`, { settings: { ...(i.settings || {}), widget } }), redraw);
  });
  return h('div.widget-box',
    h('h4', L('网页聊天插件', 'Chat widget')),
    h('p.muted', L('把这段代码粘贴到网站每个页面的 </body> 之前：', 'Paste this tag into your site’s pages, before </body>:')),
    h('div.copy-row', snippet, h('button.secondary', {
      type: 'button',
      onclick: async () => {
        snippet.select();
        try { await navigator.clipboard.writeText(snippet.value); } catch { document.execCommand('copy'); }
        toast(L('已复制', 'Copied'));
      },
    }, L('复制', 'Copy'))),
    h('p.muted', L('身份验证密钥（仅在服务器端使用，用于 identifier_hash）：', 'Identity secret (server-side only, signs identifier_hash):'), ' ', secret, ' ',
      h('button.link', { type: 'button', onclick: () => { if (keys) secret.textContent = keys.identity_secret; } }, L('显示', 'Show'))),
    look);
}

// ------------------------------------------------------------------- canned
async function cannedPage(root, redraw) {
  const list = await get('/api/v1/canned-responses');
  fill(root,
    h('h2', L('快捷回复', 'Canned responses')),
    h('p.muted', L('在回复框中输入 / 加快捷词即可插入。', 'Type / and the shortcut in the reply box to insert one.')),
    form([
      input('shortcut', L('快捷词', 'Shortcut'), { required: true, maxLength: 50, placeholder: 'refund' }),
      h('label.wide', h('span', L('内容', 'Text')), h('textarea', { name: 'text', required: true, rows: 2 })),
    ], L('添加', 'Add'), (v) => act(() => post('/api/v1/canned-responses', v), redraw, L('已添加', 'Added'))),
    table([L('快捷词', 'Shortcut'), L('内容', 'Text'), ''], list.map((c) => {
      const text = h('textarea', { rows: 2, value: c.text, 'aria-label': L('内容', 'Text') });
      return h('tr',
        h('td', h('code', `/${c.shortcut}`)),
        h('td', text),
        h('td.row-actions',
          h('button.secondary', { type: 'button', onclick: () => act(() => patch(`/api/v1/canned-responses/${c.id}`, { text: text.value }), redraw) }, L('保存', 'Save')),
          h('button.danger', { type: 'button', onclick: () => confirm(L('删除这条快捷回复？', 'Delete this canned response?')) && act(() => del(`/api/v1/canned-responses/${c.id}`), redraw, L('已删除', 'Deleted')) }, L('删除', 'Delete'))));
    })));
}

// --------------------------------------------------------------------- csat
async function csatPage(root) {
  const [agents, inboxes] = await Promise.all([get('/api/v1/reports/csat?by=agent'), get('/api/v1/reports/csat?by=inbox')]);
  const stars = (avg) => `${'★'.repeat(Math.round(avg))}${'☆'.repeat(5 - Math.round(avg))}`;
  const report = (title, r, name) => [
    h('h3.report-title', title),
    r.lines.length
      ? table([title, L('评价数', 'Ratings'), L('平均分', 'Average'), '1', '2', '3', '4', '5'], r.lines.map((x) => h('tr',
        h('td', name(x.id)), h('td', String(x.ratings)), h('td', h('span.stars', stars(x.average)), ` ${x.average.toFixed(2)}`),
        x.distribution.map((n) => h('td', String(n))))))
      : h('p.muted', L('这段时间还没有评价。', 'No ratings in this period.')),
  ];
  fill(root,
    h('h2', L('客户满意度（近 30 天）', 'Customer satisfaction (last 30 days)')),
    report(L('客服', 'Agent'), agents, (id) => (id ? state.agents.get(id)?.name || id : L('未分配', 'Unassigned'))),
    report(L('收件箱', 'Inbox'), inboxes, (id) => state.inboxes.get(id)?.name || id || '—'));
}

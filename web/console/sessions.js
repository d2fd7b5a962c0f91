// The agent's own sessions (devices), with "sign out other devices".

import { get, del } from './api.js';
import { h, fill, L, fmtTime, toast } from './dom.js';

export async function drawSessions(root) {
  const redraw = () => drawSessions(root);
  let list;
  try {
    list = await get('/api/v1/auth/sessions');
  } catch (e) {
    fill(root, h('p.error', e.message));
    return;
  }
  const others = list.filter((s) => !s.current).length;
  fill(root, h('div.page',
    h('h2', L('登录设备', 'Your sessions')),
    h('p.muted', L('这些浏览器登录了你的账号。不认识的设备请立即退出并修改密码。', 'These browsers are signed in to your account. Sign out any you do not recognise and change your password.')),
    h('button.danger', {
      type: 'button', id: 'signout-others', disabled: !others,
      onclick: async () => {
        try {
          const r = await del('/api/v1/auth/sessions');
          toast(L(`已退出 ${r.revoked} 台其他设备`, `Signed out ${r.revoked} other device(s)`));
        } catch (e) { toast(e.message, 'error'); }
        redraw();
      },
    }, L('退出其他所有设备', 'Sign out other devices')),
    h('table.data',
      h('thead', h('tr', [L('设备', 'Device'), 'IP', L('登录时间', 'Signed in'), L('最近使用', 'Last seen'), ''].map((x) => h('th', x)))),
      h('tbody', list.map((s) => h('tr', { class: s.current ? 'current' : '' },
        h('td', device(s.user_agent), s.current ? h('span.badge', L('当前设备', 'This device')) : null),
        h('td', s.ip || '—'),
        h('td', fmtTime(s.created_at, true)),
        h('td', fmtTime(s.last_seen_at, true)),
        h('td.row-actions', s.current ? null : h('button.secondary', {
          type: 'button',
          onclick: async () => {
            try { await del(`/api/v1/auth/sessions/${s.id}`); } catch (e) { toast(e.message, 'error'); }
            redraw();
          },
        }, L('退出', 'Sign out')))))))));
}

/** "Chrome on Linux" from a user agent string, or the string itself. */
function device(ua) {
  if (!ua) return L('未知设备', 'Unknown device');
  const browser = /Edg\//.test(ua) ? 'Edge' : /MicroMessenger/.test(ua) ? L('微信', 'WeChat') : /Chrome\//.test(ua) ? 'Chrome' : /Firefox\//.test(ua) ? 'Firefox' : /Safari\//.test(ua) ? 'Safari' : null;
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : null;
  return browser && os ? `${browser} · ${os}` : ua.slice(0, 80);
}

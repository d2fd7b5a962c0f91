// Admin page: the WeChat import runs (`kefu import wechat`), newest first —
// who ran what, when, how it ended, and what it brought across. A run's
// whole report (files, rejected lines, PII found) opens below its row.

import { get } from './api.js';
import { h, fill, L, fmtTime } from './dom.js';

const STATUS = {
  running: L('进行中', 'Running'),
  finished: L('已完成', 'Finished'),
  finished_with_rejections: L('完成（有被拒行）', 'Finished, lines rejected'),
  failed: L('失败', 'Failed'),
};

const n = (v) => (typeof v === 'number' ? v.toLocaleString() : '–');

export async function importsPage(root) {
  const { items } = await get('/api/v1/imports?limit=100');
  if (!items.length) {
    fill(root, h('h2', L('导入记录', 'Imports')),
      h('p.muted', L('还没有导入。在服务器上运行 kefu import wechat 文件…', 'No imports yet. Run kefu import wechat FILES… on the server.')));
    return;
  }
  fill(root,
    h('h2', L('导入记录', 'Imports')),
    h('table.data.imports',
      h('thead', h('tr', [L('开始', 'Started'), L('操作人', 'By'), L('状态', 'Status'), L('文件', 'Files'),
        L('客户', 'Contacts'), L('会话', 'Conversations'), L('消息', 'Messages'), L('被拒行', 'Rejected'), ''].map((x) => h('th', x)))),
      h('tbody', items.flatMap(row))));
}

function row(run) {
  const r = run.report || {};
  const files = Array.isArray(run.files) ? run.files.length : 0;
  const detail = h('tr.import-detail', { hidden: true },
    h('td', { colSpan: 9 }, h('pre.report', { style: 'max-height: 24em; overflow: auto; white-space: pre-wrap' },
      JSON.stringify(run.report, null, 2))));
  const toggle = h('button.secondary', {
    type: 'button',
    onclick: () => { detail.hidden = !detail.hidden; },
  }, L('报告', 'Report'));
  const status = (STATUS[run.status] || run.status) + (run.dry_run ? L('（试运行）', ' (dry run)') : '');
  return [
    h('tr', { 'data-run': run.id, class: `import-${run.status}` },
      h('td', fmtTime(run.started_at, true)),
      h('td', run.actor),
      h('td.status', status),
      h('td', String(files)),
      h('td', n((r.contacts_created || 0) + (r.contacts_updated || 0))),
      h('td', n(r.conversations)),
      h('td', n(r.messages_placed ?? r.messages)),
      h('td', n(r.rejected)),
      h('td.row-actions', toggle)),
    detail,
  ];
}

/*
 * The page behind a continuity link (/c/TOKEN): asks whether the link still
 * holds, then loads the widget opened, as the link's customer. The token
 * stays in this page; the widget trades it for a visitor session once.
 */
(function () {
  'use strict';
  var status = document.getElementById('status');
  var token = decodeURIComponent(location.pathname.replace(/^\/c\//, ''));
  function fail() {
    status.textContent = '此链接已失效或已被撤销，请联系客服获取新链接。This link has expired or was revoked: ask us for a new one.';
    status.className = 'error';
  }
  fetch('/api/widget/v1/link?token=' + encodeURIComponent(token)).then(function (res) {
    if (!res.ok) throw new Error(String(res.status));
    return res.json();
  }).then(function (target) {
    status.textContent = '您的历史会话已在右下角打开。Your conversations are open below.';
    var s = document.createElement('script');
    s.src = '/widget.js';
    s.setAttribute('data-inbox', target.inbox);
    s.setAttribute('data-link', token);
    s.setAttribute('data-open', '1');
    document.body.appendChild(s);
  }).catch(fail);
})();

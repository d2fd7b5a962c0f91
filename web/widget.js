/*! kefu chat widget. Embed with one tag:
 *   <script src="https://HOST/widget.js" data-inbox="PUBLIC_TOKEN" async></script>
 * Sites that know their user set, before the tag (hash signed per page view):
 *   window.kefuSettings = {identifier, timestamp, identifier_hash, name, email}
 * The page may call window.kefu.open() / .close() / .toggle() / .reset().
 * data-link="TOKEN" (a continuity link, see /c/TOKEN) starts as that link's
 * contact; data-open="1" opens the panel at once.
 * Look, from the inbox's settings.widget: color "#rrggbb", greeting and
 * title (text or {zh, en}), position "left" | "right", prechat
 * {fields: ["name", "email", "phone"], required: ["email"]}.
 * Protocol: docs/websocket-protocol.md. Everything users wrote is put into
 * the page with textContent, never as HTML. Kept dependency-free and small;
 * only APIs that WeChat's in-app browser has (no optional chaining either).
 */
(function () {
  'use strict';
  var script = document.currentScript || document.querySelector('script[data-inbox][src*="widget.js"]');
  if (!script || window.kefu) return;
  var INBOX = script.getAttribute('data-inbox') || '';
  var LINK = script.getAttribute('data-link') || '';
  var BASE = new URL(script.src, location.href).origin;
  var KEY = 'kefu.widget.' + INBOX;
  var ZH = /^zh/i.test(navigator.language || '');
  var T = ZH ? {
    title: '在线客服', greeting: '您好！有什么可以帮您？', open: '打开在线客服', close: '关闭',
    placeholder: '输入消息…', send: '发送', away: '客服暂时不在线', online: '客服在线 · 通常几分钟内回复',
    offline: '客服暂时不在线，您可以先留言，我们会尽快回复。', email: '邮箱', emailAsk: '留下邮箱，回复会同时发送到您的邮箱：',
    save: '提交', saved: '好的，我们会回复到 ', sending: '发送中…', failed: '发送失败，点按重试',
    read: '已读', typing: ' 正在输入…', agent: '客服', rate: '请为本次服务评分', comment: '还有什么想告诉我们的吗？（可选）',
    rateSend: '提交评价', skip: '跳过', thanks: '感谢您的评价！', prechat: '开始对话前，请留下您的联系方式',
    name: '姓名', phone: '电话', start: '开始对话', reconnecting: '网络中断，正在重新连接…', conv: '会话 #',
    error: '暂时无法连接客服，请稍后再试。', file: '附件：', attach: '发送图片或文件', tooLarge: '文件不能超过 10 MB', badType: '不支持这种文件类型', uploading: '上传中…'
  } : {
    title: 'Chat with us', greeting: 'Hi there! How can we help?', open: 'Open chat', close: 'Close',
    placeholder: 'Type a message…', send: 'Send', away: 'We are away right now', online: 'We are online · we usually reply in minutes',
    offline: 'We are away right now. Leave a message and we will get back to you.', email: 'Email', emailAsk: 'Leave your email to get our reply there too:',
    save: 'Save', saved: 'Thanks, we will reply to ', sending: 'Sending…', failed: 'Not sent. Tap to retry',
    read: 'Read', typing: ' is typing…', agent: 'Support', rate: 'How would you rate this conversation?', comment: 'Anything else you want to tell us? (optional)',
    rateSend: 'Send rating', skip: 'Skip', thanks: 'Thank you for your rating!', prechat: 'Before we start, how can we reach you?',
    name: 'Name', phone: 'Phone', start: 'Start chat', reconnecting: 'Connection lost, reconnecting…', conv: 'Conversation #',
    error: 'Cannot reach support right now. Please try again later.', file: 'Attachment: ', attach: 'Send a picture or file', tooLarge: 'Files are limited to 10 MB', badType: 'This type of file is not accepted', uploading: 'Uploading…'
  };

  // ------------------------------------------------------------ storage ---
  // Per inbox: {token, exp, verified, identifier, email, prechat, cfg, cfgAt}
  function load() { try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; } }
  var saved = load();
  function save() { try { localStorage.setItem(KEY, JSON.stringify(saved)); } catch (e) { /* private mode */ } }

  function api(path, body) {
    return fetch(BASE + path, body ? {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    } : {}).then(function (res) {
      if (!res.ok) { var e = new Error(path + ': ' + res.status); e.status = res.status; throw e; }
      return res.json();
    });
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.random() * 256;
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }

  // -------------------------------------------------------------- state ---
  var cfg = saved.cfg || { inbox_name: '', settings: {}, agents_online: true };
  var convs = {};       // id -> {info, msgs: {id: message}, held: last seq received as a frame}
  var pending = [];     // unacknowledged sends: {client_id, text, conversation_id, error}
  var ws = null, ready = false, backoff = 0, retryTimer = 0, lastHeard = 0;
  var started = false, starting = false, failedStart = false;
  var isOpen = false, loadedAt = Date.now();
  var agentTyping = null, agentTypingTimer = 0, myTyping = false, myTypingTimer = 0;
  var agentRead = {}, readSent = {}, rated = {}, skipped = {};

  function conv(id) {
    return convs[id] || (convs[id] = { info: { id: id, number: 0, status: 'open', last_seq: 0, csat_score: null, created_at: new Date().toISOString() }, msgs: {}, held: 0 });
  }
  function sortedConvs() {
    return Object.keys(convs).map(function (k) { return convs[k]; }).sort(function (a, b) {
      return a.info.created_at < b.info.created_at ? -1 : a.info.created_at > b.info.created_at ? 1 : a.info.number - b.info.number;
    });
  }
  function latest() { var l = sortedConvs(); return l[l.length - 1]; }
  function active() {
    var c = latest();
    return c && c.info.status !== 'resolved' && c.info.status !== 'closed' ? c : null;
  }

  // ---------------------------------------------------------------- DOM ---
  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function icon(d, cls) {
    var ns = 'http://www.w3.org/2000/svg', s = document.createElementNS(ns, 'svg'), p = document.createElementNS(ns, 'path');
    s.setAttribute('viewBox', '0 0 24 24'); s.setAttribute('aria-hidden', 'true'); s.setAttribute('class', cls || '');
    p.setAttribute('d', d); s.appendChild(p);
    return s;
  }
  var CHAT = 'M5 3h14a3 3 0 0 1 3 3v9a3 3 0 0 1-3 3h-7.6L6 21.5V18H5a3 3 0 0 1-3-3V6a3 3 0 0 1 3-3z';
  var CLOSE = 'M6 6l12 12M18 6L6 18';
  var SEND = 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z';
  var CLIP = 'M20 11.5l-7.8 7.8a5 5 0 0 1-7.1-7.1l8.2-8.2a3.3 3.3 0 0 1 4.7 4.7l-8.2 8.2a1.7 1.7 0 0 1-2.4-2.4l7.5-7.5';
  // What the server accepts from customers (10 MiB at most).
  var TYPES = /^(image\/(png|jpeg|gif|webp)|application\/(pdf|zip|msword|vnd\.ms-excel|vnd\.openxmlformats-officedocument\.(wordprocessingml\.document|spreadsheetml\.sheet))|text\/plain)$/;
  var MAX_FILE = 10 * 1024 * 1024;

  var CSS = [
    ':host{all:initial}',
    '*{box-sizing:border-box}',
    '.w{position:fixed;z-index:2147483000;bottom:20px;right:20px;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei",sans-serif;color:#1f2328;-webkit-font-smoothing:antialiased;-webkit-tap-highlight-color:transparent}',
    '.w.left{right:auto;left:20px}',
    'button{font:inherit;cursor:pointer}',
    '.launch{width:58px;height:58px;border:0;border-radius:50%;background:var(--kf);color:var(--fg);box-shadow:0 6px 24px rgba(0,0,0,.22);display:flex;align-items:center;justify-content:center;transition:transform .15s;position:relative}',
    '.launch:hover{transform:scale(1.06)}',
    '.launch svg{width:28px;height:28px;fill:currentColor}',
    '.badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#e5484d;color:#fff;font-size:12px;font-weight:600;line-height:20px;text-align:center}',
    '.panel{position:absolute;bottom:74px;right:0;width:372px;height:min(640px,calc(100vh - 110px));background:#fff;border-radius:16px;box-shadow:0 14px 52px rgba(0,0,0,.2);display:flex;flex-direction:column;overflow:hidden}',
    '.left .panel{right:auto;left:0}',
    '[hidden]{display:none!important}',
    '.head{background:var(--kf);color:var(--fg);padding:16px 14px 16px 20px;display:flex;align-items:center;gap:10px}',
    '.head div{flex:1;min-width:0}',
    '.head b{display:block;font-size:16px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}',
    '.head small{display:flex;align-items:center;gap:6px;font-size:12.5px;opacity:.9}',
    '.dot{width:8px;height:8px;border-radius:50%;background:#3ddc84;flex:none}',
    '.off .dot{background:#c4c9cf}',
    '.x{width:34px;height:34px;border:0;border-radius:8px;background:transparent;color:inherit;display:flex;align-items:center;justify-content:center}',
    '.x:hover{background:rgba(255,255,255,.18)}',
    '.x svg{width:20px;height:20px;stroke:currentColor;stroke-width:2.2;stroke-linecap:round;fill:none}',
    '.note{background:#fff8e6;color:#6b4e00;font-size:13px;padding:10px 16px;border-bottom:1px solid #f3e3b5}',
    '.note form{display:flex;gap:6px;margin-top:8px}',
    '.body{flex:1;overflow-y:auto;padding:16px 14px 8px;background:#f5f6f8;overscroll-behavior:contain;-webkit-overflow-scrolling:touch}',
    '.row{display:flex;gap:8px;margin:2px 0 10px;align-items:flex-end}',
    '.row.me{flex-direction:row-reverse}',
    '.av{width:28px;height:28px;border-radius:50%;background:#dfe3e8;color:#4b5563;font-size:13px;font-weight:600;display:flex;align-items:center;justify-content:center;flex:none;overflow:hidden}',
    '.av img{width:100%;height:100%;object-fit:cover}',
    '.col{max-width:78%;display:flex;flex-direction:column;align-items:flex-start;min-width:0}',
    '.me .col{align-items:flex-end}',
    '.bub{padding:9px 13px;border-radius:16px;background:#fff;border:1px solid #e7e9ec;border-bottom-left-radius:5px;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere;max-width:100%}',
    '.me .bub{background:var(--kf);color:var(--fg);border-color:transparent;border-radius:16px;border-bottom-right-radius:5px}',
    '.pend .bub{opacity:.6}',
    '.fail .bub{opacity:1;background:#fdecec;color:#9b1c1c;cursor:pointer}',
    '.meta{font-size:11.5px;color:#8a939d;margin:3px 4px 0}',
    '.fail .meta{color:#c2272d;cursor:pointer}',
    '.sep{text-align:center;font-size:11.5px;color:#9aa3ad;margin:14px 0 10px}',
    '.typing{font-size:12.5px;color:#6b7280;padding:0 4px 8px}',
    '.card{background:#fff;border:1px solid #e7e9ec;border-radius:12px;padding:14px;margin:8px 0 12px;text-align:center}',
    '.stars{display:flex;justify-content:center;gap:4px;margin:8px 0}',
    '.stars button{border:0;background:none;font-size:28px;line-height:1;color:#d0d5db;padding:2px}',
    '.stars button.on{color:#f5a524}',
    '.card textarea,.pre input,.note input{width:100%;border:1px solid #d6dbe1;border-radius:8px;padding:8px 10px;font:inherit;font-size:16px;background:#fff;color:inherit;resize:none}',
    '.card .acts{display:flex;gap:8px;justify-content:center;margin-top:10px}',
    '.btn{border:0;border-radius:8px;background:var(--kf);color:var(--fg);padding:8px 16px;font-weight:600;white-space:nowrap}',
    '.btn.ghost{background:#eef0f3;color:#374151}',
    '.pre{padding:16px;border-top:1px solid #eceef1;display:flex;flex-direction:column;gap:8px}',
    '.pre p{margin:0 0 4px;font-weight:600}',
    '.comp{display:flex;align-items:flex-end;gap:6px;padding:10px 10px 10px 8px;border-top:1px solid #eceef1;background:#fff}',
    '.clip{width:36px;height:38px;border:0;border-radius:8px;background:transparent;color:#6b7280;display:flex;align-items:center;justify-content:center;flex:none}',
    '.clip:hover{background:#f1f3f5}',
    '.clip svg{width:20px;height:20px;stroke:currentColor;stroke-width:1.8;stroke-linecap:round;fill:none}',
    '.att{display:block;max-width:220px;max-height:240px;border-radius:12px;margin-top:4px;border:1px solid #e7e9ec;background:#fff}',
    '.file{display:flex;gap:6px;align-items:center;margin-top:4px;padding:8px 12px;border-radius:12px;background:#fff;border:1px solid #e7e9ec;color:#1f2328;text-decoration:none;word-break:break-all}',
    '.file svg{width:16px;height:16px;flex:none;stroke:currentColor;stroke-width:1.8;fill:none}',
    '.comp textarea{flex:1;border:0;outline:0;resize:none;font:inherit;font-size:15px;line-height:1.45;max-height:120px;padding:7px 0;background:transparent;color:inherit}',
    '.send{width:38px;height:38px;border:0;border-radius:50%;background:var(--kf);color:var(--fg);display:flex;align-items:center;justify-content:center;flex:none}',
    '.send:disabled{opacity:.4;cursor:default}',
    '.send svg{width:19px;height:19px;fill:currentColor}',
    '.err{font-size:12.5px;color:#9b1c1c;background:#fdecec;padding:8px 16px}',
    '@media (max-width:480px){.w{bottom:16px;right:16px}.w.left{left:16px}',
    '.w.open{top:0;left:0;right:0;bottom:0}.w.open .launch{display:none}',
    '.panel{position:fixed;top:0;left:0;right:0;bottom:0;width:auto;height:auto;border-radius:0}',
    '.left .panel{left:0}}'
  ].join('\n');

  var host = h('div');
  host.id = 'kefu-widget';
  var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
  if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
    // Not subject to the host page's style-src, unlike a <style> element.
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    root.appendChild(h('style', null, CSS));
  }
  var wrap = h('div', 'w');
  var launch = h('button', 'launch');
  launch.type = 'button';
  launch.setAttribute('aria-label', T.open);
  launch.appendChild(icon(CHAT));
  var badge = h('span', 'badge');
  badge.hidden = true;
  launch.appendChild(badge);

  var panel = h('div', 'panel');
  panel.hidden = true;
  panel.setAttribute('role', 'dialog');
  var head = h('div', 'head');
  var titleBox = h('div');
  var title = h('b');
  var status = h('small');
  var statusText = h('span');
  status.appendChild(h('i', 'dot'));
  status.appendChild(statusText);
  titleBox.appendChild(title);
  titleBox.appendChild(status);
  var closeBtn = h('button', 'x');
  closeBtn.type = 'button';
  closeBtn.setAttribute('aria-label', T.close);
  closeBtn.appendChild(icon(CLOSE));
  head.appendChild(titleBox);
  head.appendChild(closeBtn);

  var note = h('div', 'note');
  var errBar = h('div', 'err');
  errBar.hidden = true;
  var body = h('div', 'body');
  body.setAttribute('aria-live', 'polite');
  var pre = h('form', 'pre');
  pre.hidden = true;
  var comp = h('form', 'comp');
  var input = h('textarea');
  input.rows = 1;
  input.placeholder = T.placeholder;
  input.setAttribute('aria-label', T.placeholder);
  input.maxLength = 20000;
  var sendBtn = h('button', 'send');
  sendBtn.type = 'submit';
  sendBtn.setAttribute('aria-label', T.send);
  sendBtn.appendChild(icon(SEND));
  var clip = h('button', 'clip');
  clip.type = 'button';
  clip.setAttribute('aria-label', T.attach);
  clip.title = T.attach;
  clip.appendChild(icon(CLIP));
  var picker = h('input');
  picker.type = 'file';
  picker.accept = 'image/*,.pdf,.txt,.doc,.docx,.xls,.xlsx,.zip';
  picker.hidden = true;
  comp.appendChild(clip);
  comp.appendChild(picker);
  comp.appendChild(input);
  comp.appendChild(sendBtn);
  [head, note, errBar, body, pre, comp].forEach(function (e) { panel.appendChild(e); });
  wrap.appendChild(panel);
  wrap.appendChild(launch);
  root.appendChild(wrap);

  function applyConfig() {
    var s = cfg.settings || {};
    var color = /^#[0-9a-f]{6}$/i.test(s.color || '') ? s.color : /^#[0-9a-f]{3}$/i.test(s.color || '') ? s.color : '#1f6feb';
    var hex = color.length === 4 ? color.replace(/([0-9a-f])/gi, '$1$1').slice(1) : color.slice(1);
    var n = parseInt(hex, 16), lum = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
    wrap.style.setProperty('--kf', color);
    wrap.style.setProperty('--fg', lum > 0.7 ? '#1f2328' : '#fff');
    wrap.classList.toggle('left', s.position === 'left');
    title.textContent = textOf(s.title) || cfg.inbox_name || T.title;
    panel.setAttribute('aria-label', title.textContent);
  }
  // A setting may be plain text or {zh, en}.
  function textOf(v) {
    if (!v) return '';
    if (typeof v === 'string') return v;
    return (ZH ? v.zh || v['zh-CN'] : v.en) || v.en || v.zh || '';
  }
  function prechatFields() {
    var p = (cfg.settings || {}).prechat;
    var list = Array.isArray(p) ? p : p && p.enabled !== false && Array.isArray(p.fields) ? p.fields : [];
    var required = p && Array.isArray(p.required) ? p.required : [];
    return list.map(function (f) {
      var name = typeof f === 'string' ? f : f && f.name;
      return { name: name, required: (f && f.required) || required.indexOf(name) >= 0 };
    }).filter(function (f) { return f.name === 'name' || f.name === 'email' || f.name === 'phone'; });
  }

  // Asked once, before the first session; a site's signed-in user skips it.
  function needPrechat() {
    return !saved.token && !saved.prechat && !LINK && !(window.kefuSettings || {}).identifier && prechatFields().length > 0;
  }

  // ------------------------------------------------------------ render ---
  var renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    Promise.resolve().then(function () { renderQueued = false; draw(); });
  }

  function draw() {
    var online = cfg.agents_online !== false;
    status.className = online ? '' : 'off';
    statusText.textContent = online ? T.online : T.away;
    var unread = isOpen ? 0 : unreadCount();
    badge.hidden = !unread;
    badge.textContent = unread > 99 ? '99+' : String(unread);
    drawNote(online);
    errBar.hidden = !(flashText || failedStart || (started && !ready && backoff > 1));
    errBar.textContent = flashText || (failedStart ? T.error : T.reconnecting);
    var needPre = needPrechat();
    pre.hidden = !needPre;
    comp.hidden = needPre;
    if (needPre && !pre.firstChild) drawPrechat();
    sendBtn.disabled = !input.value.trim();

    var out = document.createDocumentFragment();
    var greeting = textOf((cfg.settings || {}).greeting) || T.greeting;
    out.appendChild(agentRow(null, greeting, null));
    var list = sortedConvs(), lastMine = null;
    list.forEach(function (c, i) {
      var msgs = Object.keys(c.msgs).map(function (k) { return c.msgs[k]; }).sort(function (a, b) { return a.seq - b.seq; });
      if (list.length > 1 && msgs.length) out.appendChild(h('div', 'sep', T.conv + c.info.number + ' · ' + when(c.info.created_at, true)));
      msgs.forEach(function (m) {
        if (m.direction === 'incoming') {
          var row = mineRow(m.text, when(m.created_at), m.attachments);
          lastMine = { row: row, m: m };
          out.appendChild(row);
        } else {
          out.appendChild(agentRow(m, m.text, m.attachments));
        }
      });
    });
    if (lastMine && (agentRead[lastMine.m.conversation_id] || 0) >= lastMine.m.seq) {
      lastMine.row.querySelector('.meta').textContent += ' · ' + T.read;
    }
    pending.forEach(function (p) {
      var row = mineRow(p.text || (p.file ? T.file + p.file.name : ''), p.error ? T.failed : p.uploading ? T.uploading : T.sending);
      row.className += p.error ? ' fail' : ' pend';
      if (p.error) {
        row.title = p.error;
        row.onclick = function () { p.error = null; if (p.blob && !p.attachment) upload(p); else flush(); render(); };
      }
      out.appendChild(row);
    });
    if (agentTyping) out.appendChild(h('div', 'typing', (agentTyping || T.agent) + T.typing));
    var card = csatCard();
    if (card) out.appendChild(card);
    body.replaceChildren ? body.replaceChildren(out) : (body.textContent = '', body.appendChild(out));
    if (stuck || drawScroll) body.scrollTop = body.scrollHeight;
    drawScroll = false;
  }
  // Follow new messages unless the visitor scrolled up to read.
  var drawScroll = true, stuck = true;
  body.onscroll = function () { stuck = body.scrollHeight - body.scrollTop - body.clientHeight < 60; };

  function when(iso, withDate) {
    var d = new Date(iso);
    if (isNaN(d)) return '';
    var t = ('0' + d.getHours()).slice(-2) + ':' + ('0' + d.getMinutes()).slice(-2);
    return withDate || d.toDateString() !== new Date().toDateString() ? (d.getMonth() + 1) + '/' + d.getDate() + ' ' + t : t;
  }
  function mineRow(text, meta, attachments) {
    var row = h('div', 'row me'), col = h('div', 'col');
    if (text) col.appendChild(h('div', 'bub', text));
    files(col, attachments);
    col.appendChild(h('div', 'meta', meta));
    row.appendChild(col);
    return row;
  }
  function agentRow(m, text, attachments) {
    var row = h('div', 'row'), col = h('div', 'col'), name = (m && m.sender_name) || (m ? T.agent : title.textContent);
    var av = h('div', 'av');
    if (m && /^https:\/\//.test(m.sender_avatar_url || '')) {
      var img = h('img');
      img.alt = '';
      img.src = m.sender_avatar_url;
      av.appendChild(img);
    } else {
      av.textContent = Array.from(name)[0] || '?';
    }
    row.appendChild(av);
    if (m) col.appendChild(h('div', 'meta', name + ' · ' + when(m.created_at)));
    if (text) col.appendChild(h('div', 'bub', text));
    files(col, attachments);
    row.appendChild(col);
    return row;
  }

  // Rebuilt only when what it says changes, so a half-typed email survives
  // the frames that redraw the panel.
  var noteSig = null;
  // Pictures inline, other files as links; the visitor token authorises the
  // download (a query parameter, so that <img src> works).
  var fileEls = {};
  function files(col, list) {
    (list || []).forEach(function (a) {
      // The same element each redraw: a picture is not loaded again.
      if (fileEls[a.id]) return col.appendChild(fileEls[a.id]);
      var url = BASE + '/api/widget/v1/attachments/' + encodeURIComponent(a.id) + '?token=' + encodeURIComponent(saved.token || '');
      var link = h('a', /^image\//.test(a.content_type) ? null : 'file');
      link.href = url;
      link.target = '_blank';
      link.rel = 'noopener';
      if (/^image\//.test(a.content_type)) {
        var img = h('img', 'att');
        img.alt = a.filename;
        img.onload = function () { if (stuck) body.scrollTop = body.scrollHeight; };
        img.src = url;
        link.appendChild(img);
      } else {
        link.appendChild(icon(CLIP));
        link.appendChild(document.createTextNode(a.filename + ' · ' + Math.max(1, Math.round(a.size / 1024)) + ' KB'));
      }
      col.appendChild(fileEls[a.id] = link);
    });
  }

  // The email offer only when the server says replies go out by mail
  // (the inbox is linked to an email inbox); a promise it cannot keep is
  // worse than none.
  function drawNote(online) {
    note.hidden = online;
    var mail = cfg.email_follow_up === true;
    var sig = online + '|' + mail + '|' + (saved.email || '');
    if (online || sig === noteSig) return;
    noteSig = sig;
    note.textContent = '';
    note.appendChild(h('div', null, T.offline));
    if (!mail) return;
    if (saved.email) { note.appendChild(h('div', null, T.saved + saved.email)); return; }
    note.appendChild(h('div', null, T.emailAsk));
    var f = h('form'), e = h('input'), b = h('button', 'btn', T.save);
    e.type = 'email'; e.required = true; e.placeholder = T.email; e.setAttribute('aria-label', T.email); e.autocomplete = 'email';
    f.appendChild(e); f.appendChild(b);
    f.onsubmit = function (ev) {
      ev.preventDefault();
      var email = e.value.trim();
      if (!email) return;
      b.disabled = true;
      ensureSession({ email: email }).then(function () {
        saved.email = email; save(); render();
      }, function () { b.disabled = false; e.setCustomValidity(T.error); e.reportValidity(); });
    };
    note.appendChild(f);
  }

  function drawPrechat() {
    pre.appendChild(h('p', null, T.prechat));
    var inputs = {};
    prechatFields().forEach(function (f) {
      var i = h('input');
      i.name = f.name;
      i.type = f.name === 'email' ? 'email' : f.name === 'phone' ? 'tel' : 'text';
      i.placeholder = T[f.name] + (f.required ? ' *' : '');
      i.setAttribute('aria-label', T[f.name]);
      i.required = !!f.required;
      i.autocomplete = f.name === 'phone' ? 'tel' : f.name;
      inputs[f.name] = i;
      pre.appendChild(i);
    });
    var b = h('button', 'btn', T.start);
    pre.appendChild(b);
    pre.onsubmit = function (ev) {
      ev.preventDefault();
      var details = {};
      Object.keys(inputs).forEach(function (k) { if (inputs[k].value.trim()) details[k] = inputs[k].value.trim(); });
      b.disabled = true;
      ensureSession(details).then(function () {
        saved.prechat = true;
        if (details.email) saved.email = details.email;
        save(); render(); input.focus();
      }, function () { b.disabled = false; failedStart = true; render(); });
    };
  }

  // The same card element is kept across redraws (stars and comment stay).
  var csat = { key: null, el: null };
  function csatCard() {
    var c = latest();
    if (!c || c.info.imported || (c.info.status !== 'resolved' && c.info.status !== 'closed')) return null;
    var id = c.info.id, done = rated[id] || c.info.csat_score != null;
    if (skipped[id] || (c.info.csat_score != null && !rated[id])) return null;
    var key = id + (done ? ':done' : '');
    if (csat.key !== key) csat = { key: key, el: done ? h('div', 'card', T.thanks) : rateCard(id) };
    return csat.el;
  }
  function rateCard(id) {
    var card = h('div', 'card'), stars = h('div', 'stars'), score = 0;
    card.appendChild(h('div', null, T.rate));
    var buttons = [1, 2, 3, 4, 5].map(function (n) {
      var b = h('button', null, '★');
      b.type = 'button';
      b.setAttribute('aria-label', String(n));
      b.onclick = function () {
        score = n;
        buttons.forEach(function (x, i) { x.className = i < n ? 'on' : ''; });
        send.disabled = false;
      };
      stars.appendChild(b);
      return b;
    });
    var text = h('textarea');
    text.rows = 2;
    text.maxLength = 1000;
    text.placeholder = T.comment;
    var acts = h('div', 'acts'), send = h('button', 'btn', T.rateSend), skip = h('button', 'btn ghost', T.skip);
    send.type = skip.type = 'button';
    send.disabled = true;
    send.onclick = function () {
      if (!score || !frame({ type: 'rate', conversation_id: id, score: score, comment: text.value.trim() || null })) return;
      rated[id] = true;
      render();
    };
    skip.onclick = function () { skipped[id] = true; render(); };
    acts.appendChild(skip); acts.appendChild(send);
    card.appendChild(stars); card.appendChild(text); card.appendChild(acts);
    return card;
  }

  // ------------------------------------------------------------ socket ---
  function frame(f) {
    if (!ws || !ready) return false;
    try { ws.send(JSON.stringify(f)); return true; } catch (e) { return false; }
  }

  function connect() {
    clearTimeout(retryTimer);
    if (ws || !saved.token) return;
    var sock = ws = new WebSocket(BASE.replace(/^http/, 'ws') + '/ws/widget');
    sock.onopen = function () {
      // What is held resumes after it; the server replays the ten most
      // recent conversations this page holds nothing of (a new device, a
      // cleared store) from the start.
      var resume = {};
      Object.keys(convs).forEach(function (id) { if (convs[id].held) resume[id] = convs[id].held; });
      lastHeard = Date.now();
      sock.send(JSON.stringify({ type: 'hello', token: saved.token, resume: resume, recent: 10 }));
    };
    sock.onmessage = function (e) {
      if (ws !== sock) return;
      lastHeard = Date.now();
      var f;
      try { f = JSON.parse(e.data); } catch (x) { return; }
      onFrame(f);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      var wait = Math.min(30000, 1000 * Math.pow(2, backoff++));
      retryTimer = setTimeout(connect, wait / 2 + Math.random() * wait / 2);
      render();
    };
  }
  function reconnectNow() {
    if (ws) { var s = ws; ws = null; ready = false; s.close(); }
    connect();
  }

  function onFrame(f) {
    var c, p;
    switch (f.type) {
      case 'widget_welcome':
        ready = true;
        backoff = 0;
        cfg.agents_online = f.agents_online;
        (f.conversations || []).forEach(function (info) { conv(info.id).info = info; });
        flush();
        markRead();
        break;
      case 'widget_message':
        var m = f.message;
        c = conv(m.conversation_id);
        c.msgs[m.id] = m;
        c.held = Math.max(c.held, m.seq);
        if (m.direction === 'outgoing') {
          agentTyping = null;
          markRead();
        }
        break;
      case 'ack':
        pending = pending.filter(function (x) { if (x.client_id === f.client_id) p = x; return x !== p; });
        c = conv(f.conversation_id);
        if (p && !c.msgs[f.message_id]) {
          c.msgs[f.message_id] = { id: f.message_id, conversation_id: f.conversation_id, seq: f.seq, direction: 'incoming', text: p.text, attachments: p.attachment ? [p.attachment] : [], created_at: new Date().toISOString() };
        }
        break;
      case 'widget_conversation':
        conv(f.conversation.id).info = f.conversation;
        break;
      case 'typing':
        if (f.from && f.from.kind === 'agent') {
          agentTyping = f.on ? f.from.name || T.agent : null;
          clearTimeout(agentTypingTimer);
          if (f.on) agentTypingTimer = setTimeout(function () { agentTyping = null; render(); }, 8000);
        }
        break;
      case 'read':
        if (f.from && f.from.kind === 'agent') agentRead[f.conversation_id] = Math.max(agentRead[f.conversation_id] || 0, f.seq);
        break;
      case 'error':
        p = pending.filter(function (x) { return x.client_id === f.client_id; })[0];
        if (p && (f.code === 'rate_limited' || f.code === 'internal')) setTimeout(flush, 1500);
        else if (p) p.error = f.message || f.code;
        else if (f.code === 'unauthorized') { var s = saved.identifier; forget(); started = false; if (!s) ensureSession({}).catch(function () {}); }
        break;
      case 'resync':
        reconnectNow();
        return;
    }
    render();
  }

  // Sends every unacknowledged message again: the server acknowledges a
  // repeated client_id without storing it twice.
  function flush() {
    pending.forEach(function (p) {
      if (p.error || p.uploading) return;
      var a = active(), cid = p.conversation_id || (a && a.info.id);
      var f = { type: 'send', client_id: p.client_id, text: p.text };
      if (p.attachment) f.attachment_ids = [p.attachment.id];
      if (cid) f.conversation_id = cid;
      frame(f);
    });
  }

  // Agent messages after the last one seen with the panel open; on a new
  // device, those that arrived after the page loaded.
  function unreadCount() {
    var rd = saved.rd || {}, n = 0;
    Object.keys(convs).forEach(function (id) {
      var c = convs[id];
      Object.keys(c.msgs).forEach(function (k) {
        var m = c.msgs[k];
        if (m.direction === 'outgoing' && (id in rd ? m.seq > rd[id] : Date.parse(m.created_at) > loadedAt - 2000)) n++;
      });
    });
    return n;
  }
  function markRead() {
    if (!isOpen || document.hidden) return;
    var rd = saved.rd || (saved.rd = {}), changed = false;
    Object.keys(convs).forEach(function (id) {
      if (convs[id].held && rd[id] !== convs[id].held) { rd[id] = convs[id].held; changed = true; }
    });
    if (changed) save();
    var a = latest();
    if (!a) return;
    var top = a.held;
    if (top > (readSent[a.info.id] || 0) && frame({ type: 'read', conversation_id: a.info.id, seq: top })) readSent[a.info.id] = top;
  }

  function typing(on) {
    var a = active();
    if (!a || on === myTyping) return;
    if (frame({ type: 'typing', conversation_id: a.info.id, on: on })) myTyping = on;
  }

  // ----------------------------------------------------------- session ---
  // The visitor's session starts on first use (opening the panel) or at once
  // when this browser has one already, so page views alone create no contacts.
  function forget() { saved = { cfg: saved.cfg, cfgAt: saved.cfgAt }; save(); }
  function ensureSession(details) {
    var ks = window.kefuSettings || {};
    var id = ks.identifier ? String(ks.identifier) : null;
    // The site's user signed in, out, or is someone else now: the stored
    // visitor is not theirs (an anonymous token never becomes a verified one).
    if ((saved.identifier || null) !== id) forget();
    var extra = {};
    ['name', 'email', 'phone'].forEach(function (k) { if (details[k] || ks[k]) extra[k] = String(details[k] || ks[k]); });
    var now = Date.now() / 1000, more = Object.keys(details).length > 0;
    var fresh = saved.token && saved.exp > now + (saved.verified ? 600 : 30 * 86400);
    var req;
    if (LINK && saved.link !== LINK) {
      // A continuity link names its customer: it replaces whoever this
      // browser was, once; reloads then carry on with the token it earned.
      forget();
      req = session(Object.assign({ link: LINK }, extra)).then(function () { saved.link = LINK; save(); });
    } else if (fresh && !more) req = Promise.resolve();
    else if (id && ks.identifier_hash && !(fresh && saved.identifier === id)) {
      // A hash is single-use: it is spent only when no live token of the
      // same user is at hand.
      req = session(Object.assign({ identifier: id, timestamp: Number(ks.timestamp), identifier_hash: String(ks.identifier_hash) }, extra))
        .then(function () { saved.identifier = id; save(); }, function (e) {
          if (!(saved.token && saved.identifier === id && saved.exp > now)) throw e;
        });
    } else if (saved.token) {
      req = session(Object.assign({ token: saved.token }, extra)).catch(function (e) {
        if (e.status !== 401 || id) throw e;
        forget();
        return session(extra);
      });
    } else req = session(extra);
    return req.then(function () { started = true; failedStart = false; connect(); });
  }
  function session(req) {
    req.inbox = INBOX;
    return api('/api/widget/v1/session', req).then(function (s) {
      saved.token = s.token; saved.exp = s.expires_at; saved.verified = s.verified; save();
    });
  }
  function start() {
    if (started || starting) return;
    starting = true;
    ensureSession({}).catch(function () { failedStart = true; render(); }).then(function () { starting = false; });
  }

  // -------------------------------------------------------------- wiring ---
  function open() {
    isOpen = true;
    panel.hidden = false;
    wrap.classList.add('open');
    launch.setAttribute('aria-expanded', 'true');
    drawScroll = true;
    if (needPrechat()) render();
    else start();
    markRead();
    render();
    if (Date.now() - (saved.cfgAt || 0) > 60000) fetchConfig().then(function () { applyConfig(); render(); }, function () {});
    if (window.innerWidth > 480) setTimeout(function () { input.focus(); }, 50);
  }
  function close() {
    isOpen = false;
    panel.hidden = true;
    wrap.classList.remove('open');
    launch.setAttribute('aria-expanded', 'false');
    typing(false);
    render();
  }
  launch.onclick = function () { if (isOpen) close(); else open(); };
  closeBtn.onclick = close;

  function submit() {
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    grow();
    clearTimeout(myTypingTimer);
    typing(false);
    var a = active();
    pending.push({ client_id: uuid(), text: text, conversation_id: a ? a.info.id : null, error: null });
    drawScroll = true;
    if (!started) start();
    flush();
    render();
  }
  comp.onsubmit = function (e) { e.preventDefault(); submit(); };
  clip.onclick = function () { picker.click(); };
  picker.onchange = function () {
    var file = picker.files && picker.files[0];
    picker.value = '';
    if (!file) return;
    if (!TYPES.test(file.type) || file.size > MAX_FILE) {
      flash(file.size > MAX_FILE ? T.tooLarge : T.badType);
      return;
    }
    var a = active();
    var p = { client_id: uuid(), text: '', conversation_id: a ? a.info.id : null, error: null, uploading: true, blob: file, file: { name: file.name } };
    pending.push(p);
    drawScroll = true;
    render();
    (saved.token && started ? Promise.resolve() : ensureSession({})).then(function () { upload(p); }, function () { p.uploading = false; p.error = T.error; render(); });
  };
  function upload(p) {
    p.uploading = true;
    var form = new FormData();
    form.append('file', p.blob, p.blob.name);
    fetch(BASE + '/api/widget/v1/attachments', { method: 'POST', headers: { 'X-Visitor-Token': saved.token }, body: form }).then(function (res) {
      if (!res.ok) return res.json().catch(function () { return {}; }).then(function (b) { throw new Error((b.error && b.error.message) || res.status); });
      return res.json();
    }).then(function (att) {
      p.attachment = att;
      p.uploading = false;
      flush();
      render();
    }, function (e) {
      p.uploading = false;
      p.error = String(e.message || e);
      render();
    });
  }
  var flashTimer = 0, flashText = '';
  function flash(text) {
    flashText = text;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { flashText = ''; render(); }, 4000);
    render();
  }
  input.onkeydown = function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); submit(); }
  };
  function grow() { input.style.height = 'auto'; input.style.height = Math.min(input.scrollHeight, 120) + 'px'; }
  input.oninput = function () {
    grow();
    sendBtn.disabled = !input.value.trim();
    if (!input.value.trim()) { clearTimeout(myTypingTimer); typing(false); return; }
    typing(true);
    clearTimeout(myTypingTimer);
    myTypingTimer = setTimeout(function () { typing(false); }, 3000);
  };
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) return;
    if (started && !ws) connect();
    markRead();
    render();
  });
  window.addEventListener('online', function () { if (started && !ws) connect(); });
  // A socket that hears nothing (a phone that switched networks) is replaced.
  setInterval(function () {
    if (!ws || !ready) return;
    if (Date.now() - lastHeard > 70000) reconnectNow();
    else frame({ type: 'ping' });
  }, 30000);

  window.kefu = {
    open: open,
    close: close,
    toggle: function () { if (isOpen) close(); else open(); },
    /** Forget this browser's visitor (e.g. when the site's user logs out). */
    reset: function () {
      forget(); convs = {}; pending = []; started = false;
      if (ws) { var s = ws; ws = null; s.close(); }
      render();
    }
  };

  function mount() {
    applyConfig();
    if (!document.body) { document.addEventListener('DOMContentLoaded', mount); return; }
    if (!host.parentNode) document.body.appendChild(host);
    render();
    if (script.getAttribute('data-open') === '1') open();
    else if (saved.token) start();
  }
  // The look comes from the inbox's settings, cached for ten minutes so that
  // page views cost no request; opening the panel refreshes who is online.
  function fetchConfig() {
    return api('/api/widget/v1/config?inbox=' + encodeURIComponent(INBOX)).then(function (c) {
      cfg = { inbox_name: c.inbox_name, settings: c.settings || {}, agents_online: c.agents_online, email_follow_up: c.email_follow_up === true };
      saved.cfg = cfg; saved.cfgAt = Date.now(); save();
    });
  }
  var cfgFresh = saved.cfg && Date.now() - (saved.cfgAt || 0) < 600000;
  if (cfgFresh) mount();
  fetchConfig().then(function () {
    if (cfgFresh) { applyConfig(); render(); } else mount();
  }, function (e) {
    // An unknown inbox token shows nothing; a network failure shows the
    // widget from the last good configuration, if any.
    if (!cfgFresh && e.status !== 404 && saved.cfg) mount();
  });
})();

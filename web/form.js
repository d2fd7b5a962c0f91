// Progressive enhancement of the H5 form; everything works without it.
// 1. Solves the challenge's proof of work, so people with JavaScript need not
//    answer the sum: finds NONCE with SHA-256(token ":" NONCE) starting with
//    `pow_bits` zero bits and puts `pow:NONCE` in the answer field. Without
//    WebCrypto (plain http in some in-app browsers) the question stays.
// 2. Disables the submit button while sending, so a double tap sends once.
// 3. Shows the status page's times (<time class="local" datetime=UTC>) in the
//    reader's own time zone; the server's text (Beijing time with its offset,
//    or UTC) stays as the tooltip and is what a page without JavaScript shows.
(function () {
  'use strict';
  var box = document.querySelector('.challenge[data-pow-bits]');
  var form = box && box.closest('form');
  var subtle = window.crypto && window.crypto.subtle;

  function zeroBits(bytes) {
    var n = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) { n += 8; continue; }
      return n + Math.clz32(bytes[i]) - 24;
    }
    return n;
  }

  async function solve(token, bits) {
    var enc = new TextEncoder();
    for (var nonce = 0; nonce < 50000000; nonce++) {
      var digest = new Uint8Array(await subtle.digest('SHA-256', enc.encode(token + ':' + nonce)));
      if (zeroBits(digest) >= bits) return String(nonce);
    }
    return null;
  }

  if (box && subtle && window.TextEncoder) {
    var answer = box.querySelector('input[name=challenge_answer]');
    var token = box.querySelector('input[name=challenge_token]').value;
    if (answer.value.indexOf('pow:') === 0) {
      // Shown again after a field error, with the work already done.
      box.classList.add('solved');
      box.dataset.solved = 'true';
    } else if (!answer.value) {
      solve(token, Number(box.dataset.powBits)).then(function (nonce) {
        if (nonce === null || answer.value) return;
        answer.value = 'pow:' + nonce;
        box.classList.add('solved');
        box.dataset.solved = 'true';
      }, function () { /* the question stays */ });
    }
  }

  function localTime(d) {
    // formatToParts, not format: the same YYYY-MM-DD HH:MM layout as the
    // server's text in every locale, and h23 so midnight is 00, never 24.
    var parts = {};
    new Intl.DateTimeFormat('en-GB', {
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(d).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + '-' + parts.month + '-' + parts.day + ' ' + parts.hour + ':' + parts.minute;
  }

  if (window.Intl && Intl.DateTimeFormat && Intl.DateTimeFormat.prototype.formatToParts) {
    document.querySelectorAll('time.local[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) return;
      t.title = t.textContent;
      t.textContent = localTime(d);
    });
  }

  document.querySelectorAll('form').forEach(function (f) {
    f.addEventListener('submit', function () {
      var b = f.querySelector('button[type=submit]');
      if (b) setTimeout(function () { b.disabled = true; }, 0);
    });
  });
})();

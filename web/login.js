// The sign-in page. A refusal is shown in Chinese and English (the page's
// labels are both); the API's error code stays on the message
// (data-code) for support and tests, since the API's own message is English.
const form = document.getElementById('login');
const error = document.getElementById('error');

const MESSAGES = {
  unauthorized: '邮箱或密码不正确 · Wrong email or password',
  bad_request: '请填写邮箱和密码 · Enter your email and password',
  validation_failed: '请填写邮箱和密码 · Enter your email and password',
  unavailable: '服务暂时不可用，请稍后再试 · Service unavailable, try again later',
};

function refusal(status, code, retryAfter) {
  if (code === 'rate_limited') {
    const s = Number(retryAfter) || 60;
    return `尝试次数过多，请 ${s} 秒后再试 · Too many attempts, try again in ${s} s`;
  }
  return MESSAGES[code] || `登录失败（${code || status}）· Sign-in failed`;
}

/** Where to go after signing in: a path of this site (`?next=`), else the console. */
function next() {
  const n = new URLSearchParams(location.search).get('next');
  if (!n) return '/';
  const url = new URL(n, location.origin);
  return url.origin === location.origin ? url.pathname + url.hash : '/';
}

function show(text, code) {
  error.textContent = text;
  error.dataset.code = code || '';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  show('', '');
  let res;
  try {
    res = await fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(Object.fromEntries(new FormData(form))),
    });
  } catch {
    show('无法连接服务器，请检查网络 · Cannot reach the server', 'network');
    return;
  }
  if (res.ok) {
    location.href = next();
    return;
  }
  const data = await res.json().catch(() => ({}));
  const code = data.error?.code;
  show(refusal(res.status, code, res.headers.get('retry-after')), code);
});

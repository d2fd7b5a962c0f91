// Sends the one-time token from the link with the new admin's details, then
// opens the console. Errors are shown as text, never as HTML.
const form = document.getElementById('setup');
const error = document.getElementById('error');
const token = new URLSearchParams(location.search).get('token') || '';
if (!token) error.textContent = '链接缺少令牌 · The link has no token: use the one kefu printed at start.';

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.textContent = '';
  const body = Object.fromEntries(new FormData(form));
  body.token = token;
  const res = await fetch('/api/v1/setup', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.ok) {
    history.replaceState(null, '', '/setup');
    location.href = '/';
  } else {
    const data = await res.json().catch(() => ({}));
    error.textContent = data.error?.message || `error ${res.status}`;
  }
});

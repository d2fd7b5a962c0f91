// The REST API: JSON in and out, the CSRF token on every write, and the
// sign-in page when the session is gone.

let csrf = '';
export const setCsrf = (t) => { csrf = t || ''; };

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (res.status === 401) return signIn();
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return res.status === 204 ? null : res.json();
}

/**
 * The session is gone (signed out elsewhere, expired, revoked): off to the
 * sign-in page. The answer never settles, so no caller goes on with an
 * error — an uncaught one in the console, a toast on a page being left.
 */
function signIn() {
  location.replace(`/login?next=${encodeURIComponent(location.pathname + location.hash)}`);
  return new Promise(() => {});
}

export const get = (path) => api(path);

/** Uploads one file (multipart field `file`); returns the attachment. */
export async function upload(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  const res = await fetch('/api/v1/attachments', { method: 'POST', headers: { 'X-CSRF-Token': csrf }, body: form, credentials: 'same-origin' });
  if (res.status === 401) return signIn();
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return res.json();
}
export const post = (path, body = {}) => api(path, { method: 'POST', body });
export const patch = (path, body) => api(path, { method: 'PATCH', body });
export const del = (path) => api(path, { method: 'DELETE' });

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

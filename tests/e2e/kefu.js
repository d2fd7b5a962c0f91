// Helpers for the browser tests: a real kefu server on 127.0.0.1:0 with its
// own SQLite directory, a REST client with the admin's session, a host page
// on another local port that embeds the widget, and Debian's Chromium.
// Everything started here is stopped by `stop()`.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'tests/artifacts');
const CHROMIUM = process.env.KEFU_CHROMIUM || '/usr/bin/chromium';

const cleanups = [];
export async function stop() {
  while (cleanups.length) {
    try { await cleanups.pop()(); } catch (e) { console.error('cleanup:', e.message); }
  }
}

/** Builds the binary unless KEFU_BIN names one (scripts/test builds it first). */
export function kefuBinary() {
  if (process.env.KEFU_BIN) return path.resolve(process.env.KEFU_BIN);
  const built = spawnSync('cargo', ['build', '-p', 'kefu', '--locked'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (built.status !== 0) throw new Error('cargo build -p kefu failed');
  return path.join(ROOT, 'target/debug/kefu');
}

/**
 * Starts `kefu serve` and waits for its announcement. With `dir` and `port`
 * it starts again on an earlier server's data and address (a restart).
 * Returns {base, setupLink, dir, port, stop()}.
 */
export async function startKefu({ dir, port = 0 } = {}) {
  const bin = kefuBinary();
  if (!dir) {
    dir = await mkdtemp(path.join(tmpdir(), 'kefu-e2e-'));
    const made = dir;
    cleanups.push(() => rm(made, { recursive: true, force: true }));
  }
  // Only SQLite in the temporary directory: no KEFU_* settings from outside.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEFU_')));
  env.RUST_LOG = env.RUST_LOG || 'warn';
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', path.join(dir, 'data')], {
    cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20000); });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stopChild = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(kill);
    }
  };
  cleanups.push(stopChild);
  return new Promise((resolve, reject) => {
    let out = '';
    let setupLink = null;
    const timer = setTimeout(() => reject(new Error(`kefu did not start in 60 s\n${out}\n${stderr}`)), 60000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`kefu exited (${code})\n${out}\n${stderr}`)); });
    child.stdout.on('data', (d) => {
      out += d;
      const link = /(http:\/\/\S+\/setup\?token=\S+)/.exec(out);
      if (link) setupLink = link[1];
      const ready = /kefu is listening on (http:\/\/\S+)/.exec(out);
      if (ready) {
        clearTimeout(timer);
        const base = ready[1];
        resolve({ base, setupLink, dir, port: Number(new URL(base).port), stop: stopChild, logs: () => stderr });
      }
    });
  });
}

/** A REST client that keeps the session cookie and sends the CSRF token. */
export class Client {
  constructor(base) { this.base = base; this.cookie = ''; this.csrf = ''; }

  async call(method, p, body) {
    const headers = { cookie: this.cookie };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET') headers['x-csrf-token'] = this.csrf;
    const res = await fetch(this.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const cookie = res.headers.get('set-cookie');
    if (cookie) this.cookie = cookie.split(';')[0];
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(data)}`);
    if (data?.csrf_token) this.csrf = data.csrf_token;
    return data;
  }

  get(p) { return this.call('GET', p); }
  post(p, body = {}) { return this.call('POST', p, body); }
  patch(p, body) { return this.call('PATCH', p, body); }
}

/**
 * Serves a customer's site on another port: a shop page with the widget tag.
 * Under /member the page is for a signed-in user: `member()` returns the
 * window.kefuSettings that the site's server computed for this page view.
 */
export async function startHostSite(kefuBase, inboxToken, { title = '示例商城', member = null } = {}) {
  const page = (settings) => `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
  body { margin: 0; font-family: "WenQuanYi Micro Hei", sans-serif; color: #222; background: #fafafa; }
  header { background: #c7000b; color: #fff; padding: 18px 32px; font-size: 22px; font-weight: bold; }
  main { padding: 24px 32px; display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 20px; }
  .item { background: #fff; border: 1px solid #eee; border-radius: 8px; padding: 16px; height: 180px; }
  .item b { display: block; margin-bottom: 8px; } .price { color: #c7000b; font-size: 20px; }
  /* A host page style that must not leak into the widget. */
  button, div, textarea { font-family: serif !important; }
</style></head>
<body><header>${title} · 售后服务</header>
<main>
  <div class="item"><b>无线降噪耳机</b><span class="price">¥ 899</span><p>七天无理由退货</p></div>
  <div class="item"><b>智能手表 S3</b><span class="price">¥ 1299</span><p>一年质保</p></div>
  <div class="item"><b>便携充电宝</b><span class="price">¥ 159</span><p>顺丰包邮</p></div>
</main>
${settings ? `<script>window.kefuSettings = ${JSON.stringify(settings).replace(/</g, '\\u003c')};</script>` : ''}
<script src="${kefuBase}/widget.js" data-inbox="${inboxToken}" async></script>
</body></html>`;
  const server = createServer((req, res) => {
    if (req.url === '/' || (req.url === '/member' && member)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page(req.url === '/member' ? member() : null));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }));
  return `http://127.0.0.1:${server.address().port}/`;
}

/** Debian's Chromium, headless, with no background traffic off this machine. */
export async function launchBrowser() {
  // Playwright gives the browser a fresh, temporary --user-data-dir itself
  // (it refuses one in args; launchPersistentContext would allow only one
  // context, and the test needs a customer's and an agent's).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  cleanups.push(() => browser.close());
  return browser;
}

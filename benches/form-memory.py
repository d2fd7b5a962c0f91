#!/usr/bin/env python3
# Issue #12 item 5: memory of 12 parallel POSTs of 3 x 10 MB to a form page.
# Usage: benches/form-memory.py PATH/TO/kefu   (prints one JSON line; RSS in MB from /proc)
# Figures: docs/forms.md, "body size".
# The issue #12 item 5 experiment: 12 parallel POSTs of 3 x 10 MB to a form page;
# RSS of the server before, its peak (VmHWM) and after, from /proc.
import json, os, subprocess, sys, tempfile, threading, time, urllib.request, uuid, socket

binary = sys.argv[1]
data = tempfile.mkdtemp(prefix="kefu-mem-")
port = 18000 + os.getpid() % 1000
env = dict(os.environ, KEFU_LOG="warn")
def kefu(*args, stdin=None):
    return subprocess.run([binary, "--data-dir", data, *args], input=stdin, capture_output=True, text=True, env=env, check=True).stdout
srv = subprocess.Popen([binary, "--data-dir", data, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
for _ in range(200):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1); break
    except Exception:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
        except Exception:
            time.sleep(0.1)
kefu("admin", "create", "--email", "a@kefu.test", "--name", "管理员", "--role", "admin", stdin="correct horse 电池 staple\n")
out = kefu("admin", "token", "create", "--email", "a@kefu.test", "--scope", "admin")
token = [w for w in out.split() if w.startswith("kefu_")][0]
def api(method, path, body):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
api("POST", "/api/v1/inboxes", {"kind": "form", "name": "售后表单", "settings": {"form": {"slug": "help",
    "max_files": 3, "max_file_mb": 10, "require_email_or_phone": False,
    "fields": [{"name": "message", "type": "textarea", "required": True},
               {"name": "photos", "label": "照片", "type": "file"}]}}})

def status(key):
    for line in open(f"/proc/{srv.pid}/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
def rss(): return status("VmRSS:")

time.sleep(1)
before = rss()
blob = os.urandom(10_000_000)
boundary = "----kefu" + uuid.uuid4().hex
parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n货物破损，见照片\r\n".encode()]
for i in range(3):
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"{i}.png\"\r\nContent-Type: image/png\r\n\r\n".encode())
    parts.append(b"\x89PNG\r\n\x1a\n" + blob[8:] + b"\r\n")
parts.append(f"--{boundary}--\r\n".encode())
body = b"".join(parts)
codes = []
def post():
    req = urllib.request.Request(base + "/f/help", method="POST", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        codes.append(urllib.request.urlopen(req, timeout=120).status)
    except urllib.error.HTTPError as e:
        codes.append(e.code)
    except Exception as e:
        codes.append(type(e).__name__)
peak_seen = [0]
done = threading.Event()
def watch():
    while not done.is_set():
        peak_seen[0] = max(peak_seen[0], rss()); time.sleep(0.02)
w = threading.Thread(target=watch); w.start()
threads = [threading.Thread(target=post) for _ in range(12)]
t0 = time.time()
for t in threads: t.start()
for t in threads: t.join()
took = time.time() - t0
done.set(); w.join()
time.sleep(2)
after = rss()
time.sleep(13)
after15 = rss()
print(json.dumps({"binary": os.path.basename(binary), "body_bytes": len(body), "codes": sorted(map(str, codes)),
                  "rss_before_mb": before, "rss_peak_mb": max(peak_seen[0], 0), "vm_hwm_mb": status("VmHWM:"),
                  "rss_after_2s_mb": after, "rss_after_15s_mb": after15, "seconds": round(took, 2)}))
srv.terminate(); srv.wait()
subprocess.run(["rm", "-rf", data])

//! The email channel beside the HTTP server: kefu-mail's service on the
//! test server's store and blob directory (its SMTP listener on
//! 127.0.0.1:0), and a real SMTP server on loopback that keeps what kefu
//! sends (refusing recipients whose local part starts with `refuse`, so a
//! test can see a permanent failure).

use super::{Client, TestServer};
use kefu_mail::channel::{MailService, MailServiceConfig};
use kefu_mail::send::{SmtpConfig, SmtpSecurity, SmtpSender};
use kefu_mail::smtp::{DeliveryError, InboundHandler, InboundMessage, SmtpServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

#[derive(Default)]
pub struct Sink {
    pub got: Mutex<Vec<Vec<u8>>>,
}

impl InboundHandler for Sink {
    async fn accepts(&self, rcpt: &str) -> bool {
        !rcpt.starts_with("refuse")
    }
    async fn deliver(&self, m: InboundMessage) -> Result<(), DeliveryError> {
        let raw = m
            .read_all()
            .await
            .map_err(|e| DeliveryError::Temporary(e.to_string()))?;
        self.got.lock().await.push(raw);
        Ok(())
    }
}

impl Sink {
    /// Starts one on 127.0.0.1; returns it and its port.
    pub async fn start() -> (Arc<Sink>, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sink = Arc::new(Sink::default());
        let handler = sink.clone();
        tokio::spawn(async move {
            let _ = kefu_mail::smtp::serve(
                listener,
                SmtpServerConfig::default(),
                handler,
                std::future::pending(),
            )
            .await;
        });
        (sink, port)
    }

    /// Mail number `n` (from 0) that arrived, parsed; waits up to 10 s.
    pub async fn mail(&self, n: usize) -> kefu_mail::ParsedEmail {
        for _ in 0..200 {
            if let Some(raw) = self.got.lock().await.get(n) {
                return kefu_mail::parse(raw);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sink received no mail #{n}");
    }
}

/// An email inbox `support@shop.example` (the admin a member) whose replies
/// go out through the relay on 127.0.0.1:`relay_port`.
pub async fn email_inbox(admin: &Client, relay_port: u16) -> serde_json::Value {
    admin
        .post(
            "/api/v1/inboxes",
            serde_json::json!({ "kind": "email", "name": "邮件客服", "member_ids": [admin.agent_id()],
                "settings": { "email": { "address": "support@shop.example",
                    "smtp": { "host": "127.0.0.1", "port": relay_port, "security": "none" } } } }),
        )
        .await
        .ok(201)
        .clone()
}

/// Opens a ticket from `contact` (its first message `question`) in `inbox`
/// and posts the agent's `answer`: the ticket's messages path and the reply.
pub async fn ticket_with_reply(
    admin: &Client,
    inbox: &serde_json::Value,
    contact: serde_json::Value,
    (subject, question, answer): (&str, &str, &str),
) -> (String, serde_json::Value) {
    let conv = admin
        .post(
            "/api/v1/conversations",
            serde_json::json!({ "inbox_id": super::id(inbox), "subject": subject, "contact": contact,
                "message": { "direction": "incoming", "text": question } }),
        )
        .await
        .ok(201)["conversation"]
        .clone();
    let path = format!("/api/v1/conversations/{}/messages", super::id(&conv));
    let reply = admin
        .post(
            &path,
            serde_json::json!({ "direction": "outgoing", "text": answer }),
        )
        .await
        .ok(201)
        .clone();
    (path, reply)
}

/// The message's `metadata.email` as the messages API shows it, once it is
/// `sent` or `failed` (or after 10 s, whatever it is then).
pub async fn delivery_state(
    c: &Client,
    messages_path: &str,
    message: &serde_json::Value,
) -> serde_json::Value {
    let mut state = serde_json::Value::Null;
    for _ in 0..200 {
        let list = c.get(messages_path).await;
        state = list
            .ok(200)
            .as_array()
            .expect("a list")
            .iter()
            .find(|m| m["id"] == message["id"])
            .expect("the message is listed")["metadata"]["email"]
            .clone();
        if state["status"] == "sent" || state["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state
}

/// kefu's email channel running on the test server's store.
pub struct Mail {
    /// Where kefu's SMTP listener takes mail.
    pub listener: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Mail {
    pub async fn start(s: &TestServer) -> Mail {
        let service = MailService::new(s.store.clone(), s.state.blobs.clone());
        let (stop, stopped) = watch::channel(false);
        let (bound_tx, bound) = tokio::sync::oneshot::channel();
        let config = MailServiceConfig {
            smtp_listen: Some("127.0.0.1:0".parse().expect("addr")),
            outbox_interval: Duration::from_millis(200),
            ..MailServiceConfig::default()
        };
        tokio::spawn(service.run(config, stopped, Some(bound_tx)));
        Mail {
            listener: bound.await.expect("SMTP listener bound"),
            stop,
        }
    }

    /// A plain SMTP client of kefu's listener, as a customer's provider.
    pub fn client(&self) -> SmtpSender {
        SmtpSender::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.listener.port(),
            security: SmtpSecurity::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(10),
            hello_name: Some("customer.example".into()),
        })
        .expect("client")
    }
}

impl Drop for Mail {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn python() -> &'static str {
    // Debian's python sees the apt-installed modules; another one first on
    // PATH (pyenv and the like) may not.
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Whether Debian's python has these modules; when not, the test is skipped
/// unless KEFU_REQUIRE_SMTP_SINK is set (scripts/test installs them).
pub fn python_has(modules: &str) -> bool {
    let found = std::process::Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("KEFU_REQUIRE_SMTP_SINK").is_err(),
            "KEFU_REQUIRE_SMTP_SINK is set but python3 lacks {modules} \
             (apt-get install python3-aiosmtpd python3-dkim python3-nacl)"
        );
        eprintln!("skipping: python3 lacks {modules}");
    }
    found
}

/// aiosmtpd (a third-party SMTP server) on a free loopback port, keeping
/// the bytes of each message as they arrived (kefu-mail's
/// tests/raw_sink.py); stopped when dropped.
pub struct Aiosmtpd {
    child: std::process::Child,
    pub port: u16,
    pub dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Aiosmtpd {
    pub fn start() -> Aiosmtpd {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("received");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../kefu-mail/tests/raw_sink.py"
        );
        let child = std::process::Command::new(python())
            .arg(script)
            .arg(&dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let sink = Aiosmtpd {
            child,
            port,
            dir,
            _dir: tmp,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aiosmtpd did not listen on 127.0.0.1:{port}");
    }

    /// The bytes of the `n`th message (from 0) as they arrived; waits up
    /// to 10 s.
    pub async fn message(&self, n: usize) -> Vec<u8> {
        let path = self.dir.join(format!("{n:06}.eml"));
        for _ in 0..100 {
            if let Ok(bytes) = std::fs::read(&path) {
                return bytes;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail #{n} arrived in {}", self.dir.display());
    }
}

/// Verifies a message's DKIM signature with dkimpy (python3-dkim, not kefu
/// code), answering the key lookup of `selector._domainkey.domain` with
/// `record` instead of DNS. Returns dkimpy's verdict and the tags it read.
pub fn dkim_verify(message: &[u8], record: &str) -> serde_json::Value {
    const VERIFY: &str = r#"
import dkim, json, sys
raw = open(sys.argv[1], 'rb').read()
record = sys.argv[2].encode()
asked = []
def dns(name, timeout=5):
    asked.append(name.decode() if isinstance(name, bytes) else name)
    return record
def text(v):
    return v.decode() if isinstance(v, bytes) else (v or '')
d = dkim.DKIM(raw)
try:
    ok, why = d.verify(dnsfunc=dns), ''
except dkim.ValidationError as e:
    ok, why = False, str(e)
print(json.dumps({'ok': bool(ok), 'why': why, 'asked': asked,
                  'domain': text(d.domain), 'selector': text(d.selector),
                  'signed': [text(h).lower() for h in (d.include_headers or [])]}))
"#;
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), message).expect("write");
    let out = std::process::Command::new(python())
        .args(["-c", VERIFY])
        .arg(file.path())
        .arg(record)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

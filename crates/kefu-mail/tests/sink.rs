//! kefu's outgoing mail as a third party receives it: a reply goes through
//! kefu's SMTP sender to aiosmtpd (Debian's python3-aiosmtpd, which stores
//! what it receives in a Maildir), and Python's own email parser reads it
//! back, so no kefu code is on the receiving side.
//!
//! Skipped when aiosmtpd is missing, unless KEFU_REQUIRE_SMTP_SINK is set
//! (scripts/test installs it and sets it).

use kefu_mail::send::{SmtpConfig, SmtpSecurity, SmtpSender};
use kefu_mail::{Mailbox, OutgoingAttachment, OutgoingEmail, ReplyToken, build};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn python() -> &'static str {
    // Debian's python sees the apt-installed module; another one first on
    // PATH (pyenv and the like) may not.
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A running aiosmtpd on a free loopback port, stopped when dropped.
struct Aiosmtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_aiosmtpd() -> Option<Aiosmtpd> {
    let found = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("KEFU_REQUIRE_SMTP_SINK").is_err(),
            "KEFU_REQUIRE_SMTP_SINK is set but aiosmtpd is missing (apt-get install python3-aiosmtpd)"
        );
        eprintln!("skipping: aiosmtpd is not installed");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("Maildir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let sink = Aiosmtpd {
        child,
        port,
        maildir,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(sink);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("aiosmtpd did not listen on 127.0.0.1:{port}");
}

fn mailbox(address: &str, name: Option<&str>) -> Mailbox {
    Mailbox {
        address: address.into(),
        name: name.map(Into::into),
    }
}

/// An agent's answer in a thread: two earlier messages, a reply token,
/// Chinese everywhere, an attachment with a Chinese name.
fn answer() -> OutgoingEmail {
    OutgoingEmail {
        from: mailbox("support@kefu.example", Some("某某客服")),
        to: vec![mailbox("zhang@example.cn", Some("张三"))],
        cc: vec![mailbox("li@example.cn", None)],
        subject: "Re: [#2048] 发票抬头怎么改？".into(),
        text: "您好，发票抬头已改为“某某科技有限公司”。".into(),
        html: Some("<p>您好，发票抬头已<b>改好</b>。</p>".into()),
        attachments: vec![OutgoingAttachment {
            filename: "电子发票.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: b"%PDF-1.4 kefu sink test".to_vec(),
            content_id: None,
        }],
        in_reply_to: Some("q2@example.cn".into()),
        references: vec!["q1@example.cn".into(), "q2@example.cn".into()],
        reply_token: Some(ReplyToken::parse("sinktoken2048").expect("token")),
        auto_submitted: false,
    }
}

/// What Python's email parser makes of the stored message.
const READ: &str = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
body = m.get_body(preferencelist=('plain',))
html = m.get_body(preferencelist=('html',))
print(json.dumps({
    'message_id': m['Message-ID'],
    'in_reply_to': m['In-Reply-To'],
    'references': ' '.join(str(m['References']).split()),
    'reply_to': [a.addr_spec for a in m['Reply-To'].addresses],
    'from_name': m['From'].addresses[0].display_name,
    'from': m['From'].addresses[0].addr_spec,
    'to': [a.addr_spec for a in m['To'].addresses],
    'subject': str(m['Subject']),
    'text': body.get_content().strip() if body else None,
    'html': html.get_content() if html else None,
    'attachments': [[p.get_filename(), p.get_content_type(), len(p.get_payload(decode=True))]
                    for p in m.iter_attachments()],
    'rcpt_to': m['X-RcptTo'],
    'mail_from': m['X-MailFrom'],
}, ensure_ascii=False))
"#;

fn read_with_python(file: &Path) -> Value {
    let out = Command::new(python())
        .args(["-c", READ])
        .arg(file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

async fn delivered(maildir: &Path) -> PathBuf {
    let new = maildir.join("new");
    for _ in 0..100 {
        if let Some(entry) = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
        {
            return entry.path();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing arrived in {}", new.display());
}

#[tokio::test]
async fn a_reply_arrives_threaded_at_a_third_party_server() {
    let Some(sink) = start_aiosmtpd() else {
        return;
    };
    let built = build(&answer(), None).expect("build");
    let sender = SmtpSender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(10),
        hello_name: Some("kefu.test".into()),
    })
    .expect("sender");
    sender
        .send(&built)
        .await
        .expect("aiosmtpd accepts the reply");

    let got = read_with_python(&delivered(&sink.maildir).await);
    assert_eq!(got["message_id"], format!("<{}>", built.message_id));
    assert_eq!(got["in_reply_to"], "<q2@example.cn>");
    assert_eq!(got["references"], "<q1@example.cn> <q2@example.cn>");
    assert_eq!(
        got["reply_to"],
        serde_json::json!(["support+sinktoken2048@kefu.example"])
    );
    assert_eq!(got["from"], "support@kefu.example");
    assert_eq!(got["from_name"], "某某客服");
    assert_eq!(got["to"], serde_json::json!(["zhang@example.cn"]));
    assert_eq!(got["subject"], "Re: [#2048] 发票抬头怎么改？");
    assert_eq!(got["text"], "您好，发票抬头已改为“某某科技有限公司”。");
    assert!(
        got["html"].as_str().unwrap_or("").contains("<b>改好</b>"),
        "{got}"
    );
    assert_eq!(
        got["attachments"],
        serde_json::json!([["电子发票.pdf", "application/pdf", 23]])
    );
    assert_eq!(got["mail_from"], "support@kefu.example");
    let rcpt = got["rcpt_to"].as_str().unwrap_or("");
    assert!(
        rcpt.contains("zhang@example.cn") && rcpt.contains("li@example.cn"),
        "{got}"
    );
}

/// An Ed25519 key as `openssl genpkey` writes it (PKCS#8 PEM) signs the
/// reply; aiosmtpd stores it and dkimpy (python3-dkim, with python3-nacl
/// for Ed25519) verifies it against the public key, given as the DNS record
/// of RFC 8463 instead of a DNS lookup.
#[tokio::test]
async fn an_ed25519_signed_reply_verifies_at_a_third_party() {
    let dkim_found = Command::new(python())
        .args(["-c", "import dkim, nacl"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !dkim_found {
        assert!(
            std::env::var("KEFU_REQUIRE_SMTP_SINK").is_err(),
            "KEFU_REQUIRE_SMTP_SINK is set but python3-dkim / python3-nacl are missing"
        );
        return;
    }
    if start_aiosmtpd().is_none() {
        return;
    }
    // aiosmtpd again, keeping the received bytes as they are (the Maildir
    // handler re-serialises bodies, which breaks any body hash).
    let dir = tempfile::tempdir().expect("tempdir");
    let received = dir.path().join("received");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/raw_sink.py"))
        .arg(&received)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let _sink = Aiosmtpd {
        child,
        port,
        maildir: received.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let key = dir.path().join("ed.pem");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let key_path = key.to_str().expect("utf-8");
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", key_path]);
    let spki = openssl(&["pkey", "-in", key_path, "-pubout", "-outform", "DER"]);
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD.encode(&spki[spki.len() - 32..]);
    let pem = std::fs::read_to_string(&key).expect("read key");
    let signer = kefu_mail::compose::DkimSigner::new(
        "ed2026",
        "kefu.example",
        &pem,
        kefu_mail::compose::DkimAlgorithm::Ed25519,
    )
    .expect("signer");
    let built = build(&answer(), Some(&signer)).expect("build");
    let sender = SmtpSender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(10),
        hello_name: Some("kefu.test".into()),
    })
    .expect("sender");
    let mut sent = Err(None);
    for _ in 0..100 {
        match sender.send(&built).await {
            Ok(()) => {
                sent = Ok(());
                break;
            }
            // Until the controller listens.
            Err(e) => sent = Err(Some(e)),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent.expect("aiosmtpd accepts");
    let file = received.join("000000.eml");
    const VERIFY: &str = r#"
import dkim, sys
raw = open(sys.argv[1], 'rb').read()
rec = ('v=DKIM1; k=ed25519; p=' + sys.argv[2]).encode()
asked = []
def dns(name, timeout=5):
    asked.append(name)
    return rec
ok = dkim.DKIM(raw).verify(dnsfunc=dns)
print('ok' if ok else 'bad', asked[0].decode() if asked else '')
"#;
    let out = Command::new(python())
        .args(["-c", VERIFY])
        .arg(&file)
        .arg(&public)
        .output()
        .expect("python");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        "ok ed2026._domainkey.kefu.example.",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

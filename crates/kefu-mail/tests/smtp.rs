//! The SMTP listener on 127.0.0.1:0, with lettre (through our `SmtpSender`) as the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kefu_mail::send::{SendErrorKind, SmtpConfig, SmtpSecurity, SmtpSender};
use kefu_mail::smtp::{
    DeliveryError, InboundBody, InboundHandler, InboundMessage, SmtpServerConfig, SmtpTls, serve,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// Stores what it receives; fails on demand.
#[derive(Default)]
struct Recorder {
    received: Mutex<Vec<(InboundMessage, Vec<u8>)>>,
    fail: AtomicBool,
}

impl InboundHandler for Recorder {
    async fn accepts(&self, recipient: &str) -> bool {
        recipient.ends_with("@kefu.example")
    }

    async fn deliver(&self, message: InboundMessage) -> Result<(), DeliveryError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(DeliveryError::Temporary("store down".into()));
        }
        let bytes = message
            .read_all()
            .await
            .map_err(|e| DeliveryError::Temporary(e.to_string()))?;
        self.received.lock().await.push((message, bytes));
        Ok(())
    }
}

struct Server {
    port: u16,
    handler: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(config: SmtpServerConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handler = Arc::new(Recorder::default());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, config, handler.clone(), async {
            let _ = rx.await;
        }));
        Server {
            port,
            handler,
            stop: Some(tx),
            task,
        }
    }

    fn sender(&self) -> SmtpSender {
        SmtpSender::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(10),
            hello_name: Some("client.test".into()),
        })
        .expect("sender")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("join").expect("serve");
    }
}

fn small_config() -> SmtpServerConfig {
    SmtpServerConfig {
        hostname: "mx.kefu.test".into(),
        max_message_bytes: 40 * 1024 * 1024,
        memory_threshold: 64 * 1024,
        ..SmtpServerConfig::default()
    }
}

/// lettre ends DATA with CRLF.CRLF even when the message already ends in CRLF, so the
/// server (correctly) receives one extra line break.
fn same(received: &[u8], sent: &[u8]) -> bool {
    received == sent || received.strip_suffix(b"\r\n") == Some(sent)
}

#[tokio::test]
async fn receives_with_dot_stuffing_and_spools_big_mail() {
    let server = Server::start(small_config()).await;
    let sender = server.sender();
    let small = b"From: a@b.cn\r\nSubject: hi\r\n\r\n.leading dot\r\n..two\r\nend\r\n".to_vec();
    sender
        .send_raw("a@b.cn", &["Support+abcdefgh@kefu.example".into()], &small)
        .await
        .expect("send small");

    // 30 MB: goes to a temp file, arrives byte for byte.
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    let mut big = b"From: a@b.cn\r\nSubject: big\r\n\r\n".to_vec();
    while big.len() < 30 * 1024 * 1024 {
        big.extend_from_slice(line);
        big.extend_from_slice(b".dot line\r\n");
    }
    sender
        .send_raw("", &["support@kefu.example".into()], &big)
        .await
        .expect("send big");

    let received = server.handler.received.lock().await;
    assert_eq!(received.len(), 2);
    let (first, bytes) = &received[0];
    assert!(same(bytes, &small), "{:?}", String::from_utf8_lossy(bytes));
    assert_eq!(first.envelope.mail_from, "a@b.cn");
    assert_eq!(first.envelope.rcpt_to, ["support+abcdefgh@kefu.example"]);
    assert_eq!(first.envelope.helo, "client.test");
    assert!(matches!(first.body, InboundBody::Memory(_)));
    let (second, bytes) = &received[1];
    assert_eq!(second.envelope.mail_from, "");
    assert!(
        matches!(second.body, InboundBody::File(_)),
        "30 MB must not stay in memory"
    );
    assert_eq!(second.size, bytes.len() as u64);
    assert!(same(bytes, &big), "30 MB body differs");
    drop(received);
    server.stop().await;
}

#[tokio::test]
async fn refusals_are_classified() {
    let server = Server::start(SmtpServerConfig {
        max_message_bytes: 1000,
        ..small_config()
    })
    .await;
    let sender = server.sender();
    let msg = b"Subject: x\r\n\r\nbody\r\n".to_vec();

    // Unknown recipient: 550 → permanent.
    let e = sender
        .send_raw("a@b.cn", &["someone@elsewhere.example".into()], &msg)
        .await
        .expect_err("refused rcpt");
    assert_eq!(
        (e.kind, e.code),
        (SendErrorKind::Permanent, Some(550)),
        "{e}"
    );

    // Handler fails: 451 → transient, and nothing stored.
    server.handler.fail.store(true, Ordering::SeqCst);
    let e = sender
        .send_raw("a@b.cn", &["support@kefu.example".into()], &msg)
        .await
        .expect_err("451");
    assert_eq!(
        (e.kind, e.code),
        (SendErrorKind::Transient, Some(451)),
        "{e}"
    );
    server.handler.fail.store(false, Ordering::SeqCst);

    // Over SIZE, enforced while streaming: 552 → permanent.
    let big = vec![b'x'; 5000];
    let e = sender
        .send_raw("a@b.cn", &["support@kefu.example".into()], &big)
        .await
        .expect_err("552");
    assert_eq!(
        (e.kind, e.code),
        (SendErrorKind::Permanent, Some(552)),
        "{e}"
    );
    assert!(server.handler.received.lock().await.is_empty());

    // Nobody listening: transient.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nowhere = SmtpSender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
        hello_name: None,
    })
    .expect("sender");
    let e = nowhere
        .send_raw("a@b.cn", &["support@kefu.example".into()], &msg)
        .await
        .expect_err("connect");
    assert_eq!(e.kind, SendErrorKind::Transient, "{e}");
    server.stop().await;
}

/// A raw session: command sequence errors, RSET, NOOP, pipelined input, QUIT.
#[tokio::test]
async fn raw_protocol() {
    let server = Server::start(small_config()).await;
    let stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut expect = async |code: &str| {
        loop {
            line.clear();
            r.read_line(&mut line).await.expect("read");
            assert!(line.starts_with(code), "want {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    };
    expect("220").await;
    let steps: [(&str, &str); 11] = [
        ("MAIL FROM:<a@b.cn>\r\n", "503"),
        ("EHLO x\r\n", "250"),
        ("DATA\r\n", "503"),
        ("RCPT TO:<support@kefu.example>\r\n", "503"),
        ("MAIL FROM:<a@b.cn> SIZE=999999999999\r\n", "552"),
        ("MAIL FROM:<a@b.cn>\r\n", "250"),
        ("RCPT TO:<support@kefu.example>\r\n", "250"),
        ("RSET\r\n", "250"),
        ("DATA\r\n", "503"),
        ("NOOP\r\n", "250"),
        ("BOGUS\r\n", "500"),
    ];
    for (cmd, code) in steps {
        w.write_all(cmd.as_bytes()).await.expect("write");
        expect(code).await;
    }
    // Pipelined transaction in one write.
    w.write_all(b"MAIL FROM:<a@b.cn>\r\nRCPT TO:<support@kefu.example>\r\nDATA\r\n")
        .await
        .expect("write");
    expect("250").await;
    expect("250").await;
    expect("354").await;
    w.write_all(b"Subject: p\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        .await
        .expect("write");
    expect("250").await;
    expect("221").await;
    assert_eq!(
        server.handler.received.lock().await[0].1,
        b"Subject: p\r\n\r\nhello\r\n"
    );
    server.stop().await;
}

/// Connections above the limit are told 421 at once instead of waiting.
#[tokio::test]
async fn connection_limit() {
    let server = Server::start(SmtpServerConfig {
        max_connections: 1,
        ..small_config()
    })
    .await;
    let first = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let mut first = BufReader::new(first);
    let mut line = String::new();
    first.read_line(&mut line).await.expect("greeting");
    assert!(line.starts_with("220"));
    let second = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let mut second = BufReader::new(second);
    line.clear();
    second.read_line(&mut line).await.expect("busy");
    assert!(line.starts_with("421"), "{line}");
    // Shutdown tells the idle first session 421 too.
    let stop = server.stop();
    line.clear();
    let (_, read) = tokio::join!(stop, first.read_line(&mut line));
    read.expect("read");
    assert!(line.starts_with("421"), "{line}");
}

/// Every kind of refusal counts towards `max_errors`, not only those of parsed commands:
/// each input below, repeated, gets its refusal `max_errors` times, then `421` and the
/// connection closes. (It used to be counted only for parsed commands, so unknown
/// commands and over-long lines could go on for ever.)
#[tokio::test]
async fn error_limit_counts_every_kind_of_error() {
    let server = Server::start(SmtpServerConfig {
        max_errors: 3,
        ..small_config()
    })
    .await;
    let too_long = format!("NOOP {}", "x".repeat(5000));
    let cases: [(&str, &[u8], &str); 7] = [
        ("unknown command", b"BOGUS", "500"),
        ("empty line", b"", "500"),
        ("not UTF-8", b"\xff\xfe\xfd", "500"),
        ("over-long line", too_long.as_bytes(), "500"),
        ("syntax error", b"MAIL FROM:<a@b", "501"),
        ("bad sequence", b"DATA", "503"),
        ("refused recipient", b"RCPT TO:<x@elsewhere.example>", "550"),
    ];
    for (what, line, code) in cases {
        let stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("connect");
        let mut s = BufReader::new(stream);
        reply(&mut s).await;
        if code == "550" {
            say(&mut s, "EHLO x", "250").await;
            say(&mut s, "MAIL FROM:<a@b.cn>", "250").await;
        }
        for _ in 0..3 {
            s.get_mut().write_all(line).await.expect("write");
            s.get_mut().write_all(b"\r\n").await.expect("write");
            let got = reply(&mut s).await;
            assert!(got[0].starts_with(code), "{what}: want {code}, got {got:?}");
        }
        // The third refusal ends the session: 421 behind it, then end of stream. Bounded,
        // so a server that forgets to count fails here instead of hanging.
        let end = async {
            let got = reply(&mut s).await;
            let mut rest = String::new();
            let n = s.read_line(&mut rest).await.unwrap_or(0);
            (got, n, rest)
        };
        let (got, n, rest) = tokio::time::timeout(Duration::from_secs(10), end)
            .await
            .unwrap_or_else(|_| panic!("{what}: no 421 after 3 refusals"));
        assert!(got[0].starts_with("421"), "{what}: want 421, got {got:?}");
        assert_eq!(n, 0, "{what}: connection still open, got {rest:?}");
    }
    server.stop().await;
}

/// 5,000 `BOGUS` lines pipelined in one go, then 5,000 over-long lines, get exactly
/// `max_errors` refusals and a `421` each, not 5,000 replies.
#[tokio::test]
async fn error_limit_stops_a_flood() {
    let server = Server::start(small_config()).await;
    let long_line = format!("{}\r\n", "A".repeat(5000));
    for flood in ["BOGUS\r\n".repeat(5000), long_line.repeat(5000)] {
        let stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .expect("connect");
        let (r, mut w) = stream.into_split();
        // Written from another task: the server stops reading, so this write may block
        // or fail (reset) once the session is over, and that is expected.
        let writer = tokio::spawn(async move {
            let _ = w.write_all(flood.as_bytes()).await;
            w
        });
        let mut r = BufReader::new(r);
        let mut codes = Vec::new();
        let read_all = async {
            loop {
                let mut line = String::new();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => codes.push(line.get(..3).unwrap_or("").to_string()),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read_all)
            .await
            .expect("the server closes the connection");
        let mut want = vec!["220".to_string()];
        want.extend(std::iter::repeat_n("500".to_string(), 10));
        want.push("421".into());
        assert_eq!(codes, want);
        writer.abort();
    }
    server.stop().await;
}

#[path = "support/tls.rs"]
mod tls;

/// Reads one reply (all its lines) and returns them.
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.expect("read reply");
        assert!(line.len() >= 4, "short reply {line:?}");
        let more = line.as_bytes()[3] == b'-';
        lines.push(line.trim_end().to_string());
        if !more {
            return lines;
        }
    }
}

async fn say<S>(s: &mut BufReader<S>, cmd: &str, code: &str) -> Vec<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.get_mut()
        .write_all(format!("{cmd}\r\n").as_bytes())
        .await
        .expect("write");
    let lines = reply(s).await;
    assert!(
        lines[0].starts_with(code),
        "{cmd}: want {code}, got {lines:?}"
    );
    lines
}

fn offers_starttls(ehlo: &[String]) -> bool {
    ehlo.iter().any(|l| l[4..].eq_ignore_ascii_case("STARTTLS"))
}

/// Without a certificate STARTTLS is neither offered nor accepted; with one it is
/// offered before the handshake only, refused inside a transaction, and the session
/// after the handshake starts afresh (RFC 3207 §4.2): no EHLO name, and a command
/// pipelined behind STARTTLS in clear text is dropped rather than run.
#[tokio::test]
async fn starttls_upgrade_resets_the_session() {
    let plain = Server::start(small_config()).await;
    let stream = TcpStream::connect(("127.0.0.1", plain.port))
        .await
        .expect("connect");
    let mut s = BufReader::new(stream);
    reply(&mut s).await;
    assert!(!offers_starttls(&say(&mut s, "EHLO x", "250").await));
    say(&mut s, "STARTTLS", "502").await;
    plain.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = tls::make_cert(dir.path());
    let server = Server::start(SmtpServerConfig {
        tls: Some(SmtpTls::from_pem_files(&cert, &key).expect("load cert")),
        ..small_config()
    })
    .await;
    let stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let mut s = BufReader::new(stream);
    reply(&mut s).await;
    assert!(offers_starttls(&say(&mut s, "EHLO x", "250").await));
    say(&mut s, "MAIL FROM:<a@b.cn>", "250").await;
    say(&mut s, "STARTTLS", "503").await;
    say(&mut s, "RSET", "250").await;
    // An injection attempt: a command behind STARTTLS in the same clear-text write.
    say(
        &mut s,
        "STARTTLS\r\nMAIL FROM:<injected@evil.example>",
        "220",
    )
    .await;
    assert!(s.buffer().is_empty());

    let pem = std::fs::read(&cert).expect("read cert");
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("pem")).expect("root");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, s.into_inner())
        .await
        .expect("handshake");
    let mut s = BufReader::new(tls);
    // Forgotten: the EHLO name; the injected MAIL never ran (this would be 503 Nested).
    say(&mut s, "MAIL FROM:<a@b.cn>", "503").await;
    let ehlo = say(&mut s, "EHLO x", "250").await;
    assert!(!offers_starttls(&ehlo), "{ehlo:?}");
    say(&mut s, "STARTTLS", "503").await;
    say(&mut s, "MAIL FROM:<a@b.cn>", "250").await;
    say(&mut s, "RCPT TO:<support@kefu.example>", "250").await;
    say(&mut s, "DATA", "354").await;
    say(&mut s, "Subject: tls\r\n\r\n加密\r\n.", "250").await;
    say(&mut s, "QUIT", "221").await;
    let got = server.handler.received.lock().await;
    assert_eq!(got.len(), 1);
    assert!(got[0].0.envelope.tls);
    assert_eq!(got[0].0.envelope.mail_from, "a@b.cn");
    assert_eq!(got[0].1, "Subject: tls\r\n\r\n加密\r\n".as_bytes());
    drop(got);
    server.stop().await;
}

/// Certificate problems are reported with the file they concern.
#[test]
fn bad_certificate_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = tls::make_cert(dir.path());
    let missing = dir.path().join("missing.pem");
    let e = SmtpTls::from_pem_files(&missing, &key).expect_err("missing");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a pem").expect("write");
    let e = SmtpTls::from_pem_files(&junk, &key).expect_err("junk cert");
    assert!(
        e.to_string().contains("junk.pem holds no PEM certificate"),
        "{e}"
    );
    let e = SmtpTls::from_pem_files(&cert, &junk).expect_err("junk key");
    assert!(
        e.to_string()
            .contains("junk.pem holds no usable PEM private key"),
        "{e}"
    );
    let other = tempfile::tempdir().expect("tempdir");
    let (_, other_key) = tls::make_cert(other.path());
    let e = SmtpTls::from_pem_files(&cert, &other_key).expect_err("mismatch");
    assert!(e.to_string().contains("does not go with the key"), "{e}");
}

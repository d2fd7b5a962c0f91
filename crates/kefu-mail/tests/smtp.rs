//! The SMTP listener on 127.0.0.1:0, with lettre (through our `SmtpSender`) as the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kefu_mail::send::{SendErrorKind, SmtpConfig, SmtpSecurity, SmtpSender};
use kefu_mail::smtp::{
    DeliveryError, InboundBody, InboundHandler, InboundMessage, SmtpServerConfig, serve,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};

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

//! The email channel end to end on a real store (SQLite file and, with
//! `KEFU_TEST_POSTGRES_URL`, PostgreSQL): mail arrives over SMTP at the
//! channel's listener (lettre as the client), is filed and threaded; agents'
//! replies leave through the outbox to a real SMTP sink on loopback, whose
//! received bytes are parsed to check the threading headers.

use kefu_core::{Direction, InboxKind, NewInbox, NewMessage, SenderKind, SlaPolicy};
use kefu_mail::channel::{MailService, MailServiceConfig};
use kefu_mail::send::{SmtpConfig, SmtpSecurity, SmtpSender};
use kefu_mail::smtp::{
    DeliveryError, InboundHandler, InboundMessage, SmtpServerConfig, serve as smtp_serve,
};
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};

struct Env {
    store: Store,
    blobs: Blobs,
    /// The database's URL, to open a second node on it.
    url: String,
    _dir: tempfile::TempDir,
}

async fn open(postgres: bool) -> Option<Env> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = kefu_testdb::url(postgres, dir.path()).await?;
    Some(Env {
        store: Store::open(&url).await.expect("open store"),
        blobs: Blobs::new(dir.path().join("blobs")),
        url,
        _dir: dir,
    })
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(env) = super::open(false).await { super::$name(env).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = super::open(true).await { super::$name(env).await }
            }
        }
    )*};
}

on_both!(
    mail_is_filed_threaded_and_answered,
    mail_over_starttls_is_filed,
    two_nodes_send_each_reply_once,
    odd_charset_labels_reach_the_thread_and_the_acknowledgement
);

#[path = "support/tls.rs"]
mod tls;

/// A real SMTP server that keeps what it receives.
#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Vec<u8>>>,
}

impl InboundHandler for Sink {
    async fn accepts(&self, _: &str) -> bool {
        true
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

async fn start_sink() -> (Arc<Sink>, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sink = Arc::new(Sink::default());
    let handler = sink.clone();
    tokio::spawn(async move {
        let _ = smtp_serve(
            listener,
            SmtpServerConfig::default(),
            handler,
            std::future::pending(),
        )
        .await;
    });
    (sink, port)
}

/// The next mail the sink receives, parsed.
async fn next_mail(sink: &Sink, seen: usize) -> kefu_mail::ParsedEmail {
    for _ in 0..200 {
        if let Some(raw) = sink.got.lock().await.get(seen) {
            return kefu_mail::parse(raw);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink received no mail #{seen}");
}

fn client(port: u16) -> SmtpSender {
    SmtpSender::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(10),
        hello_name: Some("customer.example".into()),
    })
    .expect("client")
}

fn mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: 王先生 <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n{extra}\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn mail_is_filed_threaded_and_answered(env: Env) {
    let (sink, sink_port) = start_sink().await;
    let inbox = env
        .store
        .create_inbox(&NewInbox {
            kind: InboxKind::Email,
            name: "邮件客服".into(),
            sla: SlaPolicy::default(),
            settings: json!({ "email": {
                "address": "support@shop.example", "name": "示例商城客服", "auto_ack": "zh-CN",
                "smtp": { "host": "127.0.0.1", "port": sink_port, "security": "none" }
            }}),
            member_ids: vec![],
        })
        .await
        .expect("inbox");
    let service = MailService::new(env.store.clone(), env.blobs.clone());
    let (stop, stopped) = watch::channel(false);
    let (bound_tx, bound) = tokio::sync::oneshot::channel();
    let config = MailServiceConfig {
        smtp_listen: Some("127.0.0.1:0".parse().expect("addr")),
        outbox_interval: Duration::from_millis(200),
        ..MailServiceConfig::default()
    };
    let running = tokio::spawn(service.clone().run(config, stopped, Some(bound_tx)));
    let port = bound.await.expect("listener bound").port();
    let customer = client(port);

    // A new email: a conversation, the customer as a contact, an acknowledgement.
    let first = mail(
        "wang@customer.example",
        "support@shop.example",
        "订单 1234 还没发货",
        "c1@customer.example",
        "",
        "请问订单什么时候发货？\r\n谢谢",
    );
    customer
        .send_raw(
            "wang@customer.example",
            &["support@shop.example".into()],
            &first,
        )
        .await
        .expect("accepted");
    let ack = next_mail(&sink, 0).await;
    let contact = env
        .store
        .contact_by_identity("email", "wang@customer.example")
        .await
        .expect("contact");
    let filter = kefu_store::ConversationFilter {
        contact_id: Some(contact.id),
        limit: 10,
        ..Default::default()
    };
    let convs = env
        .store
        .list_conversations(kefu_store::Visibility::All, &filter)
        .await
        .expect("list")
        .items;
    assert_eq!(convs.len(), 1);
    let conv = &convs[0];
    assert_eq!(conv.inbox_id, inbox.id);
    assert_eq!(conv.subject.as_deref(), Some("订单 1234 还没发货"));
    assert!(
        ack.subject
            .as_deref()
            .unwrap_or("")
            .contains(&format!("[#{}]", conv.number)),
        "{:?}",
        ack.subject
    );
    assert!(
        ack.header("Auto-Submitted")
            .is_some_and(|v| v.contains("auto-replied"))
    );
    let reply_to = ack.reply_to[0].address.clone();
    assert!(
        reply_to.starts_with("support+") && reply_to.ends_with("@shop.example"),
        "{reply_to}"
    );
    assert_eq!(ack.in_reply_to, vec!["c1@customer.example".to_string()]);

    // The same delivery again is stored once.
    customer
        .send_raw(
            "wang@customer.example",
            &["support@shop.example".into()],
            &first,
        )
        .await
        .expect("accepted again");
    // An address the channel does not serve is refused.
    let refused = customer
        .send_raw(
            "wang@customer.example",
            &["nobody@shop.example".into()],
            &first,
        )
        .await;
    assert!(refused.is_err_and(|e| e.is_permanent()));

    // An agent's reply goes out threaded.
    let agent = env
        .store
        .create_agent(
            &kefu_core::NewAgent {
                email: "li@shop.example".into(),
                name: "李雷".into(),
                role: kefu_core::Role::Agent,
                password: None,
            },
            None,
        )
        .await
        .expect("agent");
    let mut reply = NewMessage::text(Direction::Outgoing, "您好，订单明天发货。");
    reply.sender_kind = Some(SenderKind::Agent);
    reply.sender_id = Some(agent.id);
    let sent = env
        .store
        .append_message(conv.id, &reply, Some(agent.id))
        .await
        .expect("reply");
    let out = next_mail(&sink, 1).await;
    assert_eq!(out.in_reply_to, vec!["c1@customer.example".to_string()]);
    assert!(out.references.contains(&"c1@customer.example".to_string()));
    assert_eq!(out.reply_to[0].address, reply_to);
    assert_eq!(out.to[0].address, "wang@customer.example");
    assert!(out.text.contains("订单明天发货"));
    let our_id = out.message_id.clone().expect("message id");
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = env
            .store
            .message(sent.message.id)
            .await
            .expect("message")
            .metadata["email"]["status"]
            .clone();
        if status == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "sent");

    // The customer answers to the token address: the same conversation.
    let answer = mail(
        "wang@customer.example",
        &reply_to,
        "Re: 订单 1234 还没发货",
        "c2@customer.example",
        &format!("In-Reply-To: <{our_id}>\r\nReferences: <c1@customer.example> <{our_id}>\r\n"),
        "好的，谢谢！\r\n\r\n在 2026年11月27日 李雷 写道：\r\n> 您好，订单明天发货。",
    );
    customer
        .send_raw(
            "wang@customer.example",
            std::slice::from_ref(&reply_to),
            &answer,
        )
        .await
        .expect("answer");
    // Someone else answering the same thread by References starts their own.
    let other = mail(
        "zhao@other.example",
        "support@shop.example",
        "Re: 订单",
        "z1@other.example",
        &format!("References: <{our_id}>\r\n"),
        "我也有同样的问题",
    );
    customer
        .send_raw(
            "zhao@other.example",
            &["support@shop.example".into()],
            &other,
        )
        .await
        .expect("other");
    // A [#number] from the same customer, without threading headers.
    let by_number = mail(
        "wang@customer.example",
        "support@shop.example",
        &format!("补充 [#{}]", conv.number),
        "c3@customer.example",
        "",
        "地址改一下",
    );
    customer
        .send_raw(
            "wang@customer.example",
            &["support@shop.example".into()],
            &by_number,
        )
        .await
        .expect("by number");
    // An out-of-office reply opens a conversation but gets no acknowledgement.
    let auto = mail(
        "zhou@away.example",
        "support@shop.example",
        "自动回复：我不在办公室",
        "a1@away.example",
        "Auto-Submitted: auto-replied\r\n",
        "我休假到下周。",
    );
    customer
        .send_raw("zhou@away.example", &["support@shop.example".into()], &auto)
        .await
        .expect("auto");

    let messages = env
        .store
        .list_messages(conv.id, 0, 50, true)
        .await
        .expect("messages");
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(
        texts[2].starts_with("好的，谢谢！") && !texts[2].contains("> 您好"),
        "quoted history folded: {:?}",
        texts[2]
    );
    assert_eq!(texts[3], "地址改一下");
    let zhao = env
        .store
        .contact_by_identity("email", "zhao@other.example")
        .await
        .expect("zhao");
    let zhao_convs = env
        .store
        .list_conversations(
            kefu_store::Visibility::All,
            &kefu_store::ConversationFilter {
                contact_id: Some(zhao.id),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list")
        .items;
    assert_eq!(zhao_convs.len(), 1);
    assert_ne!(zhao_convs[0].id, conv.id);
    // Acks went to wang and zhao only (the out-of-office sender gets none).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let acks: Vec<String> = sink
        .got
        .lock()
        .await
        .iter()
        .map(|r| kefu_mail::parse(r))
        .filter(|p| p.header("Auto-Submitted").is_some())
        .map(|p| p.to[0].address.clone())
        .collect();
    assert_eq!(
        acks,
        vec![
            "wang@customer.example".to_string(),
            "zhao@other.example".to_string()
        ]
    );

    // A bounce of our reply marks it failed.
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\nTo: support@shop.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.customer.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n\
         Final-Recipient: rfc822; wang@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{our_id}>\r\nSubject: x\r\n\r\n--b--\r\n"
    );
    customer
        .send_raw("", &["support@shop.example".into()], dsn.as_bytes())
        .await
        .expect("dsn");
    let state = env
        .store
        .message(sent.message.id)
        .await
        .expect("message")
        .metadata["email"]
        .clone();
    assert_eq!(state["status"], "failed", "{state}");
    assert!(state["error"].as_str().unwrap_or("").contains("5.1.1"));

    let _ = stop.send(true);
    running.await.expect("join").expect("service");
}

/// With `tls` set the channel's listener offers STARTTLS; lettre, trusting
/// only the test's certificate and requiring TLS, delivers a mail that
/// becomes a conversation.
async fn mail_over_starttls_is_filed(env: Env) {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = tls::make_cert(dir.path());
    env.store
        .create_inbox(&NewInbox {
            kind: InboxKind::Email,
            name: "加密邮箱".into(),
            sla: SlaPolicy::default(),
            settings: json!({ "email": { "address": "secure@shop.example" } }),
            member_ids: vec![],
        })
        .await
        .expect("inbox");
    let service = MailService::new(env.store.clone(), env.blobs.clone());
    let (stop, stopped) = watch::channel(false);
    let (bound_tx, bound) = tokio::sync::oneshot::channel();
    let config = MailServiceConfig {
        smtp_listen: Some("127.0.0.1:0".parse().expect("addr")),
        tls: Some(kefu_mail::smtp::SmtpTls::from_pem_files(&cert, &key).expect("cert")),
        ..MailServiceConfig::default()
    };
    let running = tokio::spawn(service.run(config, stopped, Some(bound_tx)));
    let port = bound.await.expect("listener bound").port();

    let pem = std::fs::read(&cert).expect("read cert");
    let params = TlsParameters::builder("localhost".into())
        .certificate_store(lettre::transport::smtp::client::CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(&pem).expect("pem"))
        .build_rustls()
        .expect("tls parameters");
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(params))
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let raw = mail(
        "li@customer.example",
        "secure@shop.example",
        "发票抬头需要修改",
        "tls1@customer.example",
        "",
        "请把抬头改成：示例科技有限公司",
    );
    let envelope = lettre::address::Envelope::new(
        Some("li@customer.example".parse().expect("from")),
        vec!["secure@shop.example".parse().expect("to")],
    )
    .expect("envelope");
    client
        .send_raw(&envelope, &raw)
        .await
        .expect("sent over STARTTLS");

    let contact = env
        .store
        .contact_by_identity("email", "li@customer.example")
        .await
        .expect("contact");
    let filter = kefu_store::ConversationFilter {
        contact_id: Some(contact.id),
        limit: 10,
        ..Default::default()
    };
    let convs = env
        .store
        .list_conversations(kefu_store::Visibility::All, &filter)
        .await
        .expect("list")
        .items;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].subject.as_deref(), Some("发票抬头需要修改"));

    // Trusting nothing but the system roots, the same client refuses the
    // certificate: the handshake really checked it.
    let strict = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(
            TlsParameters::new_rustls("localhost".into()).expect("params"),
        ))
        .timeout(Some(Duration::from_secs(10)))
        .build();
    assert!(strict.send_raw(&envelope, &raw).await.is_err());

    let _ = stop.send(true);
    running.await.expect("join").expect("service");
}

/// Two nodes (two stores and two mail services on one database, sharing the
/// attachment directory as nodes share object storage) run their outboxes
/// at the same time while agents answer: each reply reaches the customer's
/// provider exactly once. The outbox used to send every due row from every
/// node, so with two nodes a reply could arrive twice.
async fn two_nodes_send_each_reply_once(env: Env) {
    const CONVERSATIONS: usize = 5;
    const REPLIES: usize = 10;
    let (sink, sink_port) = start_sink().await;
    let inbox = env
        .store
        .create_inbox(&NewInbox {
            kind: InboxKind::Email,
            name: "邮件客服".into(),
            sla: SlaPolicy::default(),
            settings: json!({ "email": {
                "address": "support@shop.example",
                "smtp": { "host": "127.0.0.1", "port": sink_port, "security": "none" }
            }}),
            member_ids: vec![],
        })
        .await
        .expect("inbox");
    let agent = env
        .store
        .create_agent(
            &kefu_core::NewAgent {
                email: "li@shop.example".into(),
                name: "李雷".into(),
                role: kefu_core::Role::Agent,
                password: None,
            },
            None,
        )
        .await
        .expect("agent");
    let mut conversations = Vec::new();
    for n in 0..CONVERSATIONS {
        let (c, _) = env
            .store
            .create_conversation(
                &kefu_core::NewConversation {
                    inbox_id: inbox.id,
                    contact_id: None,
                    contact: Some(kefu_core::NewContact {
                        name: Some(format!("客户{n}")),
                        email: Some(format!("customer{n}@customer.example")),
                        ..Default::default()
                    }),
                    subject: Some(format!("订单 {n} 的问题")),
                    priority: kefu_core::Priority::Medium,
                    assignee_id: None,
                    team_id: None,
                    tags: vec![],
                    message: Some(NewMessage::text(Direction::Incoming, "请问什么时候发货？")),
                },
                None,
            )
            .await
            .expect("conversation");
        conversations.push(c.id);
    }

    let second = Store::open(&env.url)
        .await
        .expect("the second node's store");
    let mut nodes = Vec::new();
    for store in [env.store.clone(), second.clone()] {
        let (stop, stopped) = watch::channel(false);
        let config = MailServiceConfig {
            outbox_interval: Duration::from_millis(20),
            ..MailServiceConfig::default()
        };
        let service = MailService::new(store, env.blobs.clone());
        nodes.push((stop, tokio::spawn(service.run(config, stopped, None))));
    }

    // Agents answer on both nodes while both outboxes run.
    let mut writers = tokio::task::JoinSet::new();
    for (n, conversation) in conversations.iter().copied().enumerate() {
        let store = if n % 2 == 0 {
            env.store.clone()
        } else {
            second.clone()
        };
        writers.spawn(async move {
            let mut ids = Vec::new();
            for r in 0..REPLIES {
                let mut reply =
                    NewMessage::text(Direction::Outgoing, format!("回复 {n}-{r}：明天发货。"));
                reply.sender_kind = Some(SenderKind::Agent);
                reply.sender_id = Some(agent.id);
                let sent = store
                    .append_message(conversation, &reply, Some(agent.id))
                    .await
                    .expect("reply");
                ids.push(sent.message.id);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ids
        });
    }
    let mut replies = Vec::new();
    while let Some(ids) = writers.join_next().await {
        replies.extend(ids.expect("writer"));
    }
    assert_eq!(replies.len(), CONVERSATIONS * REPLIES);

    // Every reply is sent; then both nodes keep going for many more rounds,
    // in which a second copy would show up.
    for id in &replies {
        let mut status = serde_json::Value::Null;
        for _ in 0..400 {
            status =
                env.store.message(*id).await.expect("message").metadata["email"]["status"].clone();
            if status == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(status, "sent", "reply {id}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.got.lock().await.clone();
    let mut texts: Vec<String> = got
        .iter()
        .map(|raw| kefu_mail::parse(raw).text.trim().to_string())
        .collect();
    texts.sort();
    let mut expected: Vec<String> = (0..CONVERSATIONS)
        .flat_map(|n| (0..REPLIES).map(move |r| format!("回复 {n}-{r}：明天发货。")))
        .collect();
    expected.sort();
    assert_eq!(texts, expected, "each reply exactly once");

    for (stop, running) in nodes {
        let _ = stop.send(true);
        running.await.expect("join").expect("service");
    }
}

fn charset_sample(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/resources/charsets")
        .join(name);
    std::fs::read(&path).expect("sample")
}

/// A subject written by Python's `email` as `=?eucgb2312_cn?b?…?=` once came out as
/// `����δ����`, became the thread subject and went back to the customer in the
/// acknowledgement. Now the thread, the contact's name and the acknowledgement carry the
/// Chinese; and a body that is not its declared charset is read and flagged on the
/// received mail's record.
async fn odd_charset_labels_reach_the_thread_and_the_acknowledgement(env: Env) {
    let (sink, sink_port) = start_sink().await;
    let inbox = env
        .store
        .create_inbox(&NewInbox {
            kind: InboxKind::Email,
            name: "邮件客服".into(),
            sla: SlaPolicy::default(),
            settings: json!({ "email": {
                "address": "support@kefu.example", "name": "示例商城客服", "auto_ack": "zh-CN",
                "smtp": { "host": "127.0.0.1", "port": sink_port, "security": "none" }
            }}),
            member_ids: vec![],
        })
        .await
        .expect("inbox");
    let service = MailService::new(env.store.clone(), env.blobs.clone());
    let (stop, stopped) = watch::channel(false);
    let (bound_tx, bound) = tokio::sync::oneshot::channel();
    let config = MailServiceConfig {
        smtp_listen: Some("127.0.0.1:0".parse().expect("addr")),
        outbox_interval: Duration::from_millis(200),
        ..MailServiceConfig::default()
    };
    let running = tokio::spawn(service.clone().run(config, stopped, Some(bound_tx)));
    let port = bound.await.expect("listener bound").port();
    client(port)
        .send_raw(
            "zhang@example.cn",
            &["support@kefu.example".into()],
            &charset_sample("eucgb2312_cn.eml"),
        )
        .await
        .expect("accepted");
    let ack = next_mail(&sink, 0).await;
    let contact = env
        .store
        .contact_by_identity("email", "zhang@example.cn")
        .await
        .expect("contact");
    assert_eq!(contact.name.as_deref(), Some("张三"));
    let filter = kefu_store::ConversationFilter {
        contact_id: Some(contact.id),
        limit: 10,
        ..Default::default()
    };
    let convs = env
        .store
        .list_conversations(kefu_store::Visibility::All, &filter)
        .await
        .expect("list")
        .items;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].subject.as_deref(), Some("退款申请未处理"));
    assert_eq!(
        ack.subject.as_deref(),
        Some(format!("[#{}] 我们已收到您的来信：退款申请未处理", convs[0].number).as_str())
    );
    let stored = env
        .store
        .list_messages(convs[0].id, 0, 10, false)
        .await
        .expect("messages");
    assert!(
        stored
            .iter()
            .any(|m| m.text.contains("我的退款申请还没有处理")),
        "{stored:?}"
    );

    // Declared UTF-8, really GBK: read, and the problem is on the received mail's record.
    let settings = kefu_mail::channel::settings::EmailSettings::of(&inbox).expect("settings");
    let filed = kefu_mail::channel::ingest(
        &kefu_app::App::new(env.store.clone()),
        &env.blobs,
        &inbox,
        &settings,
        Arc::new(charset_sample("utf8_really_gbk.eml")),
    )
    .await
    .expect("filed");
    let kefu_mail::channel::Filed::Message {
        inbound_id,
        message_id,
        ..
    } = filed
    else {
        panic!("not filed: {filed:?}");
    };
    let (status, problem, _) = env
        .store
        .inbound_email_status(inbound_id)
        .await
        .expect("status");
    assert_eq!(status, "filed");
    let problem = problem.unwrap_or_default();
    assert!(
        problem.contains("WrongCharset") && problem.contains("gb18030"),
        "{problem}"
    );
    let message = env.store.message(message_id).await.expect("message");
    assert!(
        message.text.contains("我的快递三天没有更新了"),
        "{}",
        message.text
    );

    let _ = stop.send(true);
    running.await.expect("join").expect("service");
}

//! Email inboxes over HTTP, with kefu's mail channel running beside the
//! server and a real SMTP sink on loopback, on SQLite and PostgreSQL: mail
//! passwords never leave the server (masked in every answer, kept when the
//! mask comes back, absent from the logs), and each reply's delivery state
//! (queued, sent, failed with the reason) is in the API.

// Test helpers unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

both_backends!(
    mail_passwords_never_leave_the_server,
    replies_show_their_delivery_state,
    replies_are_dkim_signed,
    replies_without_an_address_fail_once,
    widget_replies_follow_up_by_email,
);

const IMAP_PASSWORD: &str = "imap-秘密-7f3a9c";
const SMTP_PASSWORD: &str = "smtp-秘密-b81d44";

/// Everything this test binary logs, at every level.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Writer(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().expect("log buffer")).into_owned()
}

fn email_settings(imap_password: &str, smtp_password: &str) -> Value {
    json!({ "email": {
        "address": "support@shop.example",
        // Nothing listens on port 1: the poller fails and says so in the log.
        "imap": { "host": "127.0.0.1", "port": 1, "security": "none",
                  "username": "support", "password": imap_password },
        "smtp": { "host": "127.0.0.1", "port": 1, "security": "none",
                  "username": "support", "password": smtp_password } } })
}

async fn mail_passwords_never_leave_the_server(b: Backend) {
    let logs = logs();
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let created = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "email", "name": "邮件客服", "member_ids": [admin.agent_id()],
                    "settings": email_settings(IMAP_PASSWORD, SMTP_PASSWORD) }),
        )
        .await;
    let inbox = created.ok(201).clone();
    let path = format!("/api/v1/inboxes/{}", id(&inbox));
    let shown = [
        inbox.clone(),
        admin.get(&path).await.ok(200).clone(),
        admin.get("/api/v1/inboxes").await.ok(200).clone(),
    ];
    for answer in &shown {
        let text = answer.to_string();
        assert!(
            !text.contains(IMAP_PASSWORD) && !text.contains(SMTP_PASSWORD),
            "{text}"
        );
    }
    let email = &shown[1]["settings"]["email"];
    assert_eq!(email["imap"]["password"], "********");
    assert_eq!(email["smtp"]["password"], "********");
    assert_eq!(email["imap"]["username"], "support");

    // The console sends back what it was shown, with another name: kept.
    let mut settings = shown[1]["settings"].clone();
    settings["email"]["name"] = json!("示例商城客服");
    let patched = admin
        .patch(&path, json!({ "settings": settings.clone() }))
        .await;
    assert_eq!(
        patched.ok(200)["settings"]["email"]["smtp"]["password"],
        "********"
    );
    let stored = s.store.inbox(id(&inbox).parse().unwrap()).await.unwrap();
    assert_eq!(stored.settings["email"]["name"], "示例商城客服");
    assert_eq!(stored.settings["email"]["imap"]["password"], IMAP_PASSWORD);
    assert_eq!(stored.settings["email"]["smtp"]["password"], SMTP_PASSWORD);

    // A new password replaces the stored one, and is not shown either.
    settings["email"]["smtp"]["password"] = json!("new-smtp-secret");
    let patched = admin.patch(&path, json!({ "settings": settings })).await;
    assert!(!patched.body.to_string().contains("new-smtp-secret"));
    let stored = s.store.inbox(id(&inbox).parse().unwrap()).await.unwrap();
    assert_eq!(
        stored.settings["email"]["smtp"]["password"],
        "new-smtp-secret"
    );
    assert_eq!(stored.settings["email"]["imap"]["password"], IMAP_PASSWORD);

    // The mask where nothing is stored is refused, not saved as a password.
    let res = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "email", "name": "另一个",
                    "settings": email_settings("********", "x") }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("imap.password"), "{}", res.body);

    // The channel uses the stored password (its IMAP poll fails against a
    // closed port and logs it); no log line carries a password.
    let _mail = mail::Mail::start(&s).await;
    for _ in 0..200 {
        if log_text().contains("IMAP poll failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = log_text();
    assert!(text.contains("IMAP poll failed"), "the poller never ran");
    for secret in [IMAP_PASSWORD, SMTP_PASSWORD, "new-smtp-secret"] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
    drop(logs);
}

/// A reply to a customer whose provider takes the mail is `sent`; one to an
/// address the provider refuses is `failed` with the reason.
async fn replies_show_their_delivery_state(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let (sink, sink_port) = mail::Sink::start().await;
    let _mail = mail::Mail::start(&s).await;
    let inbox = mail::email_inbox(&admin, sink_port).await;
    let mut states = Vec::new();
    for address in ["wang@customer.example", "refuse@customer.example"] {
        let (path, reply) = mail::ticket_with_reply(
            &admin,
            &inbox,
            json!({ "name": "王小明", "email": address }),
            (
                "退款进度",
                "退款到哪一步了？",
                "已在处理，三个工作日内到账。",
            ),
        )
        .await;
        states.push(mail::delivery_state(&admin, &path, &reply).await);
    }
    assert_eq!(states[0]["status"], "sent", "{}", states[0]);
    assert_eq!(states[0]["attempts"], 1);
    assert!(states[0]["error"].is_null());
    assert_eq!(states[1]["status"], "failed", "{}", states[1]);
    let reason = states[1]["error"].as_str().unwrap_or_default();
    assert!(reason.contains("550"), "{reason}");
    assert_eq!(sink.got.lock().await.len(), 1);
}

/// A PKCS#8 RSA key made by `openssl genpkey` and its public half as the
/// base64 DER that goes in the DNS record's `p=`.
fn rsa_key() -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("dkim.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let path = key.to_str().expect("utf-8 path");
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path,
    ]);
    let der = run(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    use base64::Engine as _;
    (
        std::fs::read_to_string(&key).expect("read key"),
        base64::engine::general_purpose::STANDARD.encode(der),
    )
}

/// An email inbox with a DKIM key: the key is never shown (masked like the
/// passwords, kept when the mask comes back), a key that cannot sign is
/// refused with the field named, and an agent's reply arrives at a
/// third-party server (aiosmtpd) with a DKIM-Signature that dkimpy verifies
/// against the public key.
async fn replies_are_dkim_signed(b: Backend) {
    if !mail::python_has("aiosmtpd, dkim") {
        return;
    }
    let (private_pem, public_b64) = rsa_key();
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let sink = mail::Aiosmtpd::start();
    let settings = |key: &str| {
        json!({ "email": { "address": "support@shop.example", "name": "示例商城客服",
            "smtp": { "host": "127.0.0.1", "port": sink.port, "security": "none" },
            "dkim": { "domain": "shop.example", "selector": "kefu2026",
                      "private_key": key, "algorithm": "rsa" } } })
    };
    for (bad, field) in [
        (
            settings("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            "private_key",
        ),
        (settings("not a key"), "private_key"),
        (settings("********"), "private_key"),
        (
            {
                let mut v = settings(&private_pem);
                v["email"]["dkim"]["algorithm"] = json!("dsa");
                v
            },
            "algorithm",
        ),
        (
            {
                let mut v = settings(&private_pem);
                v["email"]["dkim"]["selector"] = json!("bad selector;");
                v
            },
            "selector",
        ),
    ] {
        let res = admin
            .post(
                "/api/v1/inboxes",
                json!({ "kind": "email", "name": "坏钥匙", "settings": bad }),
            )
            .await;
        res.assert_error(422, "validation_failed");
        assert!(
            res.body
                .to_string()
                .contains(&format!("settings.email.dkim.{field}")),
            "{}",
            res.body
        );
    }

    let inbox = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "email", "name": "邮件客服", "member_ids": [admin.agent_id()],
                    "settings": settings(&private_pem) }),
        )
        .await
        .ok(201)
        .clone();
    assert!(!inbox.to_string().contains("PRIVATE KEY"), "{inbox}");
    let path = format!("/api/v1/inboxes/{}", id(&inbox));
    let shown = admin.get(&path).await.ok(200).clone();
    assert_eq!(
        shown["settings"]["email"]["dkim"]["private_key"],
        "********"
    );
    assert_eq!(shown["settings"]["email"]["dkim"]["selector"], "kefu2026");
    let listed = admin.get("/api/v1/inboxes").await.ok(200).to_string();
    assert!(!listed.contains("PRIVATE KEY"));
    // Sent back masked with another name: the key is kept.
    let mut back = shown["settings"].clone();
    back["email"]["name"] = json!("示例商城售后");
    let patched = admin.patch(&path, json!({ "settings": back })).await;
    assert_eq!(
        patched.ok(200)["settings"]["email"]["dkim"]["private_key"],
        "********"
    );
    let stored = s
        .store
        .inbox(id(&inbox).parse().expect("uuid"))
        .await
        .expect("inbox");
    assert_eq!(stored.settings["email"]["dkim"]["private_key"], private_pem);
    // A broken key in a PATCH is refused and the stored one stays.
    let res = admin
        .patch(
            &path,
            json!({ "settings": settings("-----BEGIN RSA PRIVATE KEY-----\n") }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert!(
        res.body
            .to_string()
            .contains("settings.email.dkim.private_key")
    );

    let _mail = mail::Mail::start(&s).await;
    let conv = admin
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&inbox), "subject": "发票",
                    "contact": { "name": "王小明", "email": "wang@customer.example" },
                    "message": { "direction": "incoming", "text": "发票开好了吗？" } }),
        )
        .await
        .ok(201)["conversation"]
        .clone();
    let messages = format!("/api/v1/conversations/{}/messages", id(&conv));
    let reply = admin
        .post(
            &messages,
            json!({ "direction": "outgoing", "text": "已开好，请查收附件。" }),
        )
        .await
        .ok(201)
        .clone();
    let state = mail::delivery_state(&admin, &messages, &reply).await;
    assert_eq!(state["status"], "sent", "{state}");
    let raw = sink.message(0).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("DKIM-Signature:"), "{text}");

    let record = format!("v=DKIM1; k=rsa; p={public_b64}");
    let verdict = mail::dkim_verify(&raw, &record);
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["domain"], "shop.example");
    assert_eq!(verdict["selector"], "kefu2026");
    assert_eq!(
        verdict["asked"],
        json!(["kefu2026._domainkey.shop.example."])
    );
    for h in ["from", "subject", "message-id", "reply-to"] {
        assert!(
            verdict["signed"]
                .as_array()
                .is_some_and(|l| l.contains(&json!(h))),
            "{verdict}"
        );
    }
    // The check is real: the same mail with its body changed fails.
    let tampered = text.replacen("Content-Type: text/plain", "Content-Type: text/html", 1);
    assert_ne!(tampered, text);
    let verdict = mail::dkim_verify(tampered.as_bytes(), &record);
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert!(
        verdict["why"]
            .as_str()
            .unwrap_or("")
            .contains("body hash mismatch"),
        "{verdict}"
    );
}

/// A reply in an email inbox to a customer without any email address fails
/// at once with the reason, and the outbox does not take it up again (it
/// used to re-mark it on every round for a week, and a pile of such
/// replies could crowd out real ones); the next reply to a customer with an
/// address goes out as usual.
async fn replies_without_an_address_fail_once(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let (sink, sink_port) = mail::Sink::start().await;
    let _mail = mail::Mail::start(&s).await;
    let inbox = mail::email_inbox(&admin, sink_port).await;
    let inbox_id: uuid::Uuid = id(&inbox).parse().expect("uuid");
    let mut states = Vec::new();
    for contact in [
        json!({ "name": "电话客户", "phone": "13800138000" }),
        json!({ "name": "王小明", "email": "wang@customer.example" }),
    ] {
        let (path, reply) = mail::ticket_with_reply(
            &admin,
            &inbox,
            contact,
            ("回电", "请回电", "好的，马上回电。"),
        )
        .await;
        states.push(mail::delivery_state(&admin, &path, &reply).await);
    }
    assert_eq!(states[0]["status"], "failed", "{}", states[0]);
    assert_eq!(states[0]["error"], "the customer has no email address");
    assert_eq!(states[1]["status"], "sent", "{}", states[1]);
    assert_eq!(sink.got.lock().await.len(), 1);
    // Nothing is left for the outbox to take up.
    let week_ago = chrono::Utc::now().timestamp_millis() - 7 * 86_400_000;
    let left = s
        .store
        .unqueued_email_replies(&[inbox_id], week_ago, week_ago, 200)
        .await
        .expect("query");
    assert!(left.is_empty(), "{left:?}");
}

/// A widget inbox linked to an email inbox (`settings.widget.reply_email_inbox`)
/// keeps the widget's promise: its config says email follow-up is on, an
/// agent's reply to a customer who left an address arrives by mail with a
/// reply token, and the customer's answer by mail comes back into the same
/// conversation. Without the link the config says no, and nothing is
/// mailed. A link that names no email inbox is refused.
async fn widget_replies_follow_up_by_email(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let (sink, sink_port) = mail::Sink::start().await;
    let channel = mail::Mail::start(&s).await;
    let email = mail::email_inbox(&admin, sink_port).await;
    let api = create_inbox(&admin, "接口", &[]).await;
    let widget = |name: &str, link: Value| {
        json!({ "kind": "widget", "name": name, "member_ids": [admin.agent_id()],
                "settings": { "widget": { "greeting": "您好！有什么可以帮您？", "reply_email_inbox": link } } })
    };
    for bad in [
        json!("不是编号"),
        json!(uuid::Uuid::now_v7().to_string()),
        json!(id(&api)),
        json!(42),
    ] {
        let res = admin.post("/api/v1/inboxes", widget("坏链接", bad)).await;
        res.assert_error(422, "validation_failed");
        assert!(
            res.body
                .to_string()
                .contains("settings.widget.reply_email_inbox"),
            "{}",
            res.body
        );
    }
    let linked = admin
        .post("/api/v1/inboxes", widget("官网在线客服", json!(id(&email))))
        .await
        .ok(201)
        .clone();
    let plain = admin
        .post("/api/v1/inboxes", widget("活动页客服", Value::Null))
        .await
        .ok(201)
        .clone();
    // A PATCH is checked the same way.
    let res = admin
        .patch(
            &format!("/api/v1/inboxes/{}", id(&plain)),
            json!({ "settings": { "widget": { "reply_email_inbox": id(&api) } } }),
        )
        .await;
    res.assert_error(422, "validation_failed");

    let visitor = s.client();
    let mut conversations = Vec::new();
    for (inbox, address, follow_up) in [
        (&linked, "wang@customer.example", true),
        (&plain, "zhao@customer.example", false),
    ] {
        let keys = admin
            .get(&format!("/api/v1/inboxes/{}/widget", id(inbox)))
            .await
            .ok(200)
            .clone();
        let token = keys["public_token"].as_str().expect("public token");
        let config = visitor
            .get(&format!("/api/widget/v1/config?inbox={token}"))
            .await
            .ok(200)
            .clone();
        assert_eq!(config["email_follow_up"], follow_up, "{config}");
        assert_eq!(config["settings"]["greeting"], "您好！有什么可以帮您？");
        // Which inbox sends the mail is not the page's business.
        assert!(
            config["settings"].get("reply_email_inbox").is_none(),
            "{config}"
        );

        // The customer leaves an address in the widget, and writes.
        let session = visitor
            .post(
                "/api/widget/v1/session",
                json!({ "inbox": token, "email": address }),
            )
            .await
            .ok(200)
            .clone();
        let conv = admin
            .post(
                "/api/v1/conversations",
                json!({ "inbox_id": id(inbox), "contact_id": session["contact_id"],
                        "message": { "direction": "incoming", "text": "退款到哪一步了？" } }),
            )
            .await
            .ok(201)["conversation"]
            .clone();
        let path = format!("/api/v1/conversations/{}/messages", id(&conv));
        let reply = admin
            .post(
                &path,
                json!({ "direction": "outgoing", "text": "退款已原路退回，三个工作日内到账。" }),
            )
            .await
            .ok(201)
            .clone();
        conversations.push((conv, path, reply, session));
    }

    let (conv, path, reply, session) = &conversations[0];
    let state = mail::delivery_state(&admin, path, reply).await;
    assert_eq!(state["status"], "sent", "{state}");
    let out = sink.mail(0).await;
    assert_eq!(out.to[0].address, "wang@customer.example");
    assert!(out.text.contains("退款已原路退回"), "{}", out.text);
    let subject = out.subject.clone().unwrap_or_default();
    assert!(
        subject.contains("官网在线客服") && subject.contains(&format!("[#{}]", conv["number"])),
        "{subject}"
    );
    let reply_to = out.reply_to[0].address.clone();
    assert!(
        reply_to.starts_with("support+") && reply_to.ends_with("@shop.example"),
        "{reply_to}"
    );
    let our_id = out.message_id.clone().expect("Message-ID");

    // The customer answers from their mail client, quoting as Foxmail does.
    let answer = format!(
        "From: =?UTF-8?B?546L5bCP5piO?= <wang@customer.example>\r\nTo: {reply_to}\r\n\
         Subject: {subject}\r\nMessage-ID: <w2@customer.example>\r\n\
         In-Reply-To: <{our_id}>\r\nReferences: <{our_id}>\r\n\
         Date: Mon, 07 Dec 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         收到了，谢谢！\r\n\r\n在 2026-12-07 09:58，\"示例商城客服\"<support@shop.example> 写道：\r\n\
         > 退款已原路退回，三个工作日内到账。\r\n"
    );
    channel
        .client()
        .send_raw(
            "wang@customer.example",
            std::slice::from_ref(&reply_to),
            answer.as_bytes(),
        )
        .await
        .expect("the answer is accepted");
    let mut texts = Vec::new();
    for _ in 0..200 {
        let list = admin.get(path).await.ok(200).clone();
        texts = list
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| (m["direction"].clone(), m["text"].clone()))
            .collect();
        if texts.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[2].0, "incoming");
    assert_eq!(texts[2].1, "收到了，谢谢！", "{texts:?}");
    // In the widget's conversation, not a new one.
    let contact: uuid::Uuid = session["contact_id"]
        .as_str()
        .expect("contact id")
        .parse()
        .expect("uuid");
    let filter = kefu_store::ConversationFilter {
        contact_id: Some(contact),
        limit: 10,
        ..Default::default()
    };
    let of_contact = s
        .store
        .list_conversations(kefu_store::Visibility::All, &filter)
        .await
        .expect("list")
        .items;
    assert_eq!(of_contact.len(), 1);
    assert_eq!(of_contact[0].id.to_string(), id(conv));

    // The unlinked widget's reply is not mailed: many outbox rounds later
    // the sink still holds the one mail, and the reply has no mail state.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(sink.got.lock().await.len(), 1);
    let (_, path, reply, _) = &conversations[1];
    let list = admin.get(path).await.ok(200).clone();
    let shown = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|m| m["id"] == reply["id"])
        .expect("the reply")
        .clone();
    assert!(shown["metadata"]["email"].is_null(), "{shown}");
}

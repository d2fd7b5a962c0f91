//! The WebSocket protocol with real sockets (tokio-tungstenite) against the
//! real server, on SQLite and PostgreSQL: ack only after commit, resends
//! deduplicated, resume after a dropped socket and after a restart, two
//! nodes on one PostgreSQL database, visitors and agents kept apart, and
//! malformed, oversized and too-fast frames answered without harm.

#[macro_use]
mod common;

use common::{Backend, Client, TestServer, id};
use futures::{SinkExt, StreamExt};
use kefu_core::Role;
use kefu_server::{AppState, visitor};
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

both_backends!(
    widget_ack_follows_commit_and_resends_dedupe,
    widget_and_agent_talk_and_resume_after_drop,
    resume_after_server_restart,
    visitors_cannot_reach_each_other,
    identity_hashes_are_checked,
    agents_outside_an_inbox_receive_nothing,
    bad_frames_are_answered_and_the_socket_survives,
    files_unread_counts_and_ratings,
    continuity_links_open_an_imported_history,
    presence_is_told_per_inbox,
    email_delivery_state_is_pushed,
    uploads_are_attached_only_by_their_uploader,
    unsent_uploads_have_a_quota_per_customer,
    read_tokens_cannot_write_through_the_socket,
    identity_hashes_are_spent_whatever_their_spelling,
);

mod two_nodes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if crate::common::postgres_url().is_some() {
            super::two_nodes_share_events(crate::common::Backend::Postgres).await
        }
    }
}

/// A WebSocket client that keeps frames it was not waiting for.
struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pending: VecDeque<Value>,
}

const WAIT: Duration = Duration::from_secs(5);

impl Ws {
    async fn connect(
        base: &str,
        path: &str,
        bearer: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let url = format!("{}{path}", base.replace("http://", "ws://"));
        let mut req = url.into_client_request()?;
        if let Some(t) = bearer {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Ws {
            stream,
            pending: VecDeque::new(),
        })
    }

    async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send frame");
    }

    async fn send_raw(&mut self, m: Message) {
        self.stream.send(m).await.expect("send raw frame");
    }

    /// The next JSON frame from the socket (not the buffer), or None on close.
    async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(&t).expect("server sent JSON"));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(other))) => panic!("unexpected frame {other:?}"),
                Err(_) => return None,
            }
        }
    }

    /// The first frame of this type (buffered or new); others are kept.
    async fn expect(&mut self, ty: &str) -> Value {
        if let Some(pos) = self.pending.iter().position(|f| f["type"] == ty) {
            return self.pending.remove(pos).expect("position is valid");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Some(f) = self
            .next_frame(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if f["type"] == ty {
                return f;
            }
            self.pending.push_back(f);
        }
        panic!("no {ty} frame within {WAIT:?}; got {:?}", self.pending);
    }

    /// Frames arriving within `wait` (buffer included), for asserting absence.
    async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut got: Vec<Value> = self.pending.drain(..).collect();
        while let Some(f) = self.next_frame(wait).await {
            got.push(f);
        }
        got
    }

    /// True once the server closes the socket (frames before the close are
    /// skipped); false if it stays open for 5 s.
    async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// A widget inbox with these members; returns (inbox id, public token, identity secret).
async fn widget_inbox(admin: &Client, members: &[&str]) -> (String, String, String) {
    let inbox = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "widget", "name": "官网在线客服", "member_ids": members }),
        )
        .await
        .ok(201)
        .clone();
    let keys = admin
        .get(&format!("/api/v1/inboxes/{}/widget", id(&inbox)))
        .await
        .ok(200)
        .clone();
    let token = keys["public_token"]
        .as_str()
        .expect("public token")
        .to_string();
    assert!(
        keys["snippet"]
            .as_str()
            .expect("snippet")
            .contains(&format!("data-inbox=\"{token}\""))
    );
    (
        id(&inbox).to_string(),
        token,
        keys["identity_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    )
}

async fn session(server: &TestServer, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/widget/v1/session", server.base))
        .json(&body)
        .send()
        .await
        .expect("session");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn visitor_token(server: &TestServer, public_token: &str) -> String {
    let (status, body) = session(server, json!({ "inbox": public_token })).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_string()
}

/// A widget socket after hello; returns it with the welcome frame.
async fn widget(base: &str, token: &str, resume: Value) -> (Ws, Value) {
    widget_hello(
        base,
        json!({ "type": "hello", "token": token, "resume": resume }),
    )
    .await
}

async fn widget_hello(base: &str, hello: Value) -> (Ws, Value) {
    let mut ws = Ws::connect(base, "/ws/widget", None, None)
        .await
        .expect("connect widget");
    ws.send(hello).await;
    let welcome = ws.expect("widget_welcome").await;
    (ws, welcome)
}

/// An agent socket authenticated by a fresh write token of `client`'s agent.
async fn agent(base: &str, client: &Client) -> Ws {
    let token = client
        .post("/api/v1/tokens", json!({ "name": "ws", "scope": "write" }))
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut ws = Ws::connect(base, "/ws/agent", Some(&token), None)
        .await
        .expect("connect agent");
    ws.expect("agent_welcome").await;
    ws
}

/// A widget is told agents are online only when someone who sees its
/// inbox (a member or an admin) has a console open.
async fn presence_is_told_per_inbox(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let li = server
        .agent_client("li@kefu.test", "小李", Role::Agent)
        .await;
    let (_, li_public, _) = widget_inbox(&admin, &[li.agent_id()]).await;
    let (_, other_public, _) = widget_inbox(&admin, &[]).await;
    let welcome = |public: String| {
        let server = &server;
        async move {
            let token = visitor_token(server, &public).await;
            let (_, w) = widget(&server.base, &token, json!({})).await;
            w["agents_online"].as_bool().expect("agents_online")
        }
    };
    assert!(!welcome(li_public.clone()).await, "nobody is online");
    let li_console = agent(&server.base, &li).await;
    assert!(welcome(li_public.clone()).await, "a member is online");
    assert!(
        !welcome(other_public.clone()).await,
        "li does not see the other inbox"
    );
    let config = |public: String| {
        let base = server.base.clone();
        async move {
            let url = format!("{base}/api/widget/v1/config?inbox={public}");
            let v: Value = reqwest::get(url)
                .await
                .expect("config")
                .json()
                .await
                .expect("json");
            v["agents_online"].as_bool().expect("agents_online")
        }
    };
    assert!(config(li_public.clone()).await);
    assert!(
        !config(other_public.clone()).await,
        "the config says the same"
    );
    let admin_console = agent(&server.base, &admin).await;
    assert!(
        welcome(other_public.clone()).await,
        "an admin sees every inbox"
    );
    assert!(config(other_public.clone()).await);
    drop((li_console, admin_console));
}

async fn widget_ack_follows_commit_and_resends_dedupe(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    // Customers' browsers call from the shop's origin: the preflight passes.
    for path in ["/api/widget/v1/session", "/api/widget/v1/attachments"] {
        let preflight = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.base))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-visitor-token",
            )
            .send()
            .await
            .expect("preflight");
        assert!(
            preflight.status().is_success(),
            "{path}: {}",
            preflight.status()
        );
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
    }
    let token = visitor_token(&server, &public).await;
    let (mut ws, welcome) = widget(&server.base, &token, json!({})).await;
    assert_eq!(welcome["conversations"], json!([]));

    ws.send(json!({ "type": "send", "client_id": "m1", "text": "你好，我想申请退款" }))
        .await;
    let ack = ws.expect("ack").await;
    assert_eq!(ack["client_id"], "m1");
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["duplicate"], false);
    // By the time the ack arrives, the message is in the database.
    let conversation: uuid::Uuid = ack["conversation_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let stored = server
        .store
        .list_messages(conversation, 0, 10, true)
        .await
        .expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].text, "你好，我想申请退款");
    assert_eq!(
        stored[0].id.to_string(),
        ack["message_id"].as_str().expect("id")
    );

    // The same client id again: acknowledged, nothing added.
    ws.send(json!({ "type": "send", "client_id": "m1", "text": "你好，我想申请退款" }))
        .await;
    let again = ws.expect("ack").await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], ack["message_id"]);
    assert_eq!(
        server
            .store
            .list_messages(conversation, 0, 10, true)
            .await
            .expect("list")
            .len(),
        1
    );

    // A second message goes to the same open conversation.
    ws.send(json!({ "type": "send", "client_id": "m2", "text": "订单号 20261127" }))
        .await;
    let second = ws.expect("ack").await;
    assert_eq!(second["conversation_id"], ack["conversation_id"]);
    assert_eq!(second["seq"], 2);
    ws.send(json!({ "type": "ping" })).await;
    ws.expect("pong").await;
}

async fn widget_and_agent_talk_and_resume_after_drop(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let mut console = agent(&server.base, &admin).await;
    let token = visitor_token(&server, &public).await;
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;

    ws.send(json!({ "type": "send", "client_id": "c1", "text": "你好，我想申请退款" }))
        .await;
    let ack = ws.expect("ack").await;
    let cid = ack["conversation_id"].as_str().expect("id").to_string();
    let created = console.expect("conversation").await;
    assert_eq!(created["conversation"]["id"], cid.as_str());
    let incoming = console.expect("message").await;
    assert_eq!(incoming["message"]["text"], "你好，我想申请退款");

    // Typing travels from the agent to the customer.
    console
        .send(json!({ "type": "typing", "conversation_id": cid, "on": true }))
        .await;
    let typing = ws.expect("typing").await;
    assert_eq!(typing["from"]["kind"], "agent");
    assert_eq!(typing["from"]["name"], "管理员");

    console.send(json!({ "type": "send", "client_id": "r1", "conversation_id": cid, "text": "您好，请提供订单号" })).await;
    assert_eq!(console.expect("ack").await["seq"], 2);
    let reply = ws.expect("widget_message").await;
    let reply = if reply["message"]["seq"] == 1 {
        ws.expect("widget_message").await
    } else {
        reply
    };
    assert_eq!(reply["message"]["text"], "您好，请提供订单号");
    assert_eq!(reply["message"]["sender_name"], "管理员");

    // A note never reaches the customer.
    console.send(json!({ "type": "send", "client_id": "n1", "conversation_id": cid, "text": "内部：VIP 客户", "note": true })).await;
    console.expect("ack").await;

    // The customer drops; the agent writes twice; the customer resumes from seq 2.
    drop(ws);
    for (i, text) in ["第一条", "第二条"].iter().enumerate() {
        console.send(json!({ "type": "send", "client_id": format!("late{i}"), "conversation_id": cid, "text": text })).await;
        console.expect("ack").await;
    }
    let (mut back, welcome) = widget(&server.base, &token, json!({ cid.clone(): 2 })).await;
    assert_eq!(welcome["conversations"][0]["last_seq"], 5);
    let first = back.expect("widget_message").await;
    let second = back.expect("widget_message").await;
    assert_eq!(
        (
            first["message"]["seq"].clone(),
            first["message"]["text"].clone()
        ),
        (json!(4), json!("第一条"))
    );
    assert_eq!(
        (
            second["message"]["seq"].clone(),
            second["message"]["text"].clone()
        ),
        (json!(5), json!("第二条"))
    );
    let rest = back.drain(Duration::from_millis(300)).await;
    assert!(
        !rest
            .iter()
            .any(|f| f["message"]["text"] == "内部：VIP 客户"),
        "a note leaked: {rest:?}"
    );

    // A new device holds nothing: `recent` replays the whole conversation
    // in the first connection, notes still left out.
    let (mut fresh, _) = widget_hello(
        &server.base,
        json!({ "type": "hello", "token": token, "recent": 10 }),
    )
    .await;
    let mut seqs = Vec::new();
    for f in fresh.drain(Duration::from_millis(500)).await {
        if f["type"] == "widget_message" {
            assert_eq!(f["message"]["conversation_id"], cid.as_str());
            seqs.push(f["message"]["seq"].as_i64().expect("seq"));
        }
    }
    assert_eq!(seqs, vec![1, 2, 4, 5], "the note (3) is never replayed");

    // The agent resumes too, notes included.
    let mut again = agent(&server.base, &admin).await;
    again
        .send(json!({ "type": "hello", "resume": { cid.clone(): 1 } }))
        .await;
    let seqs: Vec<i64> = [
        again.expect("message").await,
        again.expect("message").await,
        again.expect("message").await,
        again.expect("message").await,
    ]
    .iter()
    .map(|f| f["message"]["seq"].as_i64().expect("seq"))
    .collect();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
}

async fn resume_after_server_restart(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let token = visitor_token(&server, &public).await;
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;
    ws.send(json!({ "type": "send", "client_id": "before", "text": "重启前" }))
        .await;
    let cid = ws.expect("ack").await["conversation_id"]
        .as_str()
        .expect("id")
        .to_string();
    let conversation: uuid::Uuid = cid.parse().expect("uuid");
    server.stop().await.expect("stop");
    drop(ws);

    // A new server process on the same database (fresh store, hub and key cache).
    let store = Store::open(&server.url).await.expect("reopen");
    let reply = kefu_core::NewMessage::text(kefu_core::Direction::Outgoing, "重启后的回复");
    store
        .append_message(conversation, &reply, None)
        .await
        .expect("reply while the customer is away");
    let (base, _state) = serve_node(store).await;
    let (mut back, _) = widget(&base, &token, json!({ cid.clone(): 1 })).await;
    let m = back.expect("widget_message").await;
    assert_eq!(
        (m["message"]["seq"].clone(), m["message"]["text"].clone()),
        (json!(2), json!("重启后的回复"))
    );
    back.send(json!({ "type": "send", "client_id": "before", "text": "重启前" }))
        .await;
    assert_eq!(
        back.expect("ack").await["duplicate"],
        true,
        "dedupe survives the restart"
    );
}

/// Another server node on an existing store.
async fn serve_node(store: Store) -> (String, AppState) {
    let dir = std::env::temp_dir().join(format!("kefu-node-{}", uuid::Uuid::now_v7()));
    let state = AppState::new(store, Blobs::new(dir), common::config());
    state.hub.listening().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(kefu_server::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    (base, state)
}

async fn two_nodes_share_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.state.hub.listening().await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let (node_b, _state_b) =
        serve_node(Store::open(&server.url).await.expect("second store")).await;

    // The agent on node B, the customer on node A.
    let mut console = agent(&node_b, &admin).await;
    let token = visitor_token(&server, &public).await;
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;
    ws.send(json!({ "type": "send", "client_id": "a1", "text": "A 节点的客户" }))
        .await;
    let cid = ws.expect("ack").await["conversation_id"]
        .as_str()
        .expect("id")
        .to_string();
    let m = console.expect("message").await;
    assert_eq!(m["message"]["text"], "A 节点的客户");
    console
        .send(json!({ "type": "typing", "conversation_id": cid, "on": true }))
        .await;
    assert_eq!(ws.expect("typing").await["on"], true);
    console.send(json!({ "type": "send", "client_id": "b1", "conversation_id": cid, "text": "B 节点的客服" })).await;
    console.expect("ack").await;
    loop {
        let f = ws.expect("widget_message").await;
        if f["message"]["text"] == "B 节点的客服" {
            break;
        }
    }
}

async fn visitors_cannot_reach_each_other(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let alice = visitor_token(&server, &public).await;
    let bob = visitor_token(&server, &public).await;
    let (mut a, _) = widget(&server.base, &alice, json!({})).await;
    a.send(json!({ "type": "send", "client_id": "x", "text": "Alice 的私事" }))
        .await;
    let alice_conv = a.expect("ack").await["conversation_id"]
        .as_str()
        .expect("id")
        .to_string();

    // Bob names Alice's conversation: his message lands in his own, Alice sees nothing.
    let (mut b, welcome) = widget(&server.base, &bob, json!({ alice_conv.clone(): 0 })).await;
    assert_eq!(
        welcome["conversations"],
        json!([]),
        "Bob sees none of Alice's conversations"
    );
    let replayed = b.drain(Duration::from_millis(300)).await;
    assert!(
        replayed.iter().all(|f| f["type"] != "widget_message"),
        "resume must not replay another visitor's messages: {replayed:?}"
    );
    b.send(json!({ "type": "send", "client_id": "x", "conversation_id": alice_conv, "text": "Bob 冒充" })).await;
    let ack = b.expect("ack").await;
    assert_ne!(ack["conversation_id"], alice_conv.as_str());
    b.send(json!({ "type": "typing", "conversation_id": alice_conv, "on": true }))
        .await;
    b.send(json!({ "type": "rate", "conversation_id": alice_conv, "score": 1 }))
        .await;
    assert_eq!(b.expect("error").await["code"], "rejected");
    let seen = a.drain(Duration::from_millis(400)).await;
    assert!(
        seen.iter()
            .all(|f| f["message"]["text"] != "Bob 冒充" && f["type"] != "typing"),
        "Alice received Bob's frames: {seen:?}"
    );
    let alice_id: uuid::Uuid = alice_conv.parse().expect("uuid");
    assert_eq!(
        server
            .store
            .list_messages(alice_id, 0, 10, true)
            .await
            .expect("list")
            .len(),
        1
    );

    // Forged and foreign tokens are refused.
    let mut parts: Vec<&str> = alice.split('.').collect();
    let forged_body = parts[1].chars().rev().collect::<String>();
    parts[1] = &forged_body;
    for bad in [parts.join("."), "v1.e30.AAAA".to_string(), String::new()] {
        let mut ws = Ws::connect(&server.base, "/ws/widget", None, None)
            .await
            .expect("connect");
        ws.send(json!({ "type": "hello", "token": bad })).await;
        assert_eq!(ws.expect("error").await["code"], "unauthorized");
        assert!(ws.closed().await);
    }
    let (_, other_public, _) = widget_inbox(&admin, &[]).await;
    let (status, _) = session(&server, json!({ "inbox": other_public, "token": alice })).await;
    assert_eq!(status, 401, "a token of one inbox opens no other");
    let (status, _) = session(&server, json!({ "inbox": "no-such-inbox" })).await;
    assert_eq!(status, 404);
}

async fn identity_hashes_are_checked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, secret) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let now = chrono::Utc::now().timestamp();
    let signed = |ident: &str, t: i64| json!({ "inbox": public, "identifier": ident, "timestamp": t, "identifier_hash": visitor::identity_hash(&secret, ident, t) });

    let (status, first) = session(&server, signed("user-42", now)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["verified"], true);
    let (status, _) = session(&server, signed("user-42", now)).await;
    assert_eq!(status, 403, "a replayed hash is refused");
    let (status, again) = session(&server, signed("user-42", now + 1)).await;
    assert_eq!(status, 200);
    assert_eq!(
        again["contact_id"], first["contact_id"],
        "the same user is the same contact on any device"
    );
    let (status, _) = session(&server, signed("user-42", now - 3600)).await;
    assert_eq!(status, 403, "a stale hash is refused");
    let mut wrong = signed("user-42", now + 2);
    wrong["identifier"] = json!("user-43");
    let (status, _) = session(&server, wrong).await;
    assert_eq!(status, 401, "a hash for another identifier is refused");
    let (status, _) = session(&server, json!({ "inbox": public, "identifier": "user-42" })).await;
    assert_eq!(status, 422);

    // An identifier naming an identity kind finds the imported contact.
    let imported = admin.post("/api/v1/contacts", json!({ "name": "微信老客户", "identities": [{ "kind": "wechat_unionid", "value": "o6_union" }] })).await.ok(201).clone();
    let (status, cont) = session(&server, signed("wechat_unionid:o6_union", now + 3)).await;
    assert_eq!(status, 200);
    assert_eq!(cont["contact_id"], imported["id"]);

    // Verified history follows the user to a new device.
    let token = first["token"].as_str().expect("token");
    let (mut ws, _) = widget(&server.base, token, json!({})).await;
    ws.send(json!({ "type": "send", "client_id": "d1", "text": "手机上发的" }))
        .await;
    ws.expect("ack").await;
    let other_device = again["token"].as_str().expect("token");
    let (_, welcome) = widget(&server.base, other_device, json!({})).await;
    assert_eq!(welcome["conversations"].as_array().expect("list").len(), 1);
}

async fn agents_outside_an_inbox_receive_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let member = server
        .agent_client("member@kefu.test", "成员", Role::Agent)
        .await;
    let outsider = server
        .agent_client("outsider@kefu.test", "外人", Role::Agent)
        .await;
    let (_, public, _) = widget_inbox(&admin, &[member.agent_id()]).await;
    let mut m = agent(&server.base, &member).await;
    let mut o = agent(&server.base, &outsider).await;
    let token = visitor_token(&server, &public).await;
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;
    ws.send(json!({ "type": "send", "client_id": "s1", "text": "只给成员看" }))
        .await;
    let cid = ws.expect("ack").await["conversation_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(m.expect("message").await["message"]["text"], "只给成员看");
    let leaked = o.drain(Duration::from_millis(500)).await;
    assert!(
        leaked.iter().all(|f| f["type"] == "presence"),
        "outsider received: {leaked:?}"
    );

    o.send(json!({ "type": "send", "client_id": "o1", "conversation_id": cid, "text": "越权" }))
        .await;
    assert_eq!(o.expect("error").await["code"], "not_found");
    o.send(json!({ "type": "hello", "resume": { cid.clone(): 0 } }))
        .await;
    assert_eq!(o.expect("error").await["code"], "not_found");

    // A cookie-authenticated socket from another site's page is refused.
    let cookie = member
        .session_cookie
        .clone()
        .expect("member has a session cookie");
    let url = format!("{}/ws/agent", server.base.replace("http://", "ws://"));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("cookie"));
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().expect("origin"));
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "cross-origin cookie socket must be refused"
    );
    // Without credentials: refused too.
    assert!(
        Ws::connect(&server.base, "/ws/agent", None, None)
            .await
            .is_err()
    );
    assert!(
        Ws::connect(&server.base, "/ws/agent", Some("kefu_garbage"), None)
            .await
            .is_err()
    );
}

async fn bad_frames_are_answered_and_the_socket_survives(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let token = visitor_token(&server, &public).await;
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;

    ws.send_raw(Message::Text("{not json".into())).await;
    assert_eq!(ws.expect("error").await["code"], "bad_frame");
    ws.send(json!({ "type": "send", "client_id": "z" })).await;
    assert_eq!(
        ws.expect("error").await["code"],
        "rejected",
        "empty text is refused"
    );
    ws.send(json!({ "type": "launch_missiles" })).await;
    assert_eq!(ws.expect("error").await["code"], "bad_frame");
    ws.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(ws.expect("error").await["code"], "unsupported");
    ws.send(json!({ "type": "send", "client_id": "big", "text": "字".repeat(40_000) }))
        .await;
    assert_eq!(ws.expect("error").await["code"], "frame_too_large");
    ws.send(json!({ "type": "ping" })).await;
    ws.expect("pong").await;

    // Too fast: some frames are refused with rate_limited, and the socket lives on.
    for _ in 0..60 {
        ws.send(json!({ "type": "ping" })).await;
    }
    let frames = ws.drain(Duration::from_millis(300)).await;
    assert!(
        frames.iter().any(|f| f["code"] == "rate_limited"),
        "no rate limit in {} frames",
        frames.len()
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ws.send(json!({ "type": "send", "client_id": "after", "text": "还在吗" }))
        .await;
    assert_eq!(ws.expect("ack").await["seq"], 1);

    // Beyond the transport limit the server closes the connection.
    // (it may cut the connection while the frame is still being sent)
    let _ = ws
        .stream
        .send(Message::Text("x".repeat(2 * 1024 * 1024).into()))
        .await;
    assert!(ws.closed().await);

    // A socket that never says hello is closed.
    let mut silent = Ws::connect(&server.base, "/ws/widget", None, None)
        .await
        .expect("connect");
    silent.send(json!({ "type": "ping" })).await;
    assert_eq!(silent.expect("error").await["code"], "unauthorized");
    assert!(silent.closed().await);
}

async fn upload(
    server: &TestServer,
    token: Option<&str>,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .expect("mime");
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/widget/v1/attachments", server.base))
        .multipart(reqwest::multipart::Form::new().part("file", part));
    if let Some(t) = token {
        req = req.header("x-visitor-token", t);
    }
    let res = req.send().await.expect("upload");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn files_unread_counts_and_ratings(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (inbox, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let token = visitor_token(&server, &public).await;
    let stranger = visitor_token(&server, &public).await;

    // Files: accepted types only, with a visitor token only.
    let png = b"\x89PNG\r\n\x1a\n fake picture bytes".to_vec();
    let (status, file) = upload(&server, Some(&token), "截图.png", "image/png", png.clone()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["filename"], "截图.png");
    assert_eq!(
        upload(
            &server,
            Some(&token),
            "setup.exe",
            "application/x-msdownload",
            vec![0; 10]
        )
        .await
        .0,
        422
    );
    assert_eq!(
        upload(&server, None, "a.png", "image/png", png.clone())
            .await
            .0,
        401
    );

    // Someone else's upload cannot be sent; one's own can.
    let (mut other, _) = widget(&server.base, &stranger, json!({})).await;
    other.send(json!({ "type": "send", "client_id": "steal", "text": "偷图", "attachment_ids": [file["id"]] })).await;
    assert_eq!(other.expect("error").await["code"], "rejected");
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;
    ws.send(json!({ "type": "send", "client_id": "f1", "text": "见截图", "attachment_ids": [file["id"]] })).await;
    let ack = ws.expect("ack").await;
    let cid = ack["conversation_id"].as_str().expect("id").to_string();
    let messages = admin
        .get(&format!("/api/v1/conversations/{cid}/messages"))
        .await
        .ok(200)
        .clone();
    assert_eq!(messages[0]["attachments"][0]["id"], file["id"]);

    // The owner downloads it; another visitor cannot.
    let url = |t: &str| {
        format!(
            "{}/api/widget/v1/attachments/{}?token={t}",
            server.base,
            file["id"].as_str().expect("id")
        )
    };
    let got = reqwest::get(url(&token)).await.expect("download");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), png);
    assert_eq!(
        reqwest::get(url(&stranger))
            .await
            .expect("download")
            .status(),
        404
    );

    // Unread counts follow the agent's read position.
    let unread = |list: &Value| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["id"] == cid.as_str())
            .expect("listed")["unread"]
            .clone()
    };
    let list = admin
        .get(&format!("/api/v1/conversations?inbox_id={inbox}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(unread(&list), 1);
    // The list carries each conversation's latest message.
    let listed = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["id"] == cid.as_str())
        .expect("listed");
    assert_eq!(listed["last_message"]["text"], "见截图");
    assert_eq!(listed["last_message"]["direction"], "incoming");
    assert_eq!(listed["last_message"]["seq"], 1);
    admin
        .post(
            &format!("/api/v1/conversations/{cid}/read"),
            json!({ "seq": 1 }),
        )
        .await
        .ok(204);
    let list = admin
        .get(&format!("/api/v1/conversations?inbox_id={inbox}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(unread(&list), 0);
    ws.send(json!({ "type": "send", "client_id": "f2", "text": "还有一个问题" }))
        .await;
    ws.expect("ack").await;
    let list = admin
        .get(&format!("/api/v1/conversations?inbox_id={inbox}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(unread(&list), 1);

    // Rating: refused while open; asked for after resolution; reported.
    ws.send(json!({ "type": "rate", "conversation_id": cid, "score": 5 }))
        .await;
    assert_eq!(ws.expect("error").await["code"], "rejected");
    admin
        .post(
            &format!("/api/v1/conversations/{cid}/assign"),
            json!({ "assignee_id": admin.agent_id() }),
        )
        .await
        .ok(200);
    admin
        .post(
            &format!("/api/v1/conversations/{cid}/status"),
            json!({ "status": "resolved" }),
        )
        .await
        .ok(200);
    loop {
        let f = ws.expect("widget_conversation").await;
        if f["conversation"]["status"] == "resolved" {
            assert!(f["conversation"]["csat_score"].is_null());
            break;
        }
    }
    ws.send(json!({ "type": "rate", "conversation_id": cid, "score": 9 }))
        .await;
    assert_eq!(ws.expect("error").await["code"], "rejected");
    ws.send(json!({ "type": "rate", "conversation_id": cid, "score": 5, "comment": "很好，谢谢" }))
        .await;
    loop {
        let f = ws.expect("widget_conversation").await;
        if f["conversation"]["csat_score"] == 5 {
            break;
        }
    }
    let by_agent = admin
        .get("/api/v1/reports/csat?by=agent")
        .await
        .ok(200)
        .clone();
    // Asked in the same millisecond as the rating, the report counts it (the
    // default end of the period once excluded it: an empty report).
    assert_eq!(by_agent["lines"][0]["id"], admin.agent_id(), "{by_agent}");
    assert_eq!(by_agent["lines"][0]["average"], 5.0);
    assert_eq!(by_agent["lines"][0]["distribution"], json!([0, 0, 0, 0, 1]));
    let by_inbox = admin
        .get("/api/v1/reports/csat?by=inbox")
        .await
        .ok(200)
        .clone();
    assert_eq!(by_inbox["lines"][0]["id"], inbox.as_str());
    let detail = admin
        .get(&format!("/api/v1/conversations/{cid}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(detail["csat_comment"], "很好，谢谢");

    // After resolution, the customer's next message opens a new conversation.
    ws.send(json!({ "type": "send", "client_id": "f3", "text": "新问题" }))
        .await;
    assert_ne!(ws.expect("ack").await["conversation_id"], cid.as_str());
}

/// A continuity link opens the widget as its contact, with their history;
/// a forged, expired, revoked or other-inbox link opens nothing.
async fn continuity_links_open_an_imported_history(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (inbox, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let (_, other_public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let created = admin
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": inbox,
                "contact": { "name": "李雷", "identities": [{ "kind": "wechat_external_userid", "value": "wm-lilei" }] },
                "message": { "direction": "incoming", "text": "以前在微信问过发货" }
            }),
        )
        .await
        .ok(201)
        .clone();
    let contact = created["conversation"]["contact_id"].clone();
    let inbox_id: uuid::Uuid = inbox.parse().expect("uuid");
    let far = kefu_core::time::now().timestamp() + 30 * 86_400;
    let mut out = Vec::new();
    let n = kefu_app::App::new(server.store.clone())
        .write_links_csv(inbox_id, far, &server.base, &mut out)
        .await
        .expect("links");
    assert_eq!(n, 1, "one contact holds a WeChat identity");
    let csv = String::from_utf8(out).expect("utf-8");
    let row = csv.lines().nth(1).expect("a row");
    assert!(
        row.contains("李雷") && row.contains("wechat_external_userid:wm-lilei"),
        "{row}"
    );
    let url = row.split(',').find(|f| f.contains("/c/")).expect("url");
    let token = url.rsplit("/c/").next().expect("token");
    let page = reqwest::get(url).await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("continue.js"));
    let check = |t: &str| format!("{}/api/widget/v1/link?token={t}", server.base);
    let target: Value = reqwest::get(check(token))
        .await
        .expect("link")
        .json()
        .await
        .expect("json");
    assert_eq!(target["inbox"], public.as_str());

    let (status, body) = session(&server, json!({ "inbox": public, "link": token })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contact_id"], contact);
    assert_eq!(body["verified"], true);
    let (_, welcome) = widget(
        &server.base,
        body["token"].as_str().expect("token"),
        json!({}),
    )
    .await;
    assert_eq!(
        welcome["conversations"].as_array().expect("list").len(),
        1,
        "{welcome}"
    );

    // Another inbox, a forged token, a revoked link: refused.
    let (status, _) = session(&server, json!({ "inbox": other_public, "link": token })).await;
    assert_eq!(status, 401);
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = session(&server, json!({ "inbox": public, "link": forged })).await;
    assert_eq!(status, 401);
    assert_eq!(
        server
            .store
            .revoke_continuity_links(None)
            .await
            .expect("revoke"),
        1
    );
    let (status, _) = session(&server, json!({ "inbox": public, "link": token })).await;
    assert_eq!(status, 401);
    assert_eq!(
        reqwest::get(check(token)).await.expect("link").status(),
        404
    );
    // An expired one.
    let past = kefu_core::time::now().timestamp() - 1;
    let contact_id: uuid::Uuid = contact.as_str().expect("id").parse().expect("uuid");
    let old = kefu_app::App::new(server.store.clone())
        .issue_links(inbox_id, &[contact_id], past, &server.base)
        .await
        .expect("issue");
    let old_token = old[0].rsplit("/c/").next().expect("token");
    let (status, _) = session(&server, json!({ "inbox": public, "link": old_token })).await;
    assert_eq!(status, 401);
}

/// An email reply's delivery state reaches open consoles as
/// `message_updated` frames (queued, then sent or failed with the relay's
/// reason) without polling; with PostgreSQL, a console on another node
/// gets them too.
async fn email_delivery_state_is_pushed(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.state.hub.listening().await;
    let admin = server.admin().await;
    let (_sink, sink_port) = common::mail::Sink::start().await;
    let _mail = common::mail::Mail::start(&server).await;
    let inbox = common::mail::email_inbox(&admin, sink_port).await;
    let mut console = agent(&server.base, &admin).await;
    let mut other_node = None;
    if backend == Backend::Postgres {
        let (node_b, state_b) =
            serve_node(Store::open(&server.url).await.expect("second store")).await;
        other_node = Some((agent(&node_b, &admin).await, state_b));
    }
    for (address, last) in [
        ("wang@customer.example", "sent"),
        ("refuse@customer.example", "failed"),
    ] {
        let (_, reply) = common::mail::ticket_with_reply(
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
        let mut consoles = vec![&mut console];
        if let Some((ws, _)) = other_node.as_mut() {
            consoles.push(ws);
        }
        for (node, ws) in consoles.into_iter().enumerate() {
            let mut seen = Vec::new();
            while seen.last().map(String::as_str) != Some(last) {
                let f = ws.expect("message_updated").await;
                if f["message"]["id"] != reply["id"] {
                    continue;
                }
                assert_eq!(f["inbox_id"], inbox["id"]);
                assert_eq!(f["message"]["text"], "已在处理，三个工作日内到账。");
                let state = &f["message"]["metadata"]["email"];
                if state["status"] == "failed" {
                    assert!(
                        state["error"].as_str().unwrap_or("").contains("550"),
                        "{state}"
                    );
                }
                seen.push(state["status"].as_str().unwrap_or("").to_string());
            }
            // Another node rebuilds each update from its database when the
            // notification arrives, so it may find the reply already past
            // `queued`: it shows the current state, never an older one.
            match node {
                0 => assert_eq!(seen, ["queued", last], "{address}"),
                _ => assert!(
                    seen == ["queued", last] || seen == [last],
                    "{address}: {seen:?}"
                ),
            }
        }
    }
}

/// An agent's upload through the REST API; its id.
async fn agent_upload(c: &Client, name: &str, bytes: &[u8]) -> String {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name(name.to_string())
        .mime_str("application/pdf")
        .expect("mime");
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = c
        .send(
            c.request(reqwest::Method::POST, "/api/v1/attachments")
                .multipart(form),
        )
        .await;
    id(res.ok(201)).to_string()
}

/// Issue #12: an upload is attached only by whoever uploaded it — through
/// the REST API, the agent socket and the widget socket alike, admins
/// included — and a refused attempt leaves the file pending for its owner.
async fn uploads_are_attached_only_by_their_uploader(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let li = server
        .agent_client("li@kefu.test", "小李", Role::Agent)
        .await;
    let wang = server
        .agent_client("wang@kefu.test", "小王", Role::Agent)
        .await;
    let (_, public, _) = widget_inbox(&admin, &[li.agent_id(), wang.agent_id()]).await;
    let token = visitor_token(&server, &public).await;

    // The customer starts a conversation and uploads a file left unsent.
    let (mut visitor, _) = widget(&server.base, &token, json!({})).await;
    visitor
        .send(json!({ "type": "send", "client_id": "v1", "text": "发票开错了" }))
        .await;
    let cid = visitor.expect("ack").await["conversation_id"]
        .as_str()
        .expect("conversation id")
        .to_string();
    let png = b"\x89PNG\r\n\x1a\n \xe5\x8f\x91\xe7\xa5\xa8".to_vec();
    let (status, file) = upload(&server, Some(&token), "发票.png", "image/png", png).await;
    assert_eq!(status, 201, "{file}");
    let customers = id(&file).to_string();
    let lis = agent_upload(&li, "报价单.pdf", b"%PDF-1.4 li").await;
    let wangs = agent_upload(&wang, "合同.pdf", b"%PDF-1.4 wang").await;

    // REST: another agent's file, the customer's file, and (for an admin)
    // an agent's file are all refused, and nothing is written.
    let msgs = format!("/api/v1/conversations/{cid}/messages");
    for (who, file) in [(&li, &wangs), (&li, &customers), (&admin, &lis)] {
        who.post(
            &msgs,
            json!({ "direction": "outgoing", "text": "附件", "attachment_ids": [file] }),
        )
        .await
        .assert_error(422, "validation_failed");
    }

    // The agent socket: the same rule, answered `rejected`.
    let mut console = agent(&server.base, &li).await;
    for (n, file) in [&wangs, &customers].into_iter().enumerate() {
        console
            .send(json!({ "type": "send", "client_id": format!("steal{n}"),
                "conversation_id": cid, "text": "附件", "attachment_ids": [file] }))
            .await;
        let err = console.expect("error").await;
        assert_eq!(err["code"], "rejected", "{err}");
    }
    // The customer cannot send an agent's file either.
    visitor
        .send(
            json!({ "type": "send", "client_id": "v2", "conversation_id": cid,
            "text": "看这个", "attachment_ids": [lis] }),
        )
        .await;
    assert_eq!(visitor.expect("error").await["code"], "rejected");

    // Each owner still sends their own: the refusals linked nothing.
    console
        .send(
            json!({ "type": "send", "client_id": "own", "conversation_id": cid,
            "text": "报价单见附件", "attachment_ids": [lis] }),
        )
        .await;
    assert_eq!(console.expect("ack").await["duplicate"], false);
    wang.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "合同", "attachment_ids": [wangs] }),
    )
    .await
    .ok(201);
    visitor
        .send(
            json!({ "type": "send", "client_id": "v3", "conversation_id": cid,
            "text": "截图", "attachment_ids": [customers] }),
        )
        .await;
    visitor.expect("ack").await;
    let listed = admin.get(&msgs).await.ok(200).clone();
    let attached: Vec<&str> = listed
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["attachments"].as_array().into_iter().flatten())
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(attached, [lis.as_str(), wangs.as_str(), customers.as_str()]);
}

/// Issue #12: visitor tokens are free, so one customer may hold only so
/// many unsent files (count and bytes); the refusal is `upload_quota`
/// (429), nothing of the refused file is kept, and sending frees room.
async fn unsent_uploads_have_a_quota_per_customer(backend: Backend) {
    let mut cfg = common::config();
    cfg.uploads.pending_files_per_contact = 2;
    cfg.uploads.pending_bytes_per_contact = 4096;
    let server = TestServer::start_with(backend, cfg).await;
    let admin = server.admin().await;
    let (_, public, _) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let token = visitor_token(&server, &public).await;
    let shot = |n: u8| [b"\x89PNG\r\n\x1a\n".as_slice(), &[n; 1000]].concat();

    let (status, first) = upload(&server, Some(&token), "1.png", "image/png", shot(1)).await;
    assert_eq!(status, 201, "{first}");
    let (status, _) = upload(&server, Some(&token), "2.png", "image/png", shot(2)).await;
    assert_eq!(status, 201);
    let (status, err) = upload(&server, Some(&token), "3.png", "image/png", shot(3)).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (429, Some("upload_quota")),
        "{err}"
    );

    // Another customer is not affected.
    let stranger = visitor_token(&server, &public).await;
    assert_eq!(
        upload(&server, Some(&stranger), "s.png", "image/png", shot(4))
            .await
            .0,
        201
    );

    // Sending one frees a place, but not room for more bytes than are left.
    let (mut ws, _) = widget(&server.base, &token, json!({})).await;
    ws.send(json!({ "type": "send", "client_id": "f1", "text": "付款截图", "attachment_ids": [first["id"]] }))
        .await;
    ws.expect("ack").await;
    let big = [b"\x89PNG\r\n\x1a\n".as_slice(), &[9; 3500]].concat();
    let (status, err) = upload(&server, Some(&token), "big.png", "image/png", big).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (429, Some("upload_quota")),
        "{err}"
    );
    let (status, _) = upload(&server, Some(&token), "3.png", "image/png", shot(3)).await;
    assert_eq!(status, 201);

    // Refused files left neither records nor blobs.
    let claims = visitor::verify(
        &server.state.visitor_key().await.expect("key"),
        &token,
        kefu_core::time::now().timestamp(),
    )
    .expect("claims");
    assert_eq!(
        server
            .store
            .pending_uploads(claims.c)
            .await
            .expect("pending"),
        (2, 2 * 1008)
    );
    let spooled = std::fs::read_dir(server.dir.path().join("attachments"))
        .expect("blob dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
        .count();
    assert_eq!(spooled, 0, "no spooled file is left behind");
}

/// A read-scoped token opens the agent socket (its upgrade is a GET) and
/// sees events, but every frame that writes — a reply, a note, a read
/// marker, a typing signal — is answered `unauthorized` and changes
/// nothing: no message, no outbox mail, no read position, no signal to
/// other consoles. A write token on the same conversation gets through, so
/// the test would see the mail if it were queued.
async fn read_tokens_cannot_write_through_the_socket(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (sink, sink_port) = common::mail::Sink::start().await;
    let _mail = common::mail::Mail::start(&server).await;
    let inbox = common::mail::email_inbox(&admin, sink_port).await;
    let conv = admin
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&inbox), "subject": "发票", "contact": { "name": "王小明", "email": "wang@customer.example" },
                "message": { "direction": "incoming", "text": "请开发票" } }),
        )
        .await
        .ok(201)["conversation"]
        .clone();
    let cid = id(&conv).to_string();
    let read_token = admin
        .post(
            "/api/v1/tokens",
            json!({ "name": "dashboard", "scope": "read" }),
        )
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut watcher = agent(&server.base, &admin).await;
    let mut ws = Ws::connect(&server.base, "/ws/agent", Some(&read_token), None)
        .await
        .expect("a read token may watch");
    ws.expect("agent_welcome").await;

    for (frame, client_id) in [
        (
            json!({ "type": "send", "client_id": "r1", "conversation_id": cid, "text": "已开好，请查收" }),
            Some("r1"),
        ),
        (
            json!({ "type": "send", "client_id": "n1", "conversation_id": cid, "text": "内部备注", "note": true }),
            Some("n1"),
        ),
        (
            json!({ "type": "read", "conversation_id": cid, "seq": 1 }),
            None,
        ),
        (
            json!({ "type": "typing", "conversation_id": cid, "on": true }),
            None,
        ),
    ] {
        ws.send(frame.clone()).await;
        let err = ws.expect("error").await;
        assert_eq!(err["code"], "unauthorized", "{frame}: {err}");
        assert_eq!(err["client_id"].as_str(), client_id, "{frame}: {err}");
        assert!(ws.pending.iter().all(|f| f["type"] != "ack"), "{frame}");
    }
    // Reading still works on that socket.
    ws.send(json!({ "type": "ping" })).await;
    ws.expect("pong").await;
    ws.send(json!({ "type": "hello", "resume": { cid.clone(): 0 } }))
        .await;
    assert_eq!(ws.expect("message").await["message"]["text"], "请开发票");

    let conv_id: uuid::Uuid = cid.parse().expect("uuid");
    let stored = server
        .store
        .list_messages(conv_id, 0, 100, true)
        .await
        .expect("messages");
    assert_eq!(stored.len(), 1, "only the customer's message: {stored:?}");
    let admin_id: uuid::Uuid = admin.agent_id().parse().expect("uuid");
    let unread = server
        .store
        .unread_counts(admin_id, &[conv_id])
        .await
        .expect("unread");
    assert_eq!(
        unread.get(&conv_id),
        Some(&1),
        "the read marker did not move"
    );
    let seen = watcher.drain(Duration::from_millis(300)).await;
    assert!(
        seen.iter()
            .all(|f| !matches!(f["type"].as_str(), Some("typing" | "read" | "message"))),
        "other consoles heard the read token: {seen:?}"
    );
    let inbox_id: uuid::Uuid = id(&inbox).parse().expect("uuid");
    assert!(
        server
            .store
            .unqueued_email_replies(&[inbox_id], 0, 0, 10)
            .await
            .expect("replies")
            .is_empty()
    );
    // Nothing queued, whenever it would be due (a claim of nothing takes nothing).
    assert!(
        server
            .store
            .claim_due_email(&[inbox_id], i64::MAX / 2, 1)
            .await
            .expect("outbox")
            .is_none()
    );

    // The same reply from a write token is stored and mailed: the one mail.
    watcher
        .send(json!({ "type": "send", "client_id": "w1", "conversation_id": cid, "text": "已开好，请查收" }))
        .await;
    assert_eq!(watcher.expect("ack").await["seq"], 2);
    let mail = sink.mail(0).await;
    assert!(mail.text.contains("已开好，请查收"), "{:?}", mail.text);
    assert_eq!(sink.got.lock().await.len(), 1, "nothing else was sent");
}

/// A spent identifier hash stays spent however it is re-spelled: padded
/// with the whitespace a replay would add (ASCII, tab, newline, full-width
/// space, BOM) it is not a hash at all (401); in upper case it is the same
/// hash (403). A hash first used in upper case is spent for lower case too.
async fn identity_hashes_are_spent_whatever_their_spelling(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, public, secret) = widget_inbox(&admin, &[admin.agent_id()]).await;
    let now = chrono::Utc::now().timestamp();
    let with_hash = |t: i64, hash: String| json!({ "inbox": public, "identifier": "user-42", "timestamp": t, "identifier_hash": hash });
    let hash = visitor::identity_hash(&secret, "user-42", now);

    let (status, first) = session(&server, with_hash(now, hash.clone())).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["verified"], true);
    for padded in [
        format!("{hash} "),
        format!("\t{hash}"),
        format!("{hash}\u{3000}"),
        format!("{hash}\r\n"),
        format!("\u{feff}{hash}"),
        format!(" {hash} "),
    ] {
        let (status, body) = session(&server, with_hash(now, padded.clone())).await;
        assert_eq!(status, 401, "{padded:?} earned {body}");
    }
    let (status, body) = session(&server, with_hash(now, hash.to_ascii_uppercase())).await;
    assert_eq!(status, 403, "upper case is the same hash: {body}");

    // Sites that write upper-case hex are served, once.
    let upper = visitor::identity_hash(&secret, "user-42", now + 1).to_ascii_uppercase();
    let (status, again) = session(&server, with_hash(now + 1, upper)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["contact_id"], first["contact_id"]);
    let lower = visitor::identity_hash(&secret, "user-42", now + 1);
    let (status, _) = session(&server, with_hash(now + 1, lower)).await;
    assert_eq!(status, 403, "spent in upper case, replayed in lower");
}

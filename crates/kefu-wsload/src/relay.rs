//! The ceiling to compare kefu against: a bare tokio-tungstenite server that
//! speaks just enough of kefu's protocol for the same load to drive it, and
//! stores nothing.
//!
//! - `POST /api/widget/v1/session` answers a made-up visitor token (any
//!   inbox); `GET /readyz` answers 200; other HTTP requests 404. One
//!   request per connection (`Connection: close`), parsed by hand: it is
//!   only there so the load's session step works unchanged.
//! - `/ws/widget`: `hello` with any token → `widget_welcome`; `send` → `ack`
//!   (seq counted per socket, one conversation per socket) and a `message`
//!   frame to every agent socket; `ping` → `pong`.
//! - `/ws/agent`: no authentication; `agent_welcome` on connect, then every
//!   message.
//!
//! It keeps kefu's shape where that shapes the cost — one task per socket,
//! fan-out through one `broadcast` channel of 256 (so a lagging agent gets
//! `resync`), 4 KiB read buffers, a ping every 25 s, 10 s write timeout —
//! and drops the rest: database, authentication, rate limits, HTTP
//! framework, events per contact. The ratio of the two is what persistence
//! and the framework cost.

use crate::client::ws_config;
use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, accept_async_with_config};
use uuid::Uuid;

const TOPIC_CAPACITY: usize = 256;
const PING_EVERY: Duration = Duration::from_secs(25);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

struct Hub {
    /// Every message, as the text of its `message` frame.
    agents: broadcast::Sender<Arc<str>>,
    inbox_id: Uuid,
}

type Stream = BufReader<TcpStream>;
type Ws = WebSocketStream<Stream>;

/// Listens on `listen` until SIGINT or SIGTERM.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    // Scripts read the port from this line (with --listen 127.0.0.1:0).
    println!("relay listening on http://{}", listener.local_addr()?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    serve_on(listener, async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await;
    Ok(())
}

/// Serves on `listener` until `shutdown` completes (open sockets are
/// dropped with the runtime).
pub async fn serve_on(listener: TcpListener, shutdown: impl std::future::Future<Output = ()>) {
    let hub = Arc::new(Hub {
        agents: broadcast::channel(TOPIC_CAPACITY).0,
        inbox_id: Uuid::now_v7(),
    });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, hub.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    eprintln!("relay: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut shutdown => return,
        }
    }
}

enum Route {
    Widget,
    Agent,
    Http,
}

async fn connection(stream: TcpStream, hub: Arc<Hub>) {
    let _ = stream.set_nodelay(true);
    // Peek at the request line through a small buffer that the WebSocket
    // handshake then reads on from (a client writes its whole upgrade
    // request at once, so the first read holds the request line).
    let mut stream = BufReader::with_capacity(1024, stream);
    let route = match tokio::time::timeout(HELLO_TIMEOUT, stream.fill_buf()).await {
        Ok(Ok(head)) if head.starts_with(b"GET /ws/widget") => Route::Widget,
        Ok(Ok(head)) if head.starts_with(b"GET /ws/agent") => Route::Agent,
        Ok(Ok(head)) if !head.is_empty() => Route::Http,
        _ => return,
    };
    match route {
        Route::Http => {
            let _ = http(stream).await;
        }
        Route::Widget | Route::Agent => {
            let Ok(ws) = accept_async_with_config(stream, Some(ws_config())).await else {
                return;
            };
            if matches!(route, Route::Widget) {
                widget(ws, &hub).await;
            } else {
                agent(ws, &hub).await;
            }
        }
    }
}

/// One HTTP request, answered and closed.
async fn http(mut stream: Stream) -> anyhow::Result<()> {
    let mut request_line = String::new();
    stream.read_line(&mut request_line).await?;
    let mut length = 0usize;
    for _ in 0..100 {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(64 * 1024)];
    stream.read_exact(&mut body).await?;
    let mut parts = request_line.split_whitespace();
    let (status, answer) = match (parts.next(), parts.next()) {
        (Some("POST"), Some("/api/widget/v1/session")) => (
            "200 OK",
            json!({
                "token": format!("relay.{}", Uuid::now_v7().simple()),
                "contact_id": Uuid::now_v7(),
                "verified": false,
                "expires_at": 0,
            }),
        ),
        (Some("GET"), Some("/readyz" | "/healthz")) => ("200 OK", json!({ "status": "ok" })),
        _ => (
            "404 Not Found",
            json!({ "error": "not_found", "message": "the relay serves only the widget session and /ws/*" }),
        ),
    };
    let answer = answer.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    let inner = stream.get_mut();
    inner.write_all(head.as_bytes()).await?;
    inner.write_all(answer.as_bytes()).await?;
    inner.shutdown().await?;
    Ok(())
}

async fn send(ws: &mut Ws, text: String) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn error(code: &str, message: &str, client_id: Option<&str>) -> String {
    let mut v = json!({ "type": "error", "code": code, "message": message });
    if let Some(c) = client_id {
        v["client_id"] = Value::from(c);
    }
    v.to_string()
}

/// The next text frame as JSON; `Err` once the socket is gone. Pings are
/// answered by tungstenite while reading.
async fn recv(ws: &mut Ws) -> Result<Option<Value>, ()> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).ok()),
            Some(Ok(Message::Binary(_))) => return Ok(None),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(()),
            Some(Ok(_)) => continue,
        }
    }
}

fn now_rfc3339ish() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

async fn widget(mut ws: Ws, hub: &Hub) {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, recv(&mut ws)).await;
    let ok = matches!(&hello, Ok(Ok(Some(v))) if v["type"] == "hello" && v["token"].is_string());
    if !ok {
        let _ = send(
            &mut ws,
            error(
                "unauthorized",
                "the first frame must be hello with a visitor token",
                None,
            ),
        )
        .await;
        return;
    }
    let welcome = json!({
        "type": "widget_welcome",
        "contact_id": Uuid::now_v7(),
        "conversations": [],
        "agents_online": hub.agents.receiver_count() > 0,
    });
    if send(&mut ws, welcome.to_string()).await.is_err() {
        return;
    }
    let conversation_id = Uuid::now_v7();
    let mut seq = 0i64;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let frame = tokio::select! {
            f = recv(&mut ws) => f,
            _ = ping.tick() => {
                let sent = tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Ping(Vec::new().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
                continue;
            }
        };
        let Ok(frame) = frame else { return };
        let reply = match frame.as_ref().and_then(|v| v["type"].as_str()) {
            Some("send") => {
                let v = frame.as_ref().map(|v| v.to_owned()).unwrap_or_default();
                let client_id = v["client_id"].as_str().unwrap_or_default();
                let text = v["text"].as_str().unwrap_or_default();
                if client_id.is_empty() || client_id.len() > 100 {
                    error(
                        "rejected",
                        "client_id: 1 to 100 characters",
                        Some(client_id),
                    )
                } else {
                    seq += 1;
                    let message_id = Uuid::now_v7();
                    let message = json!({
                        "type": "message",
                        "inbox_id": hub.inbox_id,
                        "message": {
                            "id": message_id,
                            "conversation_id": conversation_id,
                            "seq": seq,
                            "direction": "incoming",
                            "sender_kind": "contact",
                            "sender_id": null,
                            "text": text,
                            "html": null,
                            "external_id": format!("w:{client_id}"),
                            "metadata": {},
                            "attachments": [],
                            "created_at": now_rfc3339ish(),
                        }
                    });
                    // No agent socket is not an error.
                    let _ = hub.agents.send(message.to_string().into());
                    json!({
                        "type": "ack",
                        "client_id": client_id,
                        "conversation_id": conversation_id,
                        "message_id": message_id,
                        "seq": seq,
                        "duplicate": false,
                    })
                    .to_string()
                }
            }
            Some("ping") => r#"{"type":"pong"}"#.to_string(),
            Some("typing" | "read") => continue,
            _ => error(
                "bad_frame",
                "the relay knows send, typing, read and ping",
                None,
            ),
        };
        if send(&mut ws, reply).await.is_err() {
            return;
        }
    }
}

async fn agent(mut ws: Ws, hub: &Hub) {
    let mut rx = hub.agents.subscribe();
    let welcome = json!({
        "type": "agent_welcome",
        "agent_id": Uuid::now_v7(),
        "inbox_ids": [hub.inbox_id],
    });
    if send(&mut ws, welcome.to_string()).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let out = tokio::select! {
            f = recv(&mut ws) => match f {
                Err(()) => return,
                Ok(Some(v)) if v["type"] == "ping" => r#"{"type":"pong"}"#.to_string(),
                Ok(_) => continue,
            },
            m = rx.recv() => match m {
                Ok(text) => text.to_string(),
                Err(broadcast::error::RecvError::Lagged(_)) => r#"{"type":"resync"}"#.to_string(),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ping.tick() => {
                let sent = tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::Ping(Vec::new().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
                continue;
            }
        };
        if send(&mut ws, out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::{FlowArgs, run};
    use std::time::Duration;

    /// The whole flow against the relay on 127.0.0.1:0: sessions over
    /// HTTP, welcomes, acks, every message delivered once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flow_runs_against_the_relay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve_on(listener, async move {
            let _ = stopped.await;
        }));
        let passed = run(FlowArgs {
            url: format!("http://{addr}"),
            inboxes: vec!["any".into(), "other".into()],
            agent_token: "any".into(),
            console_tokens: vec!["a".into(), "b".into()],
            list_token: None,
            rooms: 4,
            rates: vec![40.0, 80.0],
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            drain: Duration::from_secs(5),
            consoles: 1,
            list_interval: None,
            p99_bound: Duration::from_secs(5),
            session_concurrency: 2,
            connect_concurrency: 2,
            threads: 1,
            label: "test".into(),
        })
        .await
        .expect("flow");
        assert!(passed, "every step within the bound, nothing lost");
        let _ = stop.send(());
        server.await.expect("relay stops");
    }
}

//! The client side every scenario shares: visitor sessions over HTTP,
//! WebSocket connections from a chosen loopback source address, and the
//! first frames of each socket (`hello` → `widget_welcome`, and
//! `agent_welcome`).
//!
//! Sockets use small buffers (4 KiB reads, writes flushed at once) because
//! one client process holds thousands of them: tungstenite's defaults
//! (128 KiB each way, the read buffer allocated up front) would take
//! about 600 MiB at 5,000 sockets.

use crate::wire::{self, Frame};
use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<TcpStream>;

/// How long the first frames of a socket may take.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);

pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(1024 * 1024))
        .max_frame_size(Some(1024 * 1024))
}

/// Where the server is: its base URL and the socket address behind it.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
    pub addr: SocketAddr,
}

impl Target {
    pub async fn resolve(base: &str) -> anyhow::Result<Target> {
        let url = reqwest::Url::parse(base).with_context(|| format!("--url {base:?}"))?;
        if url.scheme() != "http" {
            bail!("--url must be http://host:port (the load is for loopback servers)");
        }
        let host = url.host_str().context("--url has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        Ok(Target {
            base: base.trim_end_matches('/').to_string(),
            addr,
        })
    }
}

/// Opens a WebSocket on `path`, from `source` when given (a loopback alias
/// such as 127.0.0.2: each source address has its own ~28,000 ephemeral
/// ports), with a Bearer token on the upgrade request when given.
pub async fn connect(
    target: &Target,
    path: &str,
    source: Option<IpAddr>,
    bearer: Option<&str>,
) -> anyhow::Result<Ws> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding to {ip}"))?;
    }
    let stream = socket.connect(target.addr).await.context("TCP connect")?;
    stream.set_nodelay(true)?;
    let mut req = wire::ws_url(&target.base, path).into_client_request()?;
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse()?);
    }
    let (ws, _) = client_async_with_config(req, stream, Some(ws_config()))
        .await
        .map_err(|e| match e {
            tungstenite::Error::Http(res) => anyhow!("upgrade refused: HTTP {}", res.status()),
            other => anyhow!("WebSocket handshake: {other}"),
        })?;
    Ok(ws)
}

/// The next text frame, parsed; control frames are skipped (reading them
/// is what answers the server's pings). `None` once the socket is gone.
pub async fn next_frame(ws: &mut Ws) -> Option<Frame> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => {
                if let Some(f) = Frame::parse(t.as_str()) {
                    return Some(f);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Waits for a frame matching `want`, failing on an `error` frame, a close
/// or the timeout.
async fn expect(ws: &mut Ws, what: &str, want: impl Fn(&Frame) -> bool) -> anyhow::Result<()> {
    let wait = async {
        loop {
            match next_frame(ws).await {
                Some(f) if want(&f) => return Ok(()),
                Some(Frame::Error { code, .. }) => bail!("error frame {code} instead of {what}"),
                Some(_) => continue,
                None => bail!("socket closed before {what}"),
            }
        }
    };
    tokio::time::timeout(WELCOME_TIMEOUT, wait)
        .await
        .map_err(|_| anyhow!("no {what} within {WELCOME_TIMEOUT:?}"))?
}

/// A widget socket that has said `hello` and been welcomed.
pub async fn widget(target: &Target, source: Option<IpAddr>, token: &str) -> anyhow::Result<Ws> {
    let mut ws = connect(target, "/ws/widget", source, None).await?;
    ws.send(Message::Text(wire::hello(token).into())).await?;
    expect(&mut ws, "widget_welcome", |f| *f == Frame::WidgetWelcome).await?;
    Ok(ws)
}

/// An agent socket (Bearer token) that has been welcomed.
pub async fn agent(target: &Target, source: Option<IpAddr>, token: &str) -> anyhow::Result<Ws> {
    let mut ws = connect(target, "/ws/agent", source, Some(token)).await?;
    expect(&mut ws, "agent_welcome", |f| *f == Frame::AgentWelcome).await?;
    Ok(ws)
}

pub fn http_client(source: Option<IpAddr>, pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        // A loopback benchmark must not go through a proxy from the environment.
        .no_proxy()
        .local_address(source)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Creates `n` visitor sessions (`POST /api/widget/v1/session`), `concurrency`
/// at a time, and returns their tokens. A 429 is waited out and retried,
/// and counted in `throttled`: the server's per-IP widget limit is on.
pub async fn sessions(
    http: &reqwest::Client,
    base: &str,
    inbox: &str,
    n: usize,
    concurrency: usize,
    throttled: &AtomicU64,
) -> anyhow::Result<Vec<String>> {
    let url = Arc::new(format!("{base}/api/widget/v1/session"));
    let body = Arc::new(json!({ "inbox": inbox }));
    let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            async move {
                loop {
                    let res = http.post(url.as_str()).json(&*body).send().await?;
                    let status = res.status();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        throttled.fetch_add(1, Ordering::Relaxed);
                        let secs = res
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(1);
                        tokio::time::sleep(Duration::from_secs(secs.clamp(1, 60))).await;
                        continue;
                    }
                    let v: Value = res.json().await.unwrap_or(Value::Null);
                    if !status.is_success() {
                        bail!("POST /api/widget/v1/session: HTTP {status}: {v}");
                    }
                    return v["token"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("session without a token: {v}"));
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// The lines a parent process writes to this child's stdin. At end of input
/// (the parent closed it, or died) the child exits at once, whatever it is
/// doing: a load process must not outlive its driver.
pub fn parent_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use tokio::io::AsyncBufReadExt;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
        std::process::exit(0);
    });
    rx
}

//! The limits every socket lives under: text frames of at most 64 KiB (larger
//! ones get an error frame; beyond 1 MiB the transport closes), a per-socket
//! rate of 20 frames a second with bursts of 40, a ping every 25 s and a close
//! after 75 s of silence, and a 10 s cap on each write so that one slow client
//! holds nothing for long. Buffers are small (4 KiB reads) because idle
//! sockets are most sockets.

use super::protocol::{Inbound, Outbound};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use futures::SinkExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

pub const MAX_FRAME_BYTES: usize = 64 * 1024;
const TRANSPORT_MAX_BYTES: usize = 1024 * 1024;
pub const PING_EVERY: Duration = Duration::from_secs(25);
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Agent sockets receive bursts (every message of their inboxes): frames
/// queued with [`Conn::feed_text`] collect up to 16 KiB and leave in one
/// write at [`Conn::flush`].
pub fn configure_agent(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    configure(ws).write_buffer_size(16 * 1024)
}

/// Buffers sized for idle sockets, which are most of them: frames are small
/// JSON, and a larger one is read in several chunks. Each KiB of read buffer
/// is a KiB per open socket (19,000 sockets: 19 MiB).
pub fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(TRANSPORT_MAX_BYTES)
        .max_message_size(TRANSPORT_MAX_BYTES)
        .max_frame_size(TRANSPORT_MAX_BYTES)
}

/// The socket is gone (closed, failed, too slow or silent too long).
#[derive(Debug)]
pub struct Closed;

pub enum Incoming {
    Frame(Inbound),
    /// Answered already with an error frame; the socket stays open.
    Refused,
}

pub struct Conn {
    socket: WebSocket,
    limiter: DefaultDirectRateLimiter,
    last_heard: Instant,
    _open: OpenSocket,
}

/// Counts open sockets in the metrics for as long as it lives.
struct OpenSocket(prometheus_client::metrics::gauge::Gauge);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Conn {
    pub fn new(socket: WebSocket, gauge: &prometheus_client::metrics::gauge::Gauge) -> Conn {
        gauge.inc();
        let per_sec = NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(40).unwrap_or(NonZeroU32::MIN);
        Conn {
            socket,
            limiter: RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)),
            last_heard: Instant::now(),
            _open: OpenSocket(gauge.clone()),
        }
    }

    pub async fn send(&mut self, frame: &Outbound) -> Result<(), Closed> {
        let msg = Message::Text(frame.to_text().into());
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Closed),
        }
    }

    /// Queues a frame already encoded; [`Conn::flush`] writes what is queued.
    pub async fn feed_text(&mut self, text: &str) -> Result<(), Closed> {
        let msg = Message::Text(text.into());
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.feed(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Closed),
        }
    }

    pub async fn flush(&mut self) -> Result<(), Closed> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Closed),
        }
    }

    pub async fn ping(&mut self) -> Result<(), Closed> {
        if self.last_heard.elapsed() > IDLE_TIMEOUT {
            return Err(Closed);
        }
        match tokio::time::timeout(
            WRITE_TIMEOUT,
            self.socket.send(Message::Ping(Vec::new().into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(Closed),
        }
    }

    /// The next client frame: parsed, or refused with an error frame sent.
    /// Control frames are handled here and never surface.
    pub async fn recv(&mut self) -> Result<Incoming, Closed> {
        loop {
            let msg = match self.socket.recv().await {
                Some(Ok(m)) => m,
                _ => return Err(Closed),
            };
            self.last_heard = Instant::now();
            let text = match msg {
                Message::Text(t) => t,
                Message::Binary(_) => {
                    self.send(&Outbound::error(
                        "unsupported",
                        "binary frames are not supported; send JSON text",
                    ))
                    .await?;
                    return Ok(Incoming::Refused);
                }
                Message::Close(_) => return Err(Closed),
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if self.limiter.check().is_err() {
                self.send(&Outbound::error(
                    "rate_limited",
                    "more than 20 frames a second; slow down and resend",
                ))
                .await?;
                return Ok(Incoming::Refused);
            }
            if text.len() > MAX_FRAME_BYTES {
                self.send(&Outbound::error(
                    "frame_too_large",
                    format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
                ))
                .await?;
                return Ok(Incoming::Refused);
            }
            return match Inbound::parse(text.as_str()) {
                Ok(frame) => Ok(Incoming::Frame(frame)),
                Err(e) => {
                    self.send(&Outbound::error("bad_frame", e)).await?;
                    Ok(Incoming::Refused)
                }
            };
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.socket.send(Message::Close(None)),
        )
        .await;
    }
}

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

//! Sending through an SMTP relay with lettre's Tokio transport (rustls, `ring`).
//!
//! The outbox needs one answer from a failed send: retry later, or give up. So every
//! failure becomes a [`SendError`] with a [`SendErrorKind`]:
//! - `Permanent`: the relay refused *this message* with a 5xx (unknown recipient, policy,
//!   too large); retrying will not help — mark it failed and show the agent why.
//! - `Transient`: a 4xx, a timeout, a refused or dropped connection, a TLS failure — or an
//!   authentication 5xx (530/534/535/538). Those are permanent for the *configuration*,
//!   not for the message: once the admin fixes the password, every queued message should
//!   still go out, so the outbox keeps retrying with backoff instead of dropping mail.

use std::fmt;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::compose::BuiltEmail;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text; only for a relay on loopback or a trusted network.
    None,
    /// STARTTLS required (usually port 587).
    StartTls,
    /// Implicit TLS (usually port 465).
    Tls,
}

/// Relay settings.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Name sent in EHLO; the machine's hostname when `None`.
    pub hello_name: Option<String>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

/// Retry later, or give up; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    Permanent,
    Transient,
}

/// A failed send, classified for the outbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} SMTP failure{}: {message}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct SendError {
    pub kind: SendErrorKind,
    /// The SMTP reply code, when the relay answered.
    pub code: Option<u16>,
    pub message: String,
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        self.kind == SendErrorKind::Permanent
    }

    fn permanent(message: impl Into<String>) -> Self {
        SendError {
            kind: SendErrorKind::Permanent,
            code: None,
            message: message.into(),
        }
    }
}

/// Reply codes that only authentication produces (RFC 4954 §6).
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

/// Maps lettre's error onto the outbox's two choices.
pub fn classify_error(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(u16::from);
    let permanent = e.is_permanent() && !code.is_some_and(|c| AUTH_CODES.contains(&c));
    SendError {
        kind: if permanent {
            SendErrorKind::Permanent
        } else {
            SendErrorKind::Transient
        },
        code,
        message: e.to_string(),
    }
}

/// An SMTP client for one relay. Cheap to clone; connects per message.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpSender {
    /// Fails only on settings that can never work (bad TLS host name).
    pub fn new(config: &SmtpConfig) -> Result<Self, SendError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(config.timeout));
        let tls = |host: &str| {
            TlsParameters::new(host.to_string()).map_err(|e| SendError::permanent(e.to_string()))
        };
        builder = builder.tls(match config.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls(&config.host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(&config.host)?),
        });
        if let (Some(user), Some(pass)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        if let Some(name) = &config.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        Ok(SmtpSender {
            transport: builder.build(),
        })
    }

    /// Sends a message built by [`crate::compose::build`] (or loaded from the outbox).
    pub async fn send(&self, email: &BuiltEmail) -> Result<(), SendError> {
        self.send_raw(&email.envelope_from, &email.recipients, &email.bytes)
            .await
    }

    /// Sends raw bytes with an explicit envelope.
    pub async fn send_raw(&self, from: &str, to: &[String], bytes: &[u8]) -> Result<(), SendError> {
        let bad = |a: &str| SendError::permanent(format!("invalid envelope address {a:?}"));
        let from = match from {
            "" => None,
            f => Some(f.parse().map_err(|_| bad(f))?),
        };
        let to = to
            .iter()
            .map(|t| t.parse().map_err(|_| bad(t)))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(from, to).map_err(|e| SendError::permanent(e.to_string()))?;
        self.transport
            .send_raw(&envelope, bytes)
            .await
            .map(|_| ())
            .map_err(|e| classify_error(&e))
    }
}

//! Inbound SMTP: [`proto`] is the wire format (no I/O), [`server`] the Tokio listener.

pub mod proto;
pub mod server;

pub use server::{
    DeliveryError, Envelope, InboundBody, InboundHandler, InboundMessage, SmtpServerConfig,
    SmtpTls, TlsSetupError, serve,
};

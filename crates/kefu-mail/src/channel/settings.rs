//! `inbox.settings.email`: what an email inbox needs to receive and send.

use crate::compose::{ComposeError, DkimAlgorithm, DkimSigner};
use crate::imap::{AfterDelivery, ImapConfig, ImapSecurity};
use crate::send::{SmtpConfig, SmtpSecurity};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The inbox's address (`support@example.com`); replies carry
    /// `support+TOKEN@example.com` as Reply-To.
    pub address: String,
    /// Display name on outgoing mail.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub imap: Option<ImapSettings>,
    /// The relay that outgoing mail goes through.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// Acknowledge new tickets by mail: `"zh-CN"` or `"en"`.
    #[serde(default)]
    pub auto_ack: Option<String>,
    /// Sign outgoing mail with this DKIM key.
    #[serde(default)]
    pub dkim: Option<DkimSettings>,
}

/// `settings.email.dkim`: the key outgoing mail is signed with, published by
/// the domain's owner at `SELECTOR._domainkey.DOMAIN`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    /// `d=`: usually the domain of the inbox address (DMARC alignment).
    pub domain: String,
    /// `s=`
    pub selector: String,
    /// PEM (RSA: PKCS#1 or PKCS#8; Ed25519: PKCS#8) or, for Ed25519, the
    /// base64 seed. Shown as "********" by the API, like the passwords.
    pub private_key: Redacted,
    /// `rsa` (default) or `ed25519`.
    #[serde(default = "rsa")]
    pub algorithm: String,
}

impl DkimSettings {
    /// The signer, or what is wrong as (field under `settings.email.dkim`, reason).
    pub fn signer(&self) -> Result<DkimSigner, (&'static str, String)> {
        let algorithm = match self.algorithm.as_str() {
            "rsa" => DkimAlgorithm::Rsa,
            "ed25519" => DkimAlgorithm::Ed25519,
            other => return Err(("algorithm", format!("{other:?}: use rsa or ed25519"))),
        };
        DkimSigner::new(&self.selector, &self.domain, &self.private_key.0, algorithm).map_err(|e| {
            let field = match &e {
                ComposeError::DkimName { field, .. } => *field,
                _ => "private_key",
            };
            (field, e.to_string())
        })
    }
}

/// Checks an inbox's settings as the API saves them: for an email inbox, a
/// DKIM key that cannot sign is refused with the field named (the server
/// calls this through a hook the binary installs; it does not depend on
/// kefu-mail). Other settings are checked where they are used.
pub fn check_inbox_settings(
    kind: kefu_core::InboxKind,
    settings: &serde_json::Value,
) -> Result<(), kefu_core::ValidationError> {
    if kind != kefu_core::InboxKind::Email {
        return Ok(());
    }
    let Some(dkim) = settings.pointer("/email/dkim").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let dkim: DkimSettings = serde_json::from_value(dkim.clone())
        .map_err(|e| kefu_core::ValidationError::new("settings.email.dkim", e.to_string()))?;
    dkim.signer().map(|_| ()).map_err(|(field, why)| {
        kefu_core::ValidationError::new(format!("settings.email.dkim.{field}"), why)
    })
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    /// `tls` (default, port 993) or `none` (only for a server on loopback).
    #[serde(default = "tls")]
    pub security: String,
    pub username: String,
    pub password: Redacted,
    #[serde(default = "inbox_folder")]
    pub folder: String,
    /// After a message is stored: `leave` (default), `seen`, or `move:FOLDER`.
    #[serde(default = "leave")]
    pub after: String,
    /// Seconds between polls when the server has no IDLE.
    #[serde(default = "sixty")]
    pub interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default = "starttls")]
    pub security: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Redacted>,
}

/// A password or private key from the settings: read as a plain string,
/// shown by `Debug` as `"<redacted>"`, so no log line or panic message
/// carries it while the settings around it can still derive `Debug`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt("<redacted>", f)
    }
}

fn rsa() -> String {
    "rsa".into()
}
fn tls() -> String {
    "tls".into()
}
fn starttls() -> String {
    "starttls".into()
}
fn inbox_folder() -> String {
    "INBOX".into()
}
fn leave() -> String {
    "leave".into()
}
fn sixty() -> u64 {
    60
}

impl EmailSettings {
    /// The email settings of an inbox, if it has valid ones.
    pub fn of(inbox: &kefu_core::Inbox) -> Result<EmailSettings, String> {
        let raw = inbox
            .settings
            .get("email")
            .ok_or("settings.email is missing")?;
        let s: EmailSettings =
            serde_json::from_value(raw.clone()).map_err(|e| format!("settings.email: {e}"))?;
        if !s.address.contains('@') || s.address.contains('+') {
            return Err("settings.email.address must be local@domain without a '+' tag".into());
        }
        Ok(EmailSettings {
            address: s.address.trim().to_ascii_lowercase(),
            ..s
        })
    }

    /// The domain Message-IDs are made on.
    pub fn domain(&self) -> &str {
        self.address.rsplit('@').next().unwrap_or("localhost")
    }
}

/// The email inbox a form or widget inbox also answers its customers
/// through: `settings.form.reply_email_inbox` or
/// `settings.widget.reply_email_inbox` (the server checks it names an email
/// inbox when the inbox is saved).
pub fn reply_email_inbox(inbox: &kefu_core::Inbox) -> Option<uuid::Uuid> {
    let section = match inbox.kind {
        kefu_core::InboxKind::Form => "form",
        kefu_core::InboxKind::Widget => "widget",
        _ => return None,
    };
    inbox.settings[section]["reply_email_inbox"]
        .as_str()?
        .parse()
        .ok()
}

impl ImapSettings {
    pub fn config(&self) -> Result<ImapConfig, String> {
        let security = match self.security.as_str() {
            "tls" => ImapSecurity::Tls,
            "none" => ImapSecurity::Plain,
            other => return Err(format!("imap.security {other:?}: use tls or none")),
        };
        let after_delivery = match self.after.as_str() {
            "leave" => AfterDelivery::Leave,
            "seen" => AfterDelivery::MarkSeen,
            other => match other.strip_prefix("move:") {
                Some(folder) if !folder.is_empty() => AfterDelivery::MoveTo(folder.into()),
                _ => {
                    return Err(format!(
                        "imap.after {other:?}: use leave, seen or move:FOLDER"
                    ));
                }
            },
        };
        Ok(ImapConfig {
            host: self.host.clone(),
            port: self.port,
            security,
            username: self.username.clone(),
            password: self.password.0.clone(),
            folder: self.folder.clone(),
            after_delivery,
            timeout: Duration::from_secs(30),
        })
    }
}

impl SmtpSettings {
    pub fn config(&self) -> Result<SmtpConfig, String> {
        let security = match self.security.as_str() {
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            "none" => SmtpSecurity::None,
            other => {
                return Err(format!(
                    "smtp.security {other:?}: use starttls, tls or none"
                ));
            }
        };
        Ok(SmtpConfig {
            host: self.host.clone(),
            port: self.port,
            security,
            username: self.username.clone(),
            password: self.password.as_ref().map(|p| p.0.clone()),
            timeout: Duration::from_secs(30),
            hello_name: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_names_the_wrong_field() {
        let cases = [
            ("bad selector;", "example.com", "selector"),
            ("s1", "no-dot", "domain"),
            ("s1", "example.com", "private_key"),
        ];
        for (selector, domain, field) in cases {
            let dkim = DkimSettings {
                domain: domain.into(),
                selector: selector.into(),
                private_key: Redacted("not a key".into()),
                algorithm: "rsa".into(),
            };
            let Err((got, why)) = dkim.signer() else {
                panic!("{selector} {domain}: signed");
            };
            assert_eq!(got, field, "{why}");
            if field == "selector" {
                assert_eq!(why, r#"bad DKIM key: bad selector "bad selector;""#);
            }
        }
    }

    #[test]
    fn debug_hides_passwords_and_keys() {
        let imap: ImapSettings = serde_json::from_value(serde_json::json!({
            "host": "imap.example.com", "port": 993, "username": "u", "password": "imap-secret"
        }))
        .expect("imap");
        let smtp: SmtpSettings = serde_json::from_value(serde_json::json!({
            "host": "smtp.example.com", "port": 587, "password": "smtp-secret"
        }))
        .expect("smtp");
        let dkim: DkimSettings = serde_json::from_value(serde_json::json!({
            "domain": "example.com", "selector": "s1", "private_key": "dkim-secret"
        }))
        .expect("dkim");
        assert_eq!(imap.password.0, "imap-secret");
        let shown = format!("{imap:?} {smtp:?} {dkim:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains(r#"password: "<redacted>""#), "{shown}");
        assert!(shown.contains(r#"password: Some("<redacted>")"#), "{shown}");
        assert!(shown.contains(r#"private_key: "<redacted>""#), "{shown}");
    }
}

//! The HTTP server's section of the configuration (`[server]` in kefu.toml,
//! `KEFU_SERVER__…` in the environment).

use serde::{Deserialize, Serialize};

/// Ten years: longer sessions are no sessions, and a larger number of days
/// would overflow the date arithmetic of a session's expiry.
pub const MAX_SESSION_DAYS: u32 = 3650;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address customers and agents use to reach kefu, for links the
    /// server prints or sends (setup link, widget snippet). Defaults to
    /// `http://` + the listen address.
    pub public_url: Option<String>,
    /// Largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// Largest attachment upload, in bytes.
    pub max_upload_bytes: usize,
    /// How long a login session lasts without being used, in days.
    pub session_days: u32,
    /// Requests that take longer are answered 503 and abandoned.
    pub request_timeout_secs: u64,
    /// A bearer token Prometheus must send for `/metrics` (at least 16
    /// characters). Unset, and without `metrics_listen`, `/metrics` is served
    /// to clients on this host only.
    pub metrics_token: Option<String>,
    /// A separate address for `/metrics` (e.g. an internal interface); the
    /// main listener then has none.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub limits: RateLimits,
    pub uploads: UploadLimits,
}

/// Uploads not (yet) sent in a message. Visitor tokens cost nothing, so
/// without these anyone could fill the disk through the widget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadLimits {
    /// Hours an upload that was never sent is kept before it and its file
    /// are deleted (every node sweeps; each upload is deleted once).
    pub pending_hours: u32,
    /// Unsent uploads one customer (widget contact) may hold at once.
    pub pending_files_per_contact: u32,
    /// Bytes of unsent uploads one customer may hold at once.
    pub pending_bytes_per_contact: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests a second from one client IP (bursts of twice that); 0 = off.
    pub requests_per_second_per_ip: u32,
    /// Login attempts a minute from one IP; 0 = off.
    pub logins_per_minute_per_ip: u32,
    /// Failed logins for one account from one address before that address
    /// must wait before its next attempt on the account (1 s, doubling with
    /// each failure, up to 15 minutes); other addresses — the owner's — are
    /// not refused. Failures from many addresses at once (over ten times
    /// this number in 15 minutes) hold every attempt on the account up to
    /// 5 s instead. 0 = off. (The name is kept from when this was a hard
    /// limit a minute, which let anyone lock an agent out.)
    pub logins_per_minute_per_account: u32,
    /// Widget session and config requests a minute from one IP; 0 = off.
    pub widget_sessions_per_minute_per_ip: u32,
    /// Form submissions (page and JSON API) and status-page replies a
    /// minute from one IP; 0 = off.
    pub form_submissions_per_minute_per_ip: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: None,
            max_json_bytes: 1024 * 1024,
            max_upload_bytes: 25 * 1024 * 1024,
            session_days: 30,
            request_timeout_secs: 30,
            metrics_token: None,
            metrics_listen: None,
            limits: RateLimits::default(),
            uploads: UploadLimits::default(),
        }
    }
}

impl Default for UploadLimits {
    fn default() -> Self {
        // A customer sends a few screenshots or documents at a time; 20
        // files and 50 MiB waiting is plenty, and a day is enough to press
        // "send" after choosing a file.
        UploadLimits {
            pending_hours: 24,
            pending_files_per_contact: 20,
            pending_bytes_per_contact: 50 * 1024 * 1024,
        }
    }
}

impl UploadLimits {
    /// How long an unsent upload is kept.
    pub fn pending_for(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.pending_hours) * 3600)
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            requests_per_second_per_ip: 200,
            logins_per_minute_per_ip: 20,
            logins_per_minute_per_account: 10,
            widget_sessions_per_minute_per_ip: 60,
            form_submissions_per_minute_per_ip: 10,
        }
    }
}

impl ServerConfig {
    /// Problems with the settings, all at once.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(u) = &self.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            p.push(format!(
                "server.public_url {u:?} must start with http:// or https://"
            ));
        }
        if self.max_json_bytes < 1024 {
            p.push("server.max_json_bytes must be at least 1024".into());
        }
        if self.session_days == 0 || self.session_days > MAX_SESSION_DAYS {
            p.push(format!(
                "server.session_days must be 1 to {MAX_SESSION_DAYS}"
            ));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.trim().len() < 16)
        {
            p.push("server.metrics_token must be at least 16 characters".into());
        }
        if self.request_timeout_secs == 0 {
            p.push("server.request_timeout_secs must be at least 1".into());
        }
        if self.uploads.pending_hours == 0 {
            p.push("server.uploads.pending_hours must be at least 1".into());
        }
        p
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

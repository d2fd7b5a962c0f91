//! The HTTP server's section of the configuration (`[server]` in kefu.toml,
//! `KEFU_SERVER__…` in the environment).

use serde::{Deserialize, Serialize};

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
    /// Login attempts a minute for one account; 0 = off.
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
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                p.push(format!(
                    "server.public_url {u:?} must start with http:// or https://"
                ));
            }
        }
        if self.max_json_bytes < 1024 {
            p.push("server.max_json_bytes must be at least 1024".into());
        }
        if self.session_days == 0 {
            p.push("server.session_days must be at least 1".into());
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

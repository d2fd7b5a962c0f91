//! The state every handler gets: the store, attachment blobs, configuration,
//! rate limiters and metrics. Cloning is one `Arc` increment.

use crate::config::ServerConfig;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// Every write goes through it (see kefu-app).
    pub app: kefu_app::App,
    /// For reads.
    pub store: Store,
    pub blobs: Blobs,
    pub config: ServerConfig,
    pub metrics: Arc<Metrics>,
    /// Every request, per client IP.
    pub per_ip: Limiter<IpAddr>,
    /// Login attempts per client IP, and failed logins per account and
    /// address: a password guesser is slowed down whether it spreads over
    /// accounts or over addresses, and cannot lock the owner out.
    pub login_per_ip: Limiter<IpAddr>,
    pub login_guard: crate::limits::LoginGuard,
    /// Widget sessions and config per client IP: anonymous visitors create
    /// contacts, so this is what stops a script from creating millions.
    pub widget_per_ip: Limiter<IpAddr>,
    /// Form submissions and status-page replies per client IP: each one
    /// stores a ticket or a message.
    pub form_per_ip: Limiter<IpAddr>,
    pub hub: Arc<kefu_hub::Hub>,
    /// A channel's check of inbox settings the API saves (the email
    /// channel's refuses a DKIM key it cannot sign with). Installed by the
    /// binary, so the server does not depend on the channel crates.
    inbox_settings_check: std::sync::OnceLock<InboxSettingsCheck>,
}

/// See [`AppState::set_inbox_settings_check`].
pub type InboxSettingsCheck =
    fn(kefu_core::InboxKind, &serde_json::Value) -> Result<(), kefu_core::ValidationError>;

impl AppState {
    pub fn new(store: Store, blobs: Blobs, config: ServerConfig) -> AppState {
        let l = &config.limits;
        let hub = kefu_hub::Hub::start(store.clone());
        AppState(Arc::new(Inner {
            app: kefu_app::App::with_hub(store.clone(), hub.clone()),
            per_ip: Limiter::per_second(
                l.requests_per_second_per_ip,
                l.requests_per_second_per_ip.saturating_mul(2),
            ),
            login_per_ip: Limiter::per_minute(
                l.logins_per_minute_per_ip,
                l.logins_per_minute_per_ip,
            ),
            login_guard: crate::limits::LoginGuard::new(l.logins_per_minute_per_account),
            widget_per_ip: Limiter::per_minute(
                l.widget_sessions_per_minute_per_ip,
                l.widget_sessions_per_minute_per_ip,
            ),
            form_per_ip: Limiter::per_minute(
                l.form_submissions_per_minute_per_ip,
                l.form_submissions_per_minute_per_ip,
            ),
            hub,
            inbox_settings_check: std::sync::OnceLock::new(),
            metrics: Arc::new(Metrics::new()),
            store,
            blobs,
            config,
        }))
    }

    pub async fn visitor_key(&self) -> Result<Vec<u8>, crate::error::ApiError> {
        Ok(self.app.visitor_key().await?)
    }

    /// Installs the check the inbox API runs on settings before saving them
    /// (once; later calls are ignored).
    pub fn set_inbox_settings_check(&self, check: InboxSettingsCheck) {
        let _ = self.inbox_settings_check.set(check);
    }

    /// Runs the installed settings check, if any.
    pub fn check_inbox_settings(
        &self,
        kind: kefu_core::InboxKind,
        settings: &serde_json::Value,
    ) -> Result<(), kefu_core::ValidationError> {
        match self.inbox_settings_check.get() {
            Some(check) => check(kind, settings),
            None => Ok(()),
        }
    }

    pub fn prune_limiters(&self) {
        self.widget_per_ip.prune();
        self.form_per_ip.prune();
        self.per_ip.prune();
        self.login_per_ip.prune();
        self.login_guard.prune(tokio::time::Instant::now());
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

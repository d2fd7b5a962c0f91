//! The email tasks of `kefu serve`: the SMTP listener (when configured), an
//! IMAP poller per inbox that has IMAP settings, and the outbox loop (queue
//! agents' replies, send what is due, file held mail). Email inboxes are
//! re-read every 30 s, so settings changed in the console take effect
//! without a restart.

use super::ingest::{self, FLOOD_WINDOW_MS, Filed};
use super::outbound;
use super::settings::{EmailSettings, ImapSettings, reply_email_inbox};
use crate::imap::{Cursor, ImapHandler, ImapHandlerError, ImapSession};
use crate::send::SmtpSender;
use crate::smtp::{DeliveryError, InboundHandler, InboundMessage, SmtpServerConfig, SmtpTls};
use kefu_core::time::{now, to_millis};
use kefu_core::{Direction, Event, Inbox, InboxKind, SenderKind};
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// How far back replies not yet queued are taken up (after a restart).
const WEEK_MS: i64 = 7 * 86_400_000;
/// The same for widget replies: a restart is caught up, a chat's history is
/// not mailed when its customer leaves an address hours later.
const CHAT_CATCH_UP_MS: i64 = 3_600_000;

#[derive(Debug, Clone)]
pub struct MailServiceConfig {
    /// Where the SMTP listener accepts mail (for MX records or forwarding);
    /// `None` runs none.
    pub smtp_listen: Option<SocketAddr>,
    pub hostname: String,
    pub max_message_bytes: u64,
    /// How often the outbox is looked at without a wake-up.
    pub outbox_interval: Duration,
    /// The listener's certificate: STARTTLS is offered only with one.
    pub tls: Option<SmtpTls>,
}

impl Default for MailServiceConfig {
    fn default() -> Self {
        MailServiceConfig {
            smtp_listen: None,
            hostname: "localhost".into(),
            max_message_bytes: 30 * 1024 * 1024,
            outbox_interval: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// Everything the tasks share.
#[derive(Clone)]
pub struct MailService {
    /// Received mail is filed through it.
    app: kefu_app::App,
    store: Store,
    blobs: Blobs,
    wake: Arc<Notify>,
    /// One outbox round at a time: two would queue and send the same reply twice.
    round: Arc<tokio::sync::Mutex<()>>,
}

impl MailService {
    pub fn new(store: Store, blobs: Blobs) -> MailService {
        MailService {
            app: kefu_app::App::new(store.clone()),
            store,
            blobs,
            wake: Arc::new(Notify::new()),
            round: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Runs until `shutdown` turns true. Returns the SMTP listener's address
    /// once bound (through `bound`), for tests and the startup log.
    pub async fn run(
        self,
        config: MailServiceConfig,
        mut shutdown: watch::Receiver<bool>,
        bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    ) -> std::io::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = config.smtp_listen {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            if let Some(tx) = bound {
                let _ = tx.send(listener.local_addr()?);
            }
            let server = SmtpServerConfig {
                hostname: config.hostname.clone(),
                max_message_bytes: config.max_message_bytes,
                tls: config.tls.clone(),
                ..SmtpServerConfig::default()
            };
            let mut stop = shutdown.clone();
            let handler = Arc::new(self.clone());
            tasks.spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = crate::smtp::serve(listener, server, handler, stopped).await {
                    tracing::error!(error = %e, "SMTP listener stopped");
                }
            });
        }
        tasks.spawn(
            self.clone()
                .outbox_loop(config.outbox_interval, shutdown.clone()),
        );
        tasks.spawn(self.clone().wake_on_replies(shutdown.clone()));
        tasks.spawn(self.clone().pollers(shutdown.clone()));
        let _ = shutdown.wait_for(|s| *s).await;
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Email inboxes with valid settings; others are logged and left out.
    pub async fn inboxes(&self) -> Vec<(Inbox, EmailSettings)> {
        email_inboxes(self.list_inboxes().await)
    }

    /// Where agents' replies in each inbox leave from: an email inbox sends
    /// through itself; a form or widget inbox through the email inbox its
    /// `settings.form.reply_email_inbox` or `settings.widget.reply_email_inbox`
    /// names (when that one is valid).
    pub async fn reply_routes(&self) -> HashMap<Uuid, (Inbox, EmailSettings)> {
        let all = self.list_inboxes().await;
        let linked: Vec<(Uuid, Uuid)> = all
            .iter()
            .filter_map(|i| Some((i.id, reply_email_inbox(i)?)))
            .collect();
        let mut routes: HashMap<Uuid, (Inbox, EmailSettings)> = email_inboxes(all)
            .into_iter()
            .map(|(i, s)| (i.id, (i, s)))
            .collect();
        for (home, email) in linked {
            if let Some(route) = routes.get(&email).cloned() {
                routes.insert(home, route);
            }
        }
        routes
    }

    async fn list_inboxes(&self) -> Vec<Inbox> {
        self.store.list_inboxes(None).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "listing inboxes");
            Vec::new()
        })
    }

    async fn wake_on_replies(self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.store.subscribe();
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                event = events.recv() => match event {
                    Ok(Event::MessageCreated { message, .. })
                        if message.direction == Direction::Outgoing
                            && message.sender_kind == SenderKind::Agent => self.wake.notify_one(),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.wake.notify_one(),
                    Err(_) => return,
                },
            }
        }
    }

    async fn outbox_loop(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.outbox_round().await {
                tracing::warn!(error = %e, "email outbox");
            }
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Queues replies not queued yet, sends what is due, files held mail.
    pub async fn outbox_round(&self) -> Result<(), super::ChannelError> {
        let _one = self.round.lock().await;
        // Keyed by the inbox a conversation lives in (email or form); mail in
        // the outbox and held mail name email inboxes, which route to themselves.
        let inboxes = self.reply_routes().await;
        let at = to_millis(now());
        let ids: Vec<Uuid> = inboxes.keys().copied().collect();
        for (message_id, _, inbox_id) in self
            .store
            .unqueued_email_replies(&ids, at - WEEK_MS, at - CHAT_CATCH_UP_MS, 200)
            .await?
        {
            let Some((inbox, settings)) = inboxes.get(&inbox_id) else {
                continue;
            };
            let message = self.store.message(message_id).await?;
            outbound::queue_reply(&self.store, &self.blobs, inbox, settings, &message).await?;
        }
        self.send_due(&inboxes).await?;
        self.file_held(&inboxes).await
    }

    /// Sends due mail of the inboxes that have a relay, one row at a time,
    /// each claimed first: every node runs this loop, and a claimed row is
    /// sent by its claimer only. Mail of an inbox without a relay is left
    /// unclaimed; it waits for one.
    async fn send_due(
        &self,
        inboxes: &HashMap<Uuid, (Inbox, EmailSettings)>,
    ) -> Result<(), super::ChannelError> {
        // Built before claiming (no connection is made until a send), so
        // nothing is claimed that this node cannot send.
        let senders: HashMap<Uuid, SmtpSender> = inboxes
            .values()
            .filter_map(|(i, s)| {
                let config = s.smtp.as_ref()?.config().ok()?;
                match SmtpSender::new(&config) {
                    Ok(sender) => Some((i.id, sender)),
                    Err(e) => {
                        tracing::warn!(inbox = %i.id, error = %e, "SMTP relay settings: mail waits");
                        None
                    }
                }
            })
            .collect();
        let ids: Vec<Uuid> = senders.keys().copied().collect();
        let lease = outbound::SEND_LEASE.as_millis() as i64;
        for _ in 0..100 {
            let Some(mail) = self
                .store
                .claim_due_email(&ids, to_millis(now()), lease)
                .await?
            else {
                break;
            };
            let Some(sender) = senders.get(&mail.inbox_id) else {
                continue;
            };
            outbound::send_one(&self.store, &self.blobs, sender, &mail).await?;
        }
        Ok(())
    }

    async fn file_held(
        &self,
        inboxes: &HashMap<Uuid, (Inbox, EmailSettings)>,
    ) -> Result<(), super::ChannelError> {
        let at = to_millis(now());
        let cutoff = at - FLOOD_WINDOW_MS;
        // A node that took a message and did not finish filing it for this
        // long has died; another files it.
        let stale = at - outbound::SEND_LEASE.as_millis() as i64;
        for (id, inbox_id, sha256) in self.store.held_inbound_emails(cutoff, stale, 50).await? {
            let Some((inbox, settings)) = inboxes.get(&inbox_id) else {
                continue;
            };
            if !self.store.claim_held_inbound_email(id, at, stale).await? {
                continue;
            }
            let Some(path) = self.blobs.path(&sha256) else {
                continue;
            };
            let raw = tokio::fs::read(path).await?;
            let parsed = tokio::task::spawn_blocking(move || crate::parse::parse(&raw))
                .await
                .map_err(|e| super::ChannelError::Invalid(e.to_string()))?;
            ingest::file(
                &self.app,
                &self.blobs,
                inbox,
                settings,
                id,
                &sha256,
                &parsed,
            )
            .await?;
        }
        Ok(())
    }

    /// One poller per inbox with IMAP settings, restarted when they change.
    async fn pollers(self, mut shutdown: watch::Receiver<bool>) {
        // The settings each poller runs with: a change (password too) restarts it.
        let mut running: HashMap<Uuid, (ImapSettings, watch::Sender<bool>)> = HashMap::new();
        loop {
            let mut seen = Vec::new();
            for (inbox, settings) in self.inboxes().await {
                let Some(imap) = settings.imap.clone() else {
                    continue;
                };
                seen.push(inbox.id);
                let key = imap;
                if running.get(&inbox.id).is_some_and(|(k, _)| *k == key) {
                    continue;
                }
                let (stop, stopped) = watch::channel(false);
                if let Some((_, old)) = running.insert(inbox.id, (key, stop)) {
                    let _ = old.send(true);
                }
                tokio::spawn(self.clone().poll_inbox(inbox, settings, stopped));
            }
            running.retain(|id, (_, stop)| {
                let keep = seen.contains(id);
                if !keep {
                    let _ = stop.send(true);
                }
                keep
            });
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
        for (_, (_, stop)) in running {
            let _ = stop.send(true);
        }
    }

    async fn poll_inbox(
        self,
        inbox: Inbox,
        settings: EmailSettings,
        mut stop: watch::Receiver<bool>,
    ) {
        let Some(Ok(config)) = settings.imap.as_ref().map(|i| i.config()) else {
            return;
        };
        let interval = Duration::from_secs(
            settings
                .imap
                .as_ref()
                .map_or(60, |i| i.interval_secs.max(5)),
        );
        let handler = Filer {
            service: self.clone(),
            inbox: inbox.clone(),
            settings: settings.clone(),
        };
        loop {
            let result = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = self.poll_session(&inbox, &config, &handler, interval) => r,
            };
            if let Err(e) = result {
                tracing::warn!(inbox = %inbox.id, error = %e, "IMAP poll failed; retrying in 30 s");
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }

    /// One connection: poll, then wait (IDLE where offered), poll again…
    async fn poll_session(
        &self,
        inbox: &Inbox,
        config: &crate::imap::ImapConfig,
        handler: &Filer,
        interval: Duration,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut session = ImapSession::connect(config).await?;
        let key = format!("imap_cursor:{}", inbox.id);
        loop {
            let cursor = self
                .store
                .setting(&key)
                .await?
                .and_then(|s| parse_cursor(&s));
            let outcome = session.poll(cursor, handler).await?;
            let next = if outcome.uid_validity_changed {
                Cursor {
                    uid_validity: outcome.cursor.uid_validity,
                    last_uid: 0,
                }
            } else {
                outcome.cursor
            };
            self.store
                .set_setting(&key, &format!("{}:{}", next.uid_validity, next.last_uid))
                .await?;
            if outcome.uid_validity_changed || outcome.stopped.is_some() {
                continue;
            }
            session = session.idle(interval).await?.0;
        }
    }
}

fn parse_cursor(s: &str) -> Option<Cursor> {
    let (v, u) = s.split_once(':')?;
    Some(Cursor {
        uid_validity: v.parse().ok()?,
        last_uid: u.parse().ok()?,
    })
}

/// Files what an IMAP poll hands over.
struct Filer {
    service: MailService,
    inbox: Inbox,
    settings: EmailSettings,
}

impl ImapHandler for Filer {
    async fn handle(&self, _uid: u32, raw: Vec<u8>) -> Result<(), ImapHandlerError> {
        let s = &self.service;
        let raw = Arc::new(raw);
        match ingest::ingest(&s.app, &s.blobs, &self.inbox, &self.settings, raw).await {
            Ok(_) => Ok(()),
            // The raw bytes are stored before anything can fail but the
            // database: try again on the next poll.
            Err(e) => Err(ImapHandlerError::Retry(e.to_string())),
        }
    }
}

impl InboundHandler for MailService {
    async fn accepts(&self, recipient: &str) -> bool {
        let base = base_address(recipient);
        self.inboxes().await.iter().any(|(_, s)| s.address == base)
    }

    async fn deliver(&self, message: InboundMessage) -> Result<(), DeliveryError> {
        // One copy of the message in memory, shared by the blob store and the
        // parser (a 30 MB mail was held three times: read, copied for the
        // parser, copied again by tokio::fs::write).
        let InboundMessage { envelope, body, .. } = message;
        let raw = Arc::new(
            body.into_bytes()
                .await
                .map_err(|e| DeliveryError::Temporary(e.to_string()))?,
        );
        let inboxes = self.inboxes().await;
        let mut done = Vec::new();
        for rcpt in &envelope.rcpt_to {
            let base = base_address(rcpt);
            let Some((inbox, settings)) = inboxes.iter().find(|(_, s)| s.address == base) else {
                continue;
            };
            if done.contains(&inbox.id) {
                continue;
            }
            done.push(inbox.id);
            match ingest::ingest(&self.app, &self.blobs, inbox, settings, raw.clone()).await {
                Ok(
                    Filed::Message { .. }
                    | Filed::Duplicate
                    | Filed::Bounce { .. }
                    | Filed::Held { .. },
                ) => {}
                Err(e) => {
                    tracing::warn!(inbox = %inbox.id, error = %e, "filing received mail");
                    return Err(DeliveryError::Temporary(
                        "could not store the message".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn email_inboxes(all: Vec<Inbox>) -> Vec<(Inbox, EmailSettings)> {
    all.into_iter()
        .filter(|i| i.kind == InboxKind::Email)
        .filter_map(|i| match EmailSettings::of(&i) {
            Ok(s) => Some((i, s)),
            Err(e) => {
                tracing::warn!(inbox = %i.id, "email inbox skipped: {e}");
                None
            }
        })
        .collect()
}

/// `support+token@example.com` → `support@example.com`.
fn base_address(address: &str) -> String {
    let address = address.trim().to_ascii_lowercase();
    match address.split_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(l, _)| l);
            format!("{local}@{domain}")
        }
        None => address,
    }
}

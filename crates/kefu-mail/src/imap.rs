//! Polling a mailbox over IMAP (async-imap on Tokio; rustls with `ring`, or plain text).
//!
//! The caller keeps a [`Cursor`] (UIDVALIDITY and the last UID it stored) and calls
//! [`ImapSession::poll`]. Each new message is fetched with `BODY.PEEK[]`, which never sets
//! `\Seen`, and handed to the caller's [`ImapHandler`]; only after the handler returns `Ok`
//! (the message is stored) is it marked or moved, as [`AfterDelivery`] says. So a crash at
//! any point loses nothing: the next poll resumes from the cursor the caller saved.
//!
//! Messages are fetched one at a time by UID, which bounds memory to one message and
//! lets a handler's refusal of one message ([`ImapHandlerError::Skip`]) leave the rest
//! unaffected. A changed UIDVALIDITY means the server renumbered the folder: old UIDs are
//! meaningless, so nothing is fetched and the outcome says so; the caller resets.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use futures::TryStreamExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

/// Transport security for IMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    /// Plain text: loopback tests or a trusted network only.
    Plain,
    /// Implicit TLS (port 993), verified against the Mozilla roots (webpki-roots).
    Tls,
}

/// What to do with a message once the handler stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterDelivery {
    /// Nothing: the cursor alone tracks progress; the mailbox looks untouched.
    Leave,
    /// Set `\Seen`, so people reading the same mailbox see it was handled.
    MarkSeen,
    /// Move to this folder (MOVE, or COPY + `\Deleted` + EXPUNGE without it).
    MoveTo(String),
}

/// Connection settings for one mailbox.
#[derive(Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub security: ImapSecurity,
    pub username: String,
    pub password: String,
    /// Folder to poll, usually `INBOX`.
    pub folder: String,
    pub after_delivery: AfterDelivery,
    /// Limit for connecting and for each command.
    pub timeout: Duration,
}

impl fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("folder", &self.folder)
            .field("after_delivery", &self.after_delivery)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where the caller got to in a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub uid_validity: u32,
    /// Highest UID handled (delivered or skipped); 0 before the first message.
    pub last_uid: u32,
}

/// The handler's verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapHandlerError {
    /// Never accept this one (e.g. the caller stored it as unparsable, or policy): the
    /// cursor moves past it, it is left unmarked in the mailbox, and polling goes on.
    #[error("skipped: {0}")]
    Skip(String),
    /// Could not store it now (database down): stop here; the next poll starts with it.
    #[error("retry later: {0}")]
    Retry(String),
}

/// Receives each new message.
pub trait ImapHandler: Send + Sync {
    /// Stores `raw` (the complete message). Mark/move happens only after `Ok`.
    fn handle(
        &self,
        uid: u32,
        raw: Vec<u8>,
    ) -> impl Future<Output = Result<(), ImapHandlerError>> + Send;
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Save this: pass it to the next poll.
    pub cursor: Cursor,
    /// True when the folder's UIDVALIDITY differs from the cursor's: nothing was fetched,
    /// `cursor` is `(new validity, 0)`, and the caller decides how to resync.
    pub uid_validity_changed: bool,
    /// UIDNEXT reported by the server, e.g. to start a new cursor at "only new mail".
    pub uid_next: Option<u32>,
    pub delivered: Vec<u32>,
    pub skipped: Vec<(u32, String)>,
    /// Set when the handler asked to retry; the poll stopped at that message.
    pub stopped: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect: {0}")]
    Connect(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("login failed: {0}")]
    Login(String),
    #[error("IMAP: {0}")]
    Protocol(String),
    #[error("timed out during {0}")]
    Timeout(&'static str),
    #[error("server does not support UIDs (no UIDVALIDITY)")]
    NoUidValidity,
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        ImapError::Protocol(e.to_string())
    }
}

/// Plain TCP or TLS; one type so the session type does not depend on the setting.
pub type ImapStream = crate::MaybeTls<TlsStream<TcpStream>>;

/// Runs `fut` with the configured timeout, naming the step in the error.
async fn limited<T, E: Into<ImapError>>(
    limit: Duration,
    step: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match timeout(limit, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ImapError::Timeout(step)),
    }
}

fn tls_connector() -> Result<TlsConnector, ImapError> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // The provider is named, not taken from the process default: with another crate
    // pulling in aws-lc-rs, relying on the default could panic at run time.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ImapError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A logged-in session on the configured folder.
pub struct ImapSession {
    session: Session<ImapStream>,
    config: ImapConfig,
    can_move: bool,
    can_uidplus: bool,
    can_idle: bool,
}

impl ImapSession {
    /// Connects, logs in and reads capabilities.
    pub async fn connect(config: &ImapConfig) -> Result<Self, ImapError> {
        let limit = config.timeout;
        let tcp = limited(
            limit,
            "connect",
            TcpStream::connect((config.host.as_str(), config.port)),
        )
        .await?;
        let stream = match config.security {
            ImapSecurity::Plain => ImapStream::Plain(tcp),
            ImapSecurity::Tls => {
                let name = ServerName::try_from(config.host.clone())
                    .map_err(|e| ImapError::Tls(e.to_string()))?;
                let tls =
                    limited(limit, "TLS handshake", tls_connector()?.connect(name, tcp)).await?;
                ImapStream::Tls(Box::new(tls))
            }
        };
        let mut client = async_imap::Client::new(stream);
        let greeting = limited(limit, "greeting", client.read_response()).await?;
        if greeting.is_none() {
            return Err(ImapError::Protocol(
                "connection closed before greeting".into(),
            ));
        }
        let login = client.login(&config.username, &config.password);
        let mut session = match timeout(limit, login).await {
            Err(_) => return Err(ImapError::Timeout("login")),
            Ok(Err((e, _))) => return Err(ImapError::Login(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let caps = limited(limit, "capability", session.capabilities()).await?;
        Ok(ImapSession {
            can_move: caps.has_str("MOVE"),
            can_uidplus: caps.has_str("UIDPLUS"),
            can_idle: caps.has_str("IDLE"),
            session,
            config: config.clone(),
        })
    }

    /// Whether the server advertised IDLE.
    pub fn supports_idle(&self) -> bool {
        self.can_idle
    }

    /// The underlying async-imap session, for what this type does not wrap.
    pub fn raw(&mut self) -> &mut Session<ImapStream> {
        &mut self.session
    }

    /// Fetches and hands over every message after `cursor` (all of them when `None`).
    pub async fn poll<H: ImapHandler>(
        &mut self,
        cursor: Option<Cursor>,
        handler: &H,
    ) -> Result<PollOutcome, ImapError> {
        let limit = self.config.timeout;
        let folder = self.config.folder.clone();
        let mailbox = limited(limit, "select", self.session.select(&folder)).await?;
        let validity = mailbox.uid_validity.ok_or(ImapError::NoUidValidity)?;
        let mut out = PollOutcome {
            cursor: Cursor {
                uid_validity: validity,
                last_uid: 0,
            },
            uid_next: mailbox.uid_next,
            ..PollOutcome::default()
        };
        match cursor {
            Some(c) if c.uid_validity != validity => {
                out.uid_validity_changed = true;
                return Ok(out);
            }
            Some(c) => out.cursor.last_uid = c.last_uid,
            None => {}
        }
        for uid in self.new_uids(out.cursor.last_uid).await? {
            let Some(raw) = self.fetch(uid).await? else {
                // Expunged between SEARCH and FETCH: nothing to deliver.
                out.cursor.last_uid = uid;
                continue;
            };
            match handler.handle(uid, raw).await {
                Ok(()) => {
                    self.after_delivery(uid).await?;
                    out.delivered.push(uid);
                }
                Err(ImapHandlerError::Skip(why)) => out.skipped.push((uid, why)),
                Err(ImapHandlerError::Retry(why)) => {
                    out.stopped = Some(why);
                    break;
                }
            }
            out.cursor.last_uid = uid;
        }
        Ok(out)
    }

    /// UIDs above `last`, ascending. `UID n:*` always matches the newest message even
    /// when its UID is below n, hence the filter.
    async fn new_uids(&mut self, last: u32) -> Result<Vec<u32>, ImapError> {
        let query = format!("UID {}:*", last.saturating_add(1));
        let found = limited(
            self.config.timeout,
            "search",
            self.session.uid_search(query),
        )
        .await?;
        let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > last).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    async fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        let limit = self.config.timeout;
        let session = &mut self.session;
        let fetches: Vec<_> = limited(limit, "fetch", async {
            session
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(fetches
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body())
            .map(<[u8]>::to_vec))
    }

    async fn store(&mut self, uid: u32, flags: &str) -> Result<(), ImapError> {
        let limit = self.config.timeout;
        let session = &mut self.session;
        limited(limit, "store", async {
            session
                .uid_store(uid.to_string(), flags)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(())
    }

    async fn after_delivery(&mut self, uid: u32) -> Result<(), ImapError> {
        let limit = self.config.timeout;
        match self.config.after_delivery.clone() {
            AfterDelivery::Leave => Ok(()),
            AfterDelivery::MarkSeen => self.store(uid, "+FLAGS.SILENT (\\Seen)").await,
            AfterDelivery::MoveTo(folder) if self.can_move => {
                limited(limit, "move", self.session.uid_mv(uid.to_string(), &folder)).await
            }
            AfterDelivery::MoveTo(folder) => {
                limited(
                    limit,
                    "copy",
                    self.session.uid_copy(uid.to_string(), &folder),
                )
                .await?;
                self.store(uid, "+FLAGS.SILENT (\\Deleted)").await?;
                let session = &mut self.session;
                let uidplus = self.can_uidplus;
                limited(limit, "expunge", async {
                    // Without UIDPLUS, EXPUNGE also removes other \Deleted messages; that
                    // is what the user asked of a folder they let us empty.
                    if uidplus {
                        session
                            .uid_expunge(uid.to_string())
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    } else {
                        session.expunge().await?.try_collect::<Vec<_>>().await
                    }
                })
                .await?;
                Ok(())
            }
        }
    }

    /// Waits up to `max` for the server to report a change in the selected folder with
    /// IDLE (RFC 2177). Returns `true` on a change; `false` on timeout or when the server
    /// lacks IDLE (then the caller just polls on a timer). Call after [`Self::poll`].
    pub async fn idle(self, max: Duration) -> Result<(Self, bool), ImapError> {
        if !self.can_idle {
            tokio::time::sleep(max).await;
            return Ok((self, false));
        }
        let ImapSession {
            session,
            config,
            can_move,
            can_uidplus,
            can_idle,
        } = self;
        let mut handle = session.idle();
        limited(config.timeout, "idle", handle.init()).await?;
        let (wait, _stop) = handle.wait_with_timeout(max);
        let changed = matches!(
            wait.await?,
            async_imap::extensions::idle::IdleResponse::NewData(_)
        );
        let session = limited(config.timeout, "idle done", handle.done()).await?;
        Ok((
            ImapSession {
                session,
                config,
                can_move,
                can_uidplus,
                can_idle,
            },
            changed,
        ))
    }

    /// Says goodbye to the server; errors are irrelevant at that point.
    pub async fn logout(mut self) {
        let _ = timeout(self.config.timeout, self.session.logout()).await;
    }
}

/// Connect, poll once, log out: for callers that poll on a timer.
pub async fn poll_once<H: ImapHandler>(
    config: &ImapConfig,
    cursor: Option<Cursor>,
    handler: &H,
) -> Result<PollOutcome, ImapError> {
    let mut session = ImapSession::connect(config).await?;
    let outcome = session.poll(cursor, handler).await;
    session.logout().await;
    outcome
}

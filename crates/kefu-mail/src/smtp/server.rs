//! The inbound SMTP listener (for MX or forwarding), on Tokio.
//!
//! Written here rather than with mailin-embedded: mailin runs a thread per connection and
//! calls a synchronous handler, while kefu must await the store before answering `250`.
//! The rule that matters: **250 only after [`InboundHandler::deliver`] returned `Ok`**, so
//! a message is stored before the sender forgets it; 451 on a temporary failure makes
//! the sending MTA retry later.
//!
//! STARTTLS (RFC 3207) is offered only when the listener has a certificate
//! ([`SmtpTls`]); after the handshake the session forgets everything it knew (EHLO name,
//! transaction) and drops any bytes the client sent behind the command in clear text, so
//! nothing injected before the handshake survives into the encrypted session.
//!
//! Memory stays bounded whatever the client sends: command lines are capped, DATA is
//! decoded chunk by chunk ([`DotDecoder`]) into a [`Spool`] that moves to a temporary file
//! past `memory_threshold`, and the size limit (advertised as `SIZE`) is enforced while
//! streaming. Connections are capped by a semaphore; every read has a timeout.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempPath;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::proto::{Command, DotDecoder, Reply, parse_command};

/// Listener settings. Every field has a safe default.
#[derive(Debug, Clone)]
pub struct SmtpServerConfig {
    /// Our name in the greeting and EHLO reply.
    pub hostname: String,
    /// Largest accepted message, advertised as `SIZE`.
    pub max_message_bytes: u64,
    /// Simultaneous connections; more are answered `421` and closed.
    pub max_connections: usize,
    pub max_recipients: usize,
    /// Waiting for a command (RFC 5321 §4.5.3.2 suggests 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for the next chunk of DATA.
    pub data_timeout: Duration,
    /// DATA above this many bytes goes to a temporary file instead of memory.
    pub memory_threshold: usize,
    /// Where temporary files go; the system temp dir when `None`.
    pub spool_dir: Option<PathBuf>,
    /// Permanent refusals (5xx: unknown or malformed commands, over-long lines, commands
    /// out of sequence, refused recipients or messages) after which the session is
    /// answered `421` and closed.
    pub max_errors: usize,
    /// The certificate for STARTTLS; without one STARTTLS is neither advertised nor
    /// accepted.
    pub tls: Option<SmtpTls>,
}

/// The listener's certificate and key, ready for STARTTLS handshakes. `Debug` shows
/// neither.
#[derive(Clone)]
pub struct SmtpTls(TlsAcceptor);

impl fmt::Debug for SmtpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmtpTls(<certificate>)")
    }
}

/// Why a certificate or key could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the certificate in {} does not go with the key in {}: {reason}", cert.display(), key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl SmtpTls {
    /// Reads a PEM certificate chain (leaf first) and its private key. Uses rustls with
    /// the `ring` provider explicitly, the one every other TLS user in the workspace
    /// has, rather than the process default, which is ambiguous when two are linked.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<SmtpTls, TlsSetupError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsSetupError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsSetupError::NoCertificate {
                path: cert.to_path_buf(),
            });
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsSetupError::Key {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mismatch = |e: rustls::Error| TlsSetupError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(mismatch)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(mismatch)?;
        Ok(SmtpTls(TlsAcceptor::from(Arc::new(config))))
    }
}

impl Default for SmtpServerConfig {
    fn default() -> Self {
        SmtpServerConfig {
            hostname: "localhost".into(),
            max_message_bytes: 35 * 1024 * 1024,
            max_connections: 64,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            memory_threshold: 1024 * 1024,
            spool_dir: None,
            max_errors: 10,
            tls: None,
        }
    }
}

/// The SMTP envelope of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub peer: SocketAddr,
    /// The name given in HELO/EHLO.
    pub helo: String,
    /// MAIL FROM; empty for the null sender (bounces).
    pub mail_from: String,
    /// Accepted RCPT TO addresses, lower case.
    pub rcpt_to: Vec<String>,
    /// Whether the message came over STARTTLS.
    pub tls: bool,
}

/// A received message's bytes: in memory when small, otherwise in a temporary file that
/// is deleted when this is dropped (call `TempPath::persist` to keep it).
#[derive(Debug)]
pub enum InboundBody {
    Memory(Vec<u8>),
    File(TempPath),
}

/// One accepted message.
#[derive(Debug)]
pub struct InboundMessage {
    pub envelope: Envelope,
    pub body: InboundBody,
    /// Size in bytes after dot-unstuffing.
    pub size: u64,
}

impl InboundMessage {
    /// A copy of the whole message in memory (reads the file if it was spooled). A
    /// handler that owns the message should use [`InboundBody::into_bytes`] instead,
    /// which never holds the bytes twice.
    pub async fn read_all(&self) -> io::Result<Vec<u8>> {
        match &self.body {
            InboundBody::Memory(v) => Ok(v.clone()),
            InboundBody::File(path) => tokio::fs::read(path).await,
        }
    }
}

impl InboundBody {
    /// The whole message in memory: the buffer itself when it was small, the spooled
    /// file read once (and then deleted) when it was not.
    pub async fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            InboundBody::Memory(v) => Ok(v),
            InboundBody::File(path) => tokio::fs::read(&path).await,
        }
    }
}

/// Why the handler did not store a message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later (store down): answered `451`.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Never (policy): answered `554`.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// What the caller provides: which recipients it serves and where messages go.
pub trait InboundHandler: Send + Sync + 'static {
    /// Called for each RCPT TO (lower case). `false` → `550 5.1.1`.
    fn accepts(&self, recipient: &str) -> impl Future<Output = bool> + Send;
    /// Stores the message. The client hears `250` only after this returns `Ok`.
    fn deliver(
        &self,
        message: InboundMessage,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// Longest command line accepted (RFC 5321 says 512; extensions make it longer).
const MAX_LINE: usize = 4096;

/// Accepts connections until `shutdown` completes, then stops accepting, tells idle
/// sessions `421` and waits for sessions in DATA or delivery to finish.
pub async fn serve<H: InboundHandler>(
    listener: TcpListener,
    config: SmtpServerConfig,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // EMFILE and friends: log and go on rather than kill the listener.
                Err(e) => {
                    tracing::warn!(error = %e, "smtp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        while sessions.try_join_next().is_some() {}
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            sessions.spawn(refuse_busy(stream));
            continue;
        };
        let (config, handler, stop) = (config.clone(), handler.clone(), stop_rx.clone());
        sessions.spawn(async move {
            let _permit = permit;
            if let Err(e) = Session::new(stream, peer, config, stop)
                .run(&*handler)
                .await
            {
                tracing::debug!(%peer, error = %e, "smtp session ended");
            }
        });
    }
    let _ = stop_tx.send(true);
    while sessions.join_next().await.is_some() {}
    Ok(())
}

async fn refuse_busy(mut stream: TcpStream) {
    let reply = Reply::new(421, "4.3.2 Too busy, try again later");
    let _ = timeout(Duration::from_secs(5), stream.write_all(&reply.to_bytes())).await;
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads one line, never holding more than `max` bytes of it.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long {
            line.extend_from_slice(&buf[..take]);
            if line.len() > max {
                too_long = true;
                line = Vec::new();
            }
        }
        r.consume(take);
        if found {
            break;
        }
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(Line::Text(line))
}

/// DATA bytes, in memory up to a threshold and in a temporary file after it.
pub struct Spool {
    memory: Vec<u8>,
    file: Option<(tokio::fs::File, TempPath)>,
    len: u64,
    threshold: usize,
    dir: Option<PathBuf>,
}

impl Spool {
    pub fn new(threshold: usize, dir: Option<PathBuf>) -> Self {
        Spool {
            memory: Vec::new(),
            file: None,
            len: 0,
            threshold,
            dir,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        if self.file.is_none() && self.memory.len() + data.len() <= self.threshold {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        if self.file.is_none() {
            let dir = self.dir.clone();
            let named = tokio::task::spawn_blocking(move || {
                tempfile::Builder::new()
                    .prefix("kefu-smtp-")
                    .tempfile_in(dir.unwrap_or_else(std::env::temp_dir))
            })
            .await
            .map_err(io::Error::other)??;
            let (file, path) = named.into_parts();
            let mut file = tokio::fs::File::from_std(file);
            file.write_all(&std::mem::take(&mut self.memory)).await?;
            self.file = Some((file, path));
        }
        if let Some((file, _)) = &mut self.file {
            file.write_all(data).await?;
        }
        Ok(())
    }

    pub async fn finish(self) -> io::Result<InboundBody> {
        match self.file {
            None => Ok(InboundBody::Memory(self.memory)),
            Some((mut file, path)) => {
                file.flush().await?;
                file.sync_all().await?;
                Ok(InboundBody::File(path))
            }
        }
    }
}

/// The connection, before and after STARTTLS.
type Conn = crate::MaybeTls<tokio_rustls::server::TlsStream<TcpStream>>;

/// One client connection. Fields hold the transaction in progress (RFC 5321 §3.3).
struct Session {
    reader: BufReader<Conn>,
    peer: SocketAddr,
    config: Arc<SmtpServerConfig>,
    stop: watch::Receiver<bool>,
    /// Set by HELO/EHLO; MAIL is refused before it.
    helo: Option<String>,
    /// Set by MAIL; `None` outside a transaction.
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    /// 5xx replies sent so far; the session ends at `max_errors`.
    errors: usize,
}

impl Session {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        config: Arc<SmtpServerConfig>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Session {
            reader: BufReader::new(Conn::Plain(stream)),
            peer,
            config,
            stop,
            helo: None,
            mail_from: None,
            rcpt_to: Vec::new(),
            errors: 0,
        }
    }

    /// Sends a reply. Every permanent refusal (5xx) counts towards `max_errors`, whatever
    /// produced it — unknown command, bad syntax, over-long line, bad sequence, refused
    /// recipient or message — so no kind of bad input can be repeated without end.
    /// Counting here rather than at each refusal keeps a new refusal from being forgotten.
    /// 4xx replies do not count: they report our own condition (storage down, shutting
    /// down) or ask the client to come back for the rest (452 too many recipients, which
    /// a well-behaved MTA pipelining many RCPTs receives once per extra recipient).
    async fn reply(&mut self, code: u16, text: impl Into<String>) -> io::Result<()> {
        if code >= 500 {
            self.errors += 1;
        }
        let stream = self.reader.get_mut();
        stream.write_all(&Reply::new(code, text).to_bytes()).await?;
        stream.flush().await
    }

    async fn run<H: InboundHandler>(mut self, handler: &H) -> io::Result<()> {
        let greeting = format!("{} ESMTP kefu", self.config.hostname);
        self.reply(220, greeting).await?;
        loop {
            let wait = self.config.command_timeout;
            let line = tokio::select! {
                line = timeout(wait, read_line(&mut self.reader, MAX_LINE)) => Some(line),
                _ = self.stop.wait_for(|s| *s) => None,
            };
            let Some(line) = line else {
                return self.reply(421, "4.3.2 Shutting down").await;
            };
            let go_on = match line {
                Err(_) => return self.reply(421, "4.4.2 Timeout").await,
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Line::Eof)) => return Ok(()),
                Ok(Ok(Line::TooLong)) => {
                    self.reply(500, "5.5.2 Line too long").await?;
                    true
                }
                Ok(Ok(Line::Text(line))) => match parse_command(&line) {
                    Ok(command) => self.command(command, handler).await?,
                    Err(reply) => {
                        self.reply(reply.code, reply.text).await?;
                        true
                    }
                },
            };
            if !go_on {
                return Ok(());
            }
            // Checked after every line, whichever way it was handled: the limit once
            // sat behind the parsed-command path only, and 5,000 `BOGUS` lines got
            // 5,000 replies.
            if self.errors >= self.config.max_errors {
                return self.reply(421, "4.7.0 Too many errors").await;
            }
        }
    }

    /// Handles one command; `false` ends the session.
    async fn command<H: InboundHandler>(&mut self, cmd: Command, handler: &H) -> io::Result<bool> {
        match cmd {
            Command::Ehlo(name) => {
                self.reset(Some(name));
                let starttls = if self.can_starttls() {
                    "\nSTARTTLS"
                } else {
                    ""
                };
                let text = format!(
                    "{}\nSIZE {}\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES{starttls}",
                    self.config.hostname, self.config.max_message_bytes
                );
                self.reply(250, text).await?;
            }
            Command::Helo(name) => {
                self.reset(Some(name));
                let text = self.config.hostname.clone();
                self.reply(250, text).await?;
            }
            Command::Mail { from, size } => self.mail(from, size).await?,
            Command::Rcpt { to } => self.rcpt(to, handler).await?,
            Command::Data => self.data(handler).await?,
            Command::Rset => {
                self.reset(self.helo.clone());
                self.reply(250, "2.0.0 OK").await?;
            }
            Command::Noop => self.reply(250, "2.0.0 OK").await?,
            Command::Vrfy => self.reply(252, "2.5.0 Cannot verify, send mail").await?,
            Command::StartTls => return self.starttls().await,
            Command::Quit => {
                self.reply(221, "2.0.0 Bye").await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn can_starttls(&self) -> bool {
        self.config.tls.is_some() && matches!(self.reader.get_ref(), Conn::Plain(_))
    }

    /// RFC 3207: `220`, the handshake, then a session that knows nothing from before it.
    /// `false` ends the session (failed handshake).
    async fn starttls(&mut self) -> io::Result<bool> {
        let Some(tls) = self.config.tls.clone() else {
            self.reply(502, "5.5.1 STARTTLS not available").await?;
            return Ok(true);
        };
        if !matches!(self.reader.get_ref(), Conn::Plain(_)) {
            self.reply(503, "5.5.1 TLS already active").await?;
            return Ok(true);
        }
        if self.mail_from.is_some() {
            self.reply(503, "5.5.1 STARTTLS not allowed inside a transaction")
                .await?;
            return Ok(true);
        }
        self.reply(220, "2.0.0 Ready to start TLS").await?;
        // into_inner drops whatever the client pipelined behind STARTTLS in clear text
        // (the CVE-2011-0411 injection): RFC 3207 forbids it and it must not be
        // taken as coming over TLS.
        let reader = std::mem::replace(&mut self.reader, BufReader::new(Conn::Upgrading));
        let Conn::Plain(tcp) = reader.into_inner() else {
            return Ok(false);
        };
        match timeout(self.config.command_timeout, tls.0.accept(tcp)).await {
            Ok(Ok(stream)) => {
                self.reader = BufReader::new(Conn::Tls(Box::new(stream)));
                self.reset(None);
                Ok(true)
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "STARTTLS handshake failed");
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }

    fn reset(&mut self, helo: Option<String>) {
        self.helo = helo;
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    async fn mail(&mut self, from: String, size: Option<u64>) -> io::Result<()> {
        if self.helo.is_none() {
            return self.reply(503, "5.5.1 Say EHLO first").await;
        }
        if self.mail_from.is_some() {
            return self.reply(503, "5.5.1 Nested MAIL").await;
        }
        if size.is_some_and(|s| s > self.config.max_message_bytes) {
            return self.reply(552, "5.3.4 Message too big").await;
        }
        self.mail_from = Some(from.to_lowercase());
        self.reply(250, "2.1.0 OK").await
    }

    async fn rcpt<H: InboundHandler>(&mut self, to: String, handler: &H) -> io::Result<()> {
        if self.mail_from.is_none() {
            return self.reply(503, "5.5.1 Need MAIL first").await;
        }
        if self.rcpt_to.len() >= self.config.max_recipients {
            return self.reply(452, "4.5.3 Too many recipients").await;
        }
        let to = to.to_lowercase();
        if !handler.accepts(&to).await {
            return self.reply(550, "5.1.1 No such mailbox here").await;
        }
        self.rcpt_to.push(to);
        self.reply(250, "2.1.5 OK").await
    }

    async fn data<H: InboundHandler>(&mut self, handler: &H) -> io::Result<()> {
        if self.rcpt_to.is_empty() {
            return self.reply(503, "5.5.1 Need RCPT first").await;
        }
        self.reply(354, "End data with <CR><LF>.<CR><LF>").await?;
        let Some(spool) = self.receive_data().await? else {
            self.reset(self.helo.clone());
            let limit = self.config.max_message_bytes;
            return self
                .reply(552, format!("5.3.4 Message exceeds {limit} bytes"))
                .await;
        };
        let message = InboundMessage {
            size: spool.len(),
            body: spool.finish().await?,
            envelope: Envelope {
                peer: self.peer,
                helo: self.helo.clone().unwrap_or_default(),
                mail_from: self.mail_from.clone().unwrap_or_default(),
                rcpt_to: std::mem::take(&mut self.rcpt_to),
                tls: matches!(self.reader.get_ref(), Conn::Tls(_)),
            },
        };
        self.reset(self.helo.clone());
        match handler.deliver(message).await {
            Ok(()) => self.reply(250, "2.0.0 Stored").await,
            Err(DeliveryError::Temporary(e)) => {
                tracing::warn!(peer = %self.peer, error = %e, "inbound mail not stored");
                self.reply(451, "4.3.0 Temporary failure, try again later")
                    .await
            }
            Err(DeliveryError::Rejected(e)) => self.reply(554, format!("5.7.1 {e}")).await,
        }
    }

    /// Streams DATA into a spool. `None` when the message was over the size limit (the
    /// rest is read and discarded so the session stays in sync).
    async fn receive_data(&mut self) -> io::Result<Option<Spool>> {
        let mut decoder = DotDecoder::default();
        let mut spool = Spool::new(self.config.memory_threshold, self.config.spool_dir.clone());
        let mut chunk = Vec::with_capacity(16 * 1024);
        let mut over = false;
        while !decoder.is_done() {
            let buf = match timeout(self.config.data_timeout, self.reader.fill_buf()).await {
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "DATA timeout")),
                Ok(r) => r?,
            };
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            chunk.clear();
            let used = decoder.feed(buf, &mut chunk);
            self.reader.consume(used);
            over = over || spool.len() + chunk.len() as u64 > self.config.max_message_bytes;
            if !over {
                spool.write(&chunk).await?;
            }
        }
        Ok((!over).then_some(spool))
    }
}

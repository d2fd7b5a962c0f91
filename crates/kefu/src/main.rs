//! The `kefu` binary: wiring only. It parses the command line, loads the
//! configuration, opens the store and hands over to the library crates.

mod admin;
mod config;
mod import;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, Overrides, ensure_dir};
use kefu_server::AppState;
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// mimalloc instead of glibc's malloc: an import allocates on its reader
/// thread and frees on others, and glibc's arena locks and consolidation
/// took a fifth of the reader's time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kefu",
    version,
    about = "Self-hosted omnichannel customer support (客服)"
)]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API, web UI, background jobs).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080] [env: KEFU_LISTEN]
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage agents and API tokens from the shell.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Import history from another system.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// Show the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets masked).
    Print,
}

fn main() -> anyhow::Result<()> {
    config::private_files();
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen } => *listen,
        _ => None,
    };
    let config = Config::load(&cli.overrides, listen)?;
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => serve(config).await,
            Command::Migrate => {
                open_store(&config).await?.close().await;
                println!(
                    "migrations applied to {}",
                    config::mask_url_password(&config.database_url())
                );
                Ok(())
            }
            Command::Admin { command } => {
                let store = open_store(&config).await?;
                let result = admin::run(&store, command).await;
                store.close().await;
                result
            }
            Command::Import { command } => {
                let store = open_store(&config).await?;
                let blobs = Blobs::new(config.attachments_dir());
                let public_url = config
                    .server
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.listen));
                let code = import::run(&store, &blobs, command, &public_url).await;
                store.close().await;
                match code? {
                    0 => Ok(()),
                    code => std::process::exit(code),
                }
            }
            Command::Config {
                command: ConfigCommand::Print,
            } => {
                print!("{}", config.to_masked_toml()?);
                Ok(())
            }
        }
    })
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG_FILTER")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_none() {
        config::secure_data_dir(&config.data_dir)?;
    }
    Store::open(&config.database_url()).await.with_context(|| {
        format!(
            "opening the database {}",
            config::mask_url_password(&config.database_url())
        )
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let store = open_store(&config).await?;
    ensure_dir(&config.attachments_dir())?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let blobs = Blobs::new(config.attachments_dir());
    let (stop_mail, mail) = start_mail(&config, &store, &blobs).await?;
    // With port 0 the system picks one; links must carry the real one.
    let bound = listener.local_addr()?;
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    tracing::info!(listen = %bound, database = ?store.backend(), "kefu is serving");
    if let Some(link) = kefu_app::setup::prepare(&store, &public_url).await? {
        println!(
            "No admin yet. Open this one-time link to create the first admin:\n\n    {link}\n"
        );
    }
    // Printed last: scripts and tests wait for this line.
    println!("kefu is listening on {public_url}");
    // Links the server writes (widget snippet, setup link) need an absolute base.
    let mut server_config = config.server.clone();
    server_config.public_url = Some(public_url);
    let state = AppState::new(store.clone(), blobs, server_config);
    state.set_inbox_settings_check(kefu_mail::channel::check_inbox_settings);
    // /metrics on an address of its own, when configured; it stops with
    // the process.
    if let Some(addr) = config.server.metrics_listen {
        let metrics_listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for metrics on {addr}"))?;
        tracing::info!(listen = %addr, "metrics are served");
        tokio::spawn(kefu_server::serve_metrics(
            metrics_listener,
            state.clone(),
            std::future::pending(),
        ));
    }
    kefu_server::serve(listener, state, shutdown).await?;
    let _ = stop_mail.send(true);
    match tokio::time::timeout(std::time::Duration::from_secs(5), mail).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the email channel stopped"),
        Ok(_) => {}
        Err(_) => tracing::warn!("the email channel did not stop within 5 s"),
    }
    // Closing waits for connections to come back; sockets still open hold
    // theirs only until the runtime ends, so give them a moment, not forever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), store.close()).await;
    tracing::info!("kefu stopped");
    Ok(())
}

/// Starts the email channel (listener, pollers, outbox); fails when the
/// SMTP listener cannot bind, before kefu says it is listening.
async fn start_mail(
    config: &Config,
    store: &Store,
    blobs: &Blobs,
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    use kefu_mail::channel::{MailService, MailServiceConfig};
    let tls = match (&config.mail.tls_cert, &config.mail.tls_key) {
        (Some(cert), Some(key)) => Some(
            kefu_mail::smtp::SmtpTls::from_pem_files(cert, key)
                .map_err(|e| anyhow::anyhow!("mail.tls_cert / mail.tls_key: {e}"))?,
        ),
        _ => None,
    };
    if tls.is_some() && config.mail.smtp_listen.is_none() {
        tracing::warn!("mail.tls_cert is set but mail.smtp_listen is not: no listener uses it");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let mail_config = MailServiceConfig {
        tls,
        smtp_listen: config.mail.smtp_listen,
        hostname: config.mail.hostname.clone(),
        max_message_bytes: config.mail.max_message_mb.saturating_mul(1024 * 1024),
        ..Default::default()
    };
    let task = tokio::spawn(MailService::new(store.clone(), blobs.clone()).run(
        mail_config,
        stopped,
        Some(bound_tx),
    ));
    if let Some(addr) = config.mail.smtp_listen {
        match bound_rx.await {
            // Before the listening line, which scripts wait for.
            Ok(bound) => println!("kefu receives mail on smtp://{bound}"),
            Err(_) => {
                let why = match task.await {
                    Ok(Err(e)) => e.to_string(),
                    _ => "stopped".into(),
                };
                anyhow::bail!("SMTP listener on {addr}: {why}");
            }
        }
    }
    Ok((stop, task))
}

/// Registers for SIGTERM and Ctrl-C now (so a signal that arrives while
/// starting up is not lost to the default handler) and completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

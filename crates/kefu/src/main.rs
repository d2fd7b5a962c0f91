//! The `kefu` binary: wiring only. It parses the command line, loads the
//! configuration, opens the store and hands over to the library crates.

mod admin;
mod config;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, Overrides, ensure_dir};
use kefu_server::AppState;
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use std::net::SocketAddr;
use tokio::net::TcpListener;

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
        ensure_dir(&config.data_dir)?;
    }
    Store::open(&config.database_url()).await.with_context(|| {
        format!(
            "opening the database {}",
            config::mask_url_password(&config.database_url())
        )
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    ensure_dir(&config.attachments_dir())?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let public_url = config.public_url();
    tracing::info!(listen = %config.listen, database = ?store.backend(), "kefu is serving");
    println!("kefu is listening on {public_url}");
    if let Some(link) = kefu_server::setup::prepare(&store, &public_url).await? {
        println!(
            "\nNo admin yet. Open this one-time link to create the first admin:\n\n    {link}\n"
        );
    }
    let state = AppState::new(
        store.clone(),
        Blobs::new(config.attachments_dir()),
        config.server.clone(),
    );
    kefu_server::serve(listener, state, shutdown_signal()).await?;
    store.close().await;
    tracing::info!("kefu stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

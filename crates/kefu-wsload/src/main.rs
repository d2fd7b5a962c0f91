//! `kefu-wsload`: the WebSocket load behind `benches/ws.sh`, and the bare
//! relay server it is compared against.
//!
//! - `idle` ([`idle`]): as many idle widget sockets as asked, from several
//!   processes and loopback source addresses; the server's memory per socket.
//! - `flow` ([`flow`]): customer → agent latency at a fixed message rate
//!   (open loop), optionally with many agent consoles and the conversation
//!   list timed alongside, or a ramp of rates to find a ceiling.
//! - `relay-server` ([`relay`]): the same protocol subset in memory.
//!
//! [`client`] holds the connection code both load modes share, [`wire`] the
//! frames and parsers (no I/O), [`stats`] percentiles and /proc readings.
//! Every measurement prints a readable line and one JSON line (starting
//! with `{`), as kefu-bench does.

mod client;
mod consoles;
mod flow;
mod idle;
mod relay;
mod stats;
mod wire;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A list of rates as one argument (clap would take a `Vec` field as
/// repeated arguments).
type Rates = Vec<f64>;

#[derive(Parser)]
#[command(
    name = "kefu-wsload",
    version,
    about = "WebSocket load for kefu, and a bare relay server to compare with"
)]
struct Cli {
    /// Worker threads of this process's runtime [default: 1 for the load,
    /// the number of cores for relay-server].
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open idle widget sockets (hello, welcome) and hold them; report the
    /// server's memory per socket.
    Idle(Idle),
    /// Customer → agent delivery latency at a fixed total rate.
    Flow(Flow),
    /// A bare in-memory server speaking the same protocol subset.
    RelayServer(RelayServer),
    /// One load process of `idle` (started by it; steered over stdin).
    #[command(hide = true)]
    IdleChild(IdleChild),
    /// The agent consoles of `flow --consoles` (started by it).
    #[command(hide = true)]
    ConsolesChild(ConsolesChild),
}

#[derive(Args)]
struct ConsolesChild {
    #[arg(long)]
    url: String,
    #[arg(long, env = "KEFU_WSLOAD_TOKEN", hide_env_values = true)]
    agent_token: String,
    #[arg(
        long,
        env = "KEFU_WSLOAD_CONSOLE_TOKENS",
        hide_env_values = true,
        value_delimiter = ',',
        default_value = ""
    )]
    console_tokens: Vec<String>,
    #[arg(long)]
    count: usize,
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
}

#[derive(Args)]
struct Common {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// The widget inbox's public token (`data-inbox` of the embed snippet);
    /// for flow, a comma-separated list spreads the rooms over several inboxes.
    #[arg(long)]
    inbox: String,
    /// Visitor sessions created at once over HTTP.
    #[arg(long, default_value_t = 16)]
    session_concurrency: usize,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Name of this run in the output (e.g. kefu, relay).
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args)]
struct Idle {
    #[command(flatten)]
    common: Common,
    /// Widget sockets in all.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Load processes sharing the sockets (each has its own open-file limit).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// First loopback source address, e.g. 127.0.0.2; process k uses
    /// --source-ip-count addresses from start + k × count. Unset: the
    /// system picks (127.0.0.1).
    #[arg(long)]
    source_ip_start: Option<IpAddr>,
    /// Source addresses per process, used in turn.
    #[arg(long, default_value_t = 1)]
    source_ip_count: u32,
    /// How long to hold the sockets once all are open (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = wire::parse_duration)]
    hold: Duration,
    /// The server's process id, to read its memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Args)]
struct IdleChild {
    #[arg(long)]
    url: String,
    #[arg(long)]
    inbox: String,
    #[arg(long)]
    sockets: usize,
    #[arg(long)]
    source_ip_start: Option<IpAddr>,
    #[arg(long, default_value_t = 1)]
    source_ip_count: u32,
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    #[arg(long, default_value_t = 16)]
    session_concurrency: usize,
}

#[derive(Args)]
struct Flow {
    #[command(flatten)]
    common: Common,
    /// API token for the agent sockets (and the conversation list); an
    /// admin's token sees every inbox.
    #[arg(
        long,
        env = "KEFU_WSLOAD_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    agent_token: String,
    /// A file of agent API tokens, one per line: the other consoles
    /// authenticate with them in turn (agents who see only their own
    /// inboxes), instead of with --agent-token.
    #[arg(long)]
    console_tokens: Option<std::path::PathBuf>,
    /// API token of the timed list calls (default: --agent-token), e.g. an
    /// agent's, whose list holds only the inboxes they are a member of.
    #[arg(long, env = "KEFU_WSLOAD_LIST_TOKEN", hide_env_values = true)]
    list_token: Option<String>,
    /// Visitors, each with a socket and a conversation. kefu allows 20
    /// frames a second per socket: keep rate / rooms well under that.
    #[arg(long, default_value_t = 200)]
    rooms: usize,
    /// Messages a second in all; a list (1000,2000,4000) runs a ramp that
    /// stops at the first step over --p99-bound or losing messages.
    #[arg(long, default_value = "1000", value_parser = wire::parse_rates)]
    rate: Rates,
    /// Length of each step, warm-up included.
    #[arg(long, default_value = "30s", value_parser = wire::parse_duration)]
    duration: Duration,
    /// Start of each step not measured.
    #[arg(long, default_value = "5s", value_parser = wire::parse_duration)]
    warmup: Duration,
    /// How long to wait for stragglers after the last send.
    #[arg(long, default_value = "5s", value_parser = wire::parse_duration)]
    drain: Duration,
    /// Agent sockets in all (the first one measures; the others only count
    /// what they receive, in a child process).
    #[arg(long, default_value_t = 1)]
    consoles: usize,
    /// Time GET /api/v1/conversations?limit=50 every this often during the
    /// measured part of each step (e.g. 100ms); unset: not measured.
    #[arg(long, value_parser = wire::parse_duration)]
    list_interval: Option<Duration>,
    /// A step passes when its delivery p99 is within this.
    #[arg(long, default_value = "100ms", value_parser = wire::parse_duration)]
    p99_bound: Duration,
}

#[derive(Args)]
struct RelayServer {
    /// Address to listen on; the chosen one is printed
    /// (`relay listening on http://…`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let default_threads = match cli.command {
        Command::RelayServer(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        _ => 1,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.unwrap_or(default_threads).max(1))
        .enable_all()
        .build()?;
    let threads = cli.threads.unwrap_or(1).max(1);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Idle(a) => {
                idle::run(idle::IdleArgs {
                    url: a.common.url,
                    inbox: a.common.inbox,
                    sockets: a.sockets,
                    processes: a.processes,
                    source_ip_start: a.source_ip_start,
                    source_ip_count: a.source_ip_count,
                    connect_concurrency: a.common.connect_concurrency,
                    session_concurrency: a.common.session_concurrency,
                    hold: a.hold,
                    server_pid: a.server_pid,
                    threads,
                    label: a.common.label,
                })
                .await
            }
            Command::IdleChild(a) => {
                idle::child(idle::ChildArgs {
                    url: a.url,
                    inbox: a.inbox,
                    sockets: a.sockets,
                    source_ip_start: a.source_ip_start,
                    source_ip_count: a.source_ip_count,
                    connect_concurrency: a.connect_concurrency,
                    session_concurrency: a.session_concurrency,
                })
                .await
            }
            Command::Flow(a) => {
                if a.agent_token.is_empty() {
                    anyhow::bail!("flow needs --agent-token or KEFU_WSLOAD_TOKEN");
                }
                let console_tokens = match &a.console_tokens {
                    Some(path) => std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect(),
                    None => Vec::new(),
                };
                flow::run(flow::FlowArgs {
                    url: a.common.url,
                    inboxes: a.common.inbox.split(',').map(str::to_string).collect(),
                    agent_token: a.agent_token,
                    console_tokens,
                    list_token: a.list_token,
                    rooms: a.rooms,
                    rates: a.rate,
                    duration: a.duration,
                    warmup: a.warmup,
                    drain: a.drain,
                    consoles: a.consoles.max(1),
                    list_interval: a.list_interval,
                    p99_bound: a.p99_bound,
                    session_concurrency: a.common.session_concurrency,
                    connect_concurrency: a.common.connect_concurrency,
                    threads,
                    label: a.common.label,
                })
                .await
                .map(|_| ())
            }
            Command::ConsolesChild(a) => {
                let tokens: Vec<String> = a
                    .console_tokens
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .collect();
                consoles::child(
                    &a.url,
                    &a.agent_token,
                    &tokens,
                    a.count,
                    a.connect_concurrency,
                )
                .await
            }
            Command::RelayServer(a) => relay::serve(a.listen).await,
        }
    });
    // Without waiting for blocking threads: a child's read of its stdin
    // (tokio reads stdin on one) only ends when the parent closes it.
    runtime.shutdown_background();
    result
}

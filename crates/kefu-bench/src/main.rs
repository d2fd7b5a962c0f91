//! `kefu-bench`: the load generator and seeder behind `benches/run.sh`.
//!
//! - `create`: POST /api/v1/conversations (new contact + first message) under
//!   a closed loop of N concurrent clients; reports req/s and latencies.
//! - `list`: GET the newest 50 conversations of one inbox, the same way.
//! - `seed`: bulk-inserts conversations straight into the database (`seed`
//!   module) so that `list` can be measured at a million.
//! - `smtp`: mail into kefu's SMTP listener over many connections, then a
//!   count through the API that all of it was stored (`smtp` module;
//!   benches/mail.sh).
//!
//! Every measurement prints a line for people and one JSON line (the lines
//! starting with `{`) for scripts. Modules: `load` (HTTP), `seed` (SQL),
//! `stats` (percentiles, output), `text` (Chinese test data).

mod load;
mod seed;
mod smtp;
mod stats;
mod text;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "kefu-bench",
    version,
    about = "Benchmarks of a running kefu server"
)]
struct Cli {
    /// Worker threads of the benchmark's own runtime. On a small machine the
    /// client shares the CPU with the server: keep it small.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create conversations with a first message over HTTP.
    Create(Load),
    /// List the newest 50 conversations of an inbox over HTTP.
    List(Load),
    /// Bulk-insert test conversations directly into the database.
    Seed(Seed),
    /// Send mail to kefu's SMTP listener (loopback only) and check through
    /// the API that each one became a conversation.
    Smtp(Smtp),
}

#[derive(Args)]
struct Smtp {
    /// The listener, e.g. 127.0.0.1:2525 (loopback only).
    #[arg(long)]
    smtp: std::net::SocketAddr,
    /// The email inbox's address.
    #[arg(long)]
    to: String,
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Connections sending at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Size of each message in bytes.
    #[arg(long, default_value_t = 50 * 1024)]
    bytes: usize,
    /// With --url, --token and --inbox: afterwards, wait until the inbox
    /// holds this many conversations (what it held before plus --messages).
    #[arg(long)]
    expect_conversations: Option<usize>,
    #[arg(long)]
    url: Option<String>,
    #[arg(long, env = "KEFU_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long)]
    inbox: Option<Uuid>,
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args)]
struct Load {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// API token (write scope for `create`, read for `list`).
    #[arg(long, env = "KEFU_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// The inbox to create in or list.
    #[arg(long)]
    inbox: Uuid,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured requests.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests sent first and not measured.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Name of this run in the output (e.g. the backend).
    #[arg(long, default_value = "")]
    label: String,
    /// Seed of the generated names and texts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct Seed {
    /// sqlite://PATH or postgres://… (the server's database).
    #[arg(long)]
    database_url: String,
    /// The inbox the benchmark lists; it must exist.
    #[arg(long)]
    inbox: Uuid,
    /// Conversations the database should hold afterwards (those present,
    /// e.g. from `create`, count towards it).
    #[arg(long, default_value_t = 1_000_000)]
    conversations: u64,
    /// New inboxes that share the conversations with --inbox, so that the
    /// list has to pick its inbox's out of the others'.
    #[arg(long, default_value_t = 4)]
    other_inboxes: u32,
    /// Rows per multi-row INSERT.
    #[arg(long, default_value_t = 1000)]
    rows_per_statement: usize,
    /// Conversations per transaction.
    #[arg(long, default_value_t = 50_000)]
    per_transaction: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "")]
    label: String,
}

impl Load {
    fn into_args(self) -> load::LoadArgs {
        load::LoadArgs {
            url: self.url,
            token: self.token,
            inbox: self.inbox,
            concurrency: self.concurrency.max(1),
            requests: self.requests,
            warmup: self.warmup,
            label: self.label,
            seed: self.seed,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Create(l) => {
                load::preflight(&l.url, &l.token).await?;
                load::create(l.into_args()).await?.print();
            }
            Command::List(l) => {
                load::preflight(&l.url, &l.token).await?;
                load::list(l.into_args()).await?.print();
            }
            Command::Smtp(s) => {
                let report = smtp::send(smtp::SmtpArgs {
                    addr: s.smtp,
                    to: s.to,
                    messages: s.messages,
                    concurrency: s.concurrency.max(1),
                    bytes: s.bytes,
                    label: s.label,
                })
                .await?;
                report.print();
                if let (Some(want), Some(url), Some(token), Some(inbox)) =
                    (s.expect_conversations, s.url, s.token, s.inbox)
                {
                    let started = std::time::Instant::now();
                    loop {
                        let have = smtp::count_conversations(&url, &token, inbox).await?;
                        if have >= want {
                            println!("stored: {have} conversations in the inbox");
                            break;
                        }
                        if started.elapsed() > std::time::Duration::from_secs(120) {
                            anyhow::bail!("only {have} of {want} conversations after 120 s");
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
            Command::Seed(s) => {
                seed::run(seed::SeedArgs {
                    database_url: s.database_url,
                    inbox: s.inbox,
                    conversations: s.conversations,
                    other_inboxes: s.other_inboxes,
                    rows_per_statement: s.rows_per_statement,
                    per_transaction: s.per_transaction,
                    seed: s.seed,
                    label: s.label,
                })
                .await?
            }
        }
        Ok(())
    })
}

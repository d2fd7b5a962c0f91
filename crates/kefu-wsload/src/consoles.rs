//! Agent consoles for `flow --consoles`: many `/ws/agent` sockets that only
//! count what they receive, in a child process of their own. At 1,000
//! messages a second, 500 consoles receive about a million frames a
//! second; in the measuring process they would starve the observer and the
//! timed list requests, and the figures would show the client's queue
//! rather than the server's.
//!
//! The parent steers the child over stdin/stdout, one line at a time: the
//! child says `ready` once its sockets are welcomed, answers `count` with
//! its counters, and exits on end of input.

use crate::client::{self, Target};
use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_tungstenite::tungstenite::Message;

/// What the consoles received so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub frames: u64,
    pub resyncs: u64,
    pub closed: u64,
}

impl Counts {
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            frames: self.frames.saturating_sub(earlier.frames),
            resyncs: self.resyncs.saturating_sub(earlier.resyncs),
            closed: self.closed,
        }
    }
}

/// The parent's handle on the consoles process.
pub struct Consoles {
    _proc: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Consoles {
    /// Starts the process and waits until its `count` sockets are welcomed.
    pub async fn start(
        url: &str,
        token: &str,
        more_tokens: &[String],
        count: usize,
        connect_concurrency: usize,
        threads: usize,
    ) -> anyhow::Result<Consoles> {
        let mut proc = tokio::process::Command::new(std::env::current_exe()?)
            .arg("--threads")
            .arg(threads.to_string())
            .arg("consoles-child")
            .arg("--url")
            .arg(url)
            .arg("--count")
            .arg(count.to_string())
            .arg("--connect-concurrency")
            .arg(connect_concurrency.to_string())
            // Not on the command line, where `ps` would show them.
            .env("KEFU_WSLOAD_TOKEN", token)
            .env("KEFU_WSLOAD_CONSOLE_TOKENS", more_tokens.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the consoles process")?;
        let stdin = proc.stdin.take().context("consoles stdin")?;
        let stdout = proc.stdout.take().context("consoles stdout")?;
        let mut c = Consoles {
            _proc: proc,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = c.expect("ready").await?;
        if ready["failed"].as_u64().unwrap_or(0) > 0 {
            bail!(
                "{} of {count} agent consoles failed to connect (first: {})",
                ready["failed"],
                ready["first_error"]
            );
        }
        Ok(c)
    }

    async fn expect(&mut self, event: &str) -> anyhow::Result<Value> {
        loop {
            let line = self
                .lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow!("the consoles process exited before {event}"))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["event"] == event {
                return Ok(v);
            }
            if v["event"] == "error" {
                bail!("consoles process: {}", v["message"]);
            }
        }
    }

    pub async fn counts(&mut self) -> anyhow::Result<Counts> {
        self.stdin.write_all(b"count\n").await?;
        self.stdin.flush().await?;
        let v = self.expect("count").await?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(Counts {
            frames: n("frames"),
            resyncs: n("resyncs"),
            closed: n("closed"),
        })
    }
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    resyncs: AtomicU64,
    closed: AtomicU64,
}

/// One console: counts frames without parsing them.
async fn console(mut ws: client::Ws, counters: Arc<Counters>) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                counters.frames.fetch_add(1, Ordering::Relaxed);
                if t.as_str().contains("\"type\":\"resync\"") {
                    counters.resyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    counters.closed.fetch_add(1, Ordering::Relaxed);
}

fn say(v: Value) {
    println!("{v}");
}

/// The child: `count` agent sockets, steered over stdin. Socket i
/// authenticates with `tokens[i % len]`, or with `token` when none are given.
pub async fn child(
    url: &str,
    token: &str,
    tokens: &[String],
    count: usize,
    connect_concurrency: usize,
) -> anyhow::Result<()> {
    let result = async {
        let target = Target::resolve(url).await?;
        let mut parent = client::parent_lines();
        let counters = Arc::new(Counters::default());
        let results: Vec<anyhow::Result<client::Ws>> = futures::stream::iter(0..count)
            .map(|i| {
                let t = if tokens.is_empty() {
                    token
                } else {
                    &tokens[i % tokens.len()]
                };
                client::agent(&target, None, t)
            })
            .buffer_unordered(connect_concurrency.max(1))
            .collect()
            .await;
        let mut failed = 0;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(ws) => {
                    tokio::spawn(console(ws, counters.clone()));
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        say(json!({
            "event": "ready",
            "opened": count - failed,
            "failed": failed,
            "first_error": first_error,
        }));
        while let Some(line) = parent.recv().await {
            if line == "count" {
                say(json!({
                    "event": "count",
                    "frames": counters.frames.load(Ordering::Relaxed),
                    "resyncs": counters.resyncs.load(Ordering::Relaxed),
                    "closed": counters.closed.load(Ordering::Relaxed),
                }));
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = &result {
        say(json!({ "event": "error", "message": format!("{e:#}") }));
    }
    result
}

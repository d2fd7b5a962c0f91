//! Idle widget sockets: how many one server holds, and its memory per
//! socket.
//!
//! The load comes from `--processes` child processes of this binary (each
//! process has its own open-file limit), each with a share of the sockets
//! and its own range of loopback source addresses. The parent steers them
//! over their stdin and stdout, one line at a time, so that the server's
//! memory is read at the right moments:
//!
//! 1. children create their visitor sessions over HTTP and say `sessions`;
//! 2. parent reads the server's VmRSS (before), writes `open`;
//! 3. children open their sockets — `hello`, wait for `widget_welcome` —
//!    then keep reading them (which answers the server's pings) and say
//!    `opened`;
//! 4. parent waits a moment, reads VmRSS (after), holds for `--hold`, reads
//!    it again (end), writes `stop`;
//! 5. children count the sockets still open and say `done`.
//!
//! (after − before) / opened is the server's memory per idle socket. The
//! sessions are made before "before", so the memory HTTP and the database
//! took for them is not counted against the sockets.

use crate::client::{self, Target};
use crate::stats::{self, round};
use crate::wire;
use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct IdleArgs {
    pub url: String,
    pub inbox: String,
    /// In all, over every process.
    pub sockets: usize,
    pub processes: usize,
    pub source_ip_start: Option<IpAddr>,
    /// Source addresses per process, used in turn.
    pub source_ip_count: u32,
    pub connect_concurrency: usize,
    pub session_concurrency: usize,
    pub hold: Duration,
    pub server_pid: Option<u32>,
    pub threads: usize,
    pub label: String,
}

/// How long after the last socket opened the server's memory is read: lets
/// the last welcomes leave its buffers.
const SETTLE: Duration = Duration::from_secs(2);

// ------------------------------------------------------------- parent ---

struct ChildProc {
    index: usize,
    proc: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildProc {
    /// The next event line of the child, which must be `event`.
    async fn expect(&mut self, event: &str) -> anyhow::Result<Value> {
        loop {
            let line = self
                .lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow!("load process {} exited before {event}", self.index))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["event"] == event {
                return Ok(v);
            }
            if v["event"] == "error" {
                bail!("load process {}: {}", self.index, v["message"]);
            }
        }
    }

    async fn tell(&mut self, word: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{word}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }
}

fn sum(events: &[Value], field: &str) -> u64 {
    events.iter().map(|e| e[field].as_u64().unwrap_or(0)).sum()
}

fn max_secs(events: &[Value], field: &str) -> f64 {
    events
        .iter()
        .map(|e| e[field].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max)
}

fn server_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    let processes = args.processes.max(1);
    if let Some(pid) = args.server_pid {
        stats::rss_kib(pid).with_context(|| format!("no /proc/{pid}/status (--server-pid)"))?;
    }
    let exe = std::env::current_exe()?;
    let mut children = Vec::with_capacity(processes);
    for index in 0..processes {
        let share = args.sockets / processes + usize::from(index < args.sockets % processes);
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("--threads")
            .arg(args.threads.to_string())
            .arg("idle-child")
            .arg("--url")
            .arg(&args.url)
            .arg("--inbox")
            .arg(&args.inbox)
            .arg("--sockets")
            .arg(share.to_string())
            .arg("--source-ip-count")
            .arg(args.source_ip_count.to_string())
            .arg("--connect-concurrency")
            .arg(args.connect_concurrency.to_string())
            .arg("--session-concurrency")
            .arg(args.session_concurrency.to_string());
        if let Some(start) = args.source_ip_start {
            let first = u32::try_from(index)
                .ok()
                .and_then(|i| i.checked_mul(args.source_ip_count))
                .and_then(|n| wire::nth_ip(start, n))
                .context("source addresses run out")?;
            cmd.arg("--source-ip-start").arg(first.to_string());
        }
        let mut proc = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a load process")?;
        let stdin = proc.stdin.take().context("child stdin")?;
        let stdout = proc.stdout.take().context("child stdout")?;
        children.push(ChildProc {
            index,
            proc,
            stdin,
            lines: BufReader::new(stdout).lines(),
        });
    }

    eprintln!(
        "idle: {} sockets from {processes} process(es): creating visitor sessions",
        args.sockets
    );
    let mut made = Vec::new();
    for c in &mut children {
        made.push(c.expect("sessions").await?);
    }
    let rss = |pid: Option<u32>| pid.and_then(stats::rss_kib);
    let before = rss(args.server_pid);
    let fds_before = args.server_pid.and_then(server_fds);
    eprintln!(
        "idle: sessions made in {:.1} s; server RSS {} KiB; opening sockets",
        max_secs(&made, "seconds"),
        before.map_or("?".into(), |k| k.to_string())
    );
    let t_open = Instant::now();
    for c in &mut children {
        c.tell("open").await?;
    }
    let mut opened = Vec::new();
    for c in &mut children {
        opened.push(c.expect("opened").await?);
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    let n_open = sum(&opened, "opened");
    tokio::time::sleep(SETTLE).await;
    let after = rss(args.server_pid);
    let fds_after = args.server_pid.and_then(server_fds);
    eprintln!(
        "idle: {n_open} sockets open ({} failed) in {open_secs:.1} s; server RSS {} KiB; holding {:?}",
        sum(&opened, "failed"),
        after.map_or("?".into(), |k| k.to_string()),
        args.hold
    );
    for e in &opened {
        if let Some(errs) = e["errors"].as_array().filter(|a| !a.is_empty()) {
            eprintln!("idle: process {}: first errors: {errs:?}", e["index"]);
        }
    }
    let t_hold = Instant::now();
    let mut peak = after.unwrap_or(0);
    while t_hold.elapsed() < args.hold {
        let left = args.hold.saturating_sub(t_hold.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(10))).await;
        if let Some(k) = rss(args.server_pid) {
            peak = peak.max(k);
            eprintln!(
                "idle: {:.0} s held, server RSS {k} KiB",
                t_hold.elapsed().as_secs_f64()
            );
        }
    }
    let held = t_hold.elapsed().as_secs_f64();
    let end = rss(args.server_pid);
    for c in &mut children {
        c.tell("stop").await?;
    }
    let mut done = Vec::new();
    for c in &mut children {
        done.push(c.expect("done").await?);
    }
    for c in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(10), c.proc.wait()).await;
    }

    let per_socket = match (before, after) {
        (Some(b), Some(a)) if n_open > 0 => Some(round(a.saturating_sub(b) as f64 / n_open as f64)),
        _ => None,
    };
    let out = json!({
        "bench": "idle",
        "label": args.label,
        "processes": processes,
        "sockets": args.sockets,
        "opened": n_open,
        "failed": sum(&opened, "failed"),
        "sessions_seconds": round(max_secs(&made, "seconds")),
        "sessions_throttled": sum(&made, "throttled"),
        "open_seconds": round(open_secs),
        "held_seconds": round(held),
        "open_at_end": sum(&done, "open"),
        "dropped": sum(&done, "dropped"),
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_rss_end_kib": end,
        "server_rss_peak_kib": args.server_pid.map(|_| peak),
        "server_kib_per_socket": per_socket,
        "server_fds_before": fds_before,
        "server_fds_after": fds_after,
        "client_rss_kib_per_process_max": done.iter().filter_map(|e| e["client_rss_kib"].as_u64()).max(),
    });
    println!(
        "idle [{}]: {} of {} widget sockets open from {processes} process(es) (opened in {:.1} s), \
         {} still open after {:.0} s ({} dropped); server RSS {} → {} KiB (end {}): {} KiB per socket",
        args.label,
        n_open,
        args.sockets,
        open_secs,
        out["open_at_end"],
        held,
        out["dropped"],
        before.map_or("?".into(), |k| k.to_string()),
        after.map_or("?".into(), |k| k.to_string()),
        end.map_or("?".into(), |k| k.to_string()),
        per_socket.map_or("?".into(), |k| format!("{k:.2}")),
    );
    println!("{out}");
    Ok(())
}

// -------------------------------------------------------------- child ---

#[derive(Debug, Clone)]
pub struct ChildArgs {
    pub url: String,
    pub inbox: String,
    pub sockets: usize,
    pub source_ip_start: Option<IpAddr>,
    pub source_ip_count: u32,
    pub connect_concurrency: usize,
    pub session_concurrency: usize,
}

/// Error texts kept per process; the rest are only counted.
const KEPT_ERRORS: usize = 5;

fn say(v: Value) {
    println!("{v}");
}

pub async fn child(args: ChildArgs) -> anyhow::Result<()> {
    let result = child_inner(&args).await;
    if let Err(e) = &result {
        say(json!({ "event": "error", "message": format!("{e:#}") }));
    }
    result
}

async fn child_inner(args: &ChildArgs) -> anyhow::Result<()> {
    let target = Target::resolve(&args.url).await?;
    let mut parent = client::parent_lines();
    let source = |i: usize| -> Option<IpAddr> {
        let start = args.source_ip_start?;
        let n = u32::try_from(i).ok()? % args.source_ip_count.max(1);
        wire::nth_ip(start, n)
    };

    let t = Instant::now();
    let throttled = AtomicU64::new(0);
    let http = client::http_client(source(0), args.session_concurrency)?;
    let tokens = client::sessions(
        &http,
        &target.base,
        &args.inbox,
        args.sockets,
        args.session_concurrency,
        &throttled,
    )
    .await?;
    drop(http);
    say(json!({
        "event": "sessions",
        "count": tokens.len(),
        "seconds": round(t.elapsed().as_secs_f64()),
        "throttled": throttled.load(Ordering::Relaxed),
    }));
    if parent.recv().await.as_deref() != Some("open") {
        return Ok(());
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(tokens.into_iter().enumerate())
        .map(|(i, token)| {
            let (target, open, dropped) = (&target, open.clone(), dropped.clone());
            let mut stop = stop_rx.clone();
            async move {
                let mut ws = client::widget(target, source(i), &token)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    // Reading is what answers the server's pings.
                    tokio::select! {
                        _ = async { while client::next_frame(&mut ws).await.is_some() {} } => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        _ = stop.wait_for(|s| *s) => {}
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
                Ok(())
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect()
        .await;
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    say(json!({
        "event": "opened",
        "opened": results.len() - errors.len(),
        "failed": errors.len(),
        "errors": errors.iter().take(KEPT_ERRORS).collect::<Vec<_>>(),
        "seconds": round(t.elapsed().as_secs_f64()),
    }));

    // Hold until told to stop (the process exits if the parent is gone).
    let _ = parent.recv().await;
    let still = open.load(Ordering::Relaxed);
    let client_rss = stats::own_rss_kib();
    let _ = stop_tx.send(true);
    say(json!({
        "event": "done",
        "open": still,
        "dropped": dropped.load(Ordering::Relaxed),
        "client_rss_kib": client_rss,
    }));
    Ok(())
}

//! Customer → agent delivery latency at a fixed message rate.
//!
//! `--rooms` widget visitors each hold a socket and a conversation; one agent
//! socket (the observer) receives every `message` frame. The load is an open
//! loop: send number `g` of a step is due at `t0 + g / rate`, goes out from
//! room `g % rooms`, and carries `g` in its text (see [`wire::Tag`]). Its
//! latency is measured from that due time — not from when it was actually
//! written — to when the observer reads it, so a server that falls behind
//! shows its backlog in the figures instead of quietly lowering the rate
//! (coordinated omission). Acks are timed the same way.
//!
//! Around that, optionally: `--consoles` more agent sockets that only
//! count what they receive (every agent socket gets every message; they
//! live in a child process, see [`crate::consoles`]), and a
//! task timing `GET /api/v1/conversations?limit=50` during the measured
//! window. `--rates a,b,c` runs one step per rate over the same sockets and
//! stops at the first step over `--p99-bound` or with a lost message: the
//! ceiling is the last rate that passed.

use crate::client::{self, Target, Ws};
use crate::consoles::{Consoles, Counts};
use crate::stats::{Latencies, merge, round};
use crate::wire::{self, Frame, Tag};
use anyhow::{Context, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
pub struct FlowArgs {
    pub url: String,
    /// Widget inboxes' public tokens; rooms are spread over them in turn.
    pub inboxes: Vec<String>,
    pub agent_token: String,
    /// Tokens of the other consoles, used in turn (else `agent_token`).
    pub console_tokens: Vec<String>,
    /// Token of the timed list calls (else `agent_token`).
    pub list_token: Option<String>,
    pub rooms: usize,
    pub rates: Vec<f64>,
    pub duration: Duration,
    pub warmup: Duration,
    pub drain: Duration,
    pub consoles: usize,
    pub list_interval: Option<Duration>,
    pub p99_bound: Duration,
    pub session_concurrency: usize,
    pub connect_concurrency: usize,
    /// Runtime threads of the consoles process.
    pub threads: usize,
    pub label: String,
}

/// One step of the load at one rate: the schedule and what was seen of it.
struct Step {
    index: u32,
    rate: f64,
    t0: Instant,
    /// Sends in the step; those from `measured_from` on are measured (the
    /// ones before are the warm-up).
    total: u64,
    measured_from: u64,
    sent: AtomicU64,
    /// Sends that could not be written (socket gone).
    unsent: AtomicU64,
    /// Per send: seen by the observer yet.
    seen: Vec<AtomicBool>,
    /// Per send: when it was written, in ns after `t0` (`u64::MAX` before).
    /// Latency from this instant leaves out the client's own lateness (the
    /// timer wakes up to a millisecond late); latency from the due time
    /// keeps it, and keeps a stalled writer's backlog.
    written: Vec<AtomicU64>,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    delivery: Mutex<Vec<u64>>,
    delivery_wire: Mutex<Vec<u64>>,
    acked: AtomicU64,
    ack: Mutex<Vec<u64>>,
    ack_wire: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// How late each measured send was written (client timer and
    /// scheduling; part of every latency above).
    lag: Mutex<Vec<u64>>,
}

impl Step {
    fn due(&self, g: u64) -> Instant {
        self.t0 + Duration::from_secs_f64(g as f64 / self.rate)
    }

    /// Latency of send `g` seen `now`: from its due time, and from when it
    /// was written (if it was).
    fn latency(&self, g: u64, now: Instant) -> (u64, Option<u64>) {
        let due = micros(now.saturating_duration_since(self.due(g)));
        let wire = self
            .written
            .get(g as usize)
            .map(|w| w.load(Ordering::Relaxed))
            .filter(|w| *w != u64::MAX)
            .map(|w| micros(now.saturating_duration_since(self.t0 + Duration::from_nanos(w))));
        (due, wire)
    }

    fn end(&self) -> Instant {
        self.due(self.total)
    }

    fn error(&self, code: &str) {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *e.entry(code.to_string()).or_default() += 1;
    }
}

/// Everything the socket tasks share.
struct Shared {
    run: u32,
    steps: RwLock<Vec<Arc<Step>>>,
    /// Room sockets the server closed.
    rooms_closed: AtomicUsize,
    observer_closed: AtomicBool,
    observer_resyncs: AtomicU64,
}

impl Shared {
    fn step(&self, index: u32) -> Option<Arc<Step>> {
        let steps = self.steps.read().unwrap_or_else(|p| p.into_inner());
        steps.get(index as usize).cloned()
    }

    fn current(&self) -> Option<Arc<Step>> {
        let steps = self.steps.read().unwrap_or_else(|p| p.into_inner());
        steps.last().cloned()
    }
}

fn push(samples: &Mutex<Vec<u64>>, micros: u64) {
    samples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(micros);
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The observer: times every tagged `message` frame from its due time.
async fn observe(mut ws: Ws, shared: Arc<Shared>) {
    while let Some(frame) = client::next_frame(&mut ws).await {
        match frame {
            Frame::Message { text } => {
                let now = Instant::now();
                let Some(tag) = Tag::from_text(&text).filter(|t| t.run == shared.run) else {
                    continue;
                };
                let Some(step) = shared.step(tag.step) else {
                    continue;
                };
                let Some(seen) = step.seen.get(tag.index as usize) else {
                    continue;
                };
                if seen.swap(true, Ordering::Relaxed) {
                    step.duplicates.fetch_add(1, Ordering::Relaxed);
                } else if tag.index >= step.measured_from {
                    step.delivered.fetch_add(1, Ordering::Relaxed);
                    let (due, wire) = step.latency(tag.index, now);
                    push(&step.delivery, due);
                    if let Some(w) = wire {
                        push(&step.delivery_wire, w);
                    }
                }
            }
            Frame::Resync => {
                shared.observer_resyncs.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    shared.observer_closed.store(true, Ordering::Relaxed);
}

/// A room's reading half: acks (timed from the send's due time) and errors.
async fn room_reader(mut rx: SplitStream<Ws>, shared: Arc<Shared>) {
    while let Some(msg) = rx.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        match Frame::parse(text.as_str()) {
            Some(Frame::Ack { client_id, .. }) => {
                let now = Instant::now();
                let Some(tag) = Tag::from_client_id(&client_id).filter(|t| t.run == shared.run)
                else {
                    continue;
                };
                if let Some(step) = shared.step(tag.step)
                    && tag.index >= step.measured_from
                {
                    step.acked.fetch_add(1, Ordering::Relaxed);
                    let (due, wire) = step.latency(tag.index, now);
                    push(&step.ack, due);
                    if let Some(w) = wire {
                        push(&step.ack_wire, w);
                    }
                }
            }
            Some(Frame::Error { code, client_id }) => {
                let step = client_id
                    .as_deref()
                    .and_then(Tag::from_client_id)
                    .and_then(|t| shared.step(t.step))
                    .or_else(|| shared.current());
                if let Some(step) = step {
                    step.error(&code);
                }
            }
            _ => {}
        }
    }
    shared.rooms_closed.fetch_add(1, Ordering::Relaxed);
}

type Sink = Arc<AsyncMutex<SplitSink<Ws, Message>>>;

struct Room {
    sink: Sink,
    conversation_id: String,
}

/// Opens a room: visitor socket, welcome, and a first message that opens
/// its conversation (not measured). Returns the room and its reading half.
async fn open_room(
    target: &Target,
    token: &str,
    run: u32,
    n: usize,
) -> anyhow::Result<(Room, SplitStream<Ws>)> {
    let mut ws = client::widget(target, None, token).await?;
    let client_id = format!("{run:08x}.prime.{n}");
    let text = format!("wsload {run:08x} 开始 {n}");
    ws.send(Message::Text(wire::send(&client_id, None, &text).into()))
        .await?;
    let conversation_id = tokio::time::timeout(client::WELCOME_TIMEOUT, async {
        loop {
            match client::next_frame(&mut ws).await {
                Some(Frame::Ack {
                    client_id: c,
                    conversation_id,
                }) if c == client_id => return Ok(conversation_id),
                Some(Frame::Error { code, .. }) => bail!("first send refused: {code}"),
                Some(_) => continue,
                None => bail!("socket closed before the first ack"),
            }
        }
    })
    .await
    .context("no ack for the first send")??;
    let (tx, rx) = ws.split();
    Ok((
        Room {
            sink: Arc::new(AsyncMutex::new(tx)),
            conversation_id,
        },
        rx,
    ))
}

/// Sends room `r`'s share of a step on schedule.
async fn room_sender(room: Arc<Room>, r: u64, rooms: u64, step: Arc<Step>, run: u32) {
    let mut g = r;
    while g < step.total {
        tokio::time::sleep_until(step.due(g)).await;
        let now = Instant::now();
        let lag = micros(now.saturating_duration_since(step.due(g)));
        if let Some(w) = step.written.get(g as usize) {
            let ns = now.saturating_duration_since(step.t0).as_nanos();
            w.store(u64::try_from(ns).unwrap_or(u64::MAX - 1), Ordering::Relaxed);
        }
        let tag = Tag {
            run,
            step: step.index,
            index: g,
        };
        let frame = wire::send(&tag.client_id(), Some(&room.conversation_id), &tag.text());
        let ok = room
            .sink
            .lock()
            .await
            .send(Message::Text(frame.into()))
            .await
            .is_ok();
        if g >= step.measured_from {
            push(&step.lag, lag);
            if ok {
                step.sent.fetch_add(1, Ordering::Relaxed);
            } else {
                step.unsent.fetch_add(1, Ordering::Relaxed);
            }
        }
        g += rooms;
    }
}

/// Times the conversation list, one request at a time every `every`, until
/// `until`. Returns latencies (µs) and errors.
async fn list_load(
    http: reqwest::Client,
    base: String,
    token: String,
    every: Duration,
    from: Instant,
    until: Instant,
) -> (Vec<u64>, u64, Option<String>) {
    let url = format!("{base}/api/v1/conversations?limit=50");
    let mut tick = tokio::time::interval_at(from, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut lat, mut errors, mut first_error) = (Vec::new(), 0, None);
    loop {
        let at = tick.tick().await;
        if at >= until {
            break;
        }
        let t = Instant::now();
        let res = http.get(&url).bearer_auth(&token).send().await;
        let outcome = match res {
            Ok(r) if r.status().is_success() => {
                r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => lat.push(micros(t.elapsed())),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    (lat, errors, first_error)
}

pub async fn run(args: FlowArgs) -> anyhow::Result<bool> {
    if args.rooms == 0 || args.rates.is_empty() {
        bail!("need at least one room and one rate");
    }
    let target = Target::resolve(&args.url).await?;
    let run = // The low bits of a v7 id are random.
    uuid::Uuid::now_v7().as_u128() as u32;
    let shared = Arc::new(Shared {
        run,
        steps: RwLock::new(Vec::new()),
        rooms_closed: AtomicUsize::new(0),
        observer_closed: AtomicBool::new(false),
        observer_resyncs: AtomicU64::new(0),
    });

    eprintln!("flow: {} visitor sessions", args.rooms);
    let http = client::http_client(None, args.session_concurrency)?;
    let throttled = AtomicU64::new(0);
    let mut tokens = Vec::with_capacity(args.rooms);
    for (i, inbox) in args.inboxes.iter().enumerate() {
        // Room r belongs to inbox r % n: inbox i gets every n-th room.
        let n = args.rooms / args.inboxes.len() + usize::from(i < args.rooms % args.inboxes.len());
        let made = client::sessions(
            &http,
            &target.base,
            inbox,
            n,
            args.session_concurrency,
            &throttled,
        )
        .await?;
        tokens.extend(made);
    }

    let observer = client::agent(&target, None, &args.agent_token)
        .await
        .context("the observing agent socket")?;
    tokio::spawn(observe(observer, shared.clone()));

    let mut consoles = if args.consoles > 1 {
        eprintln!(
            "flow: {} more agent consoles (in a child process)",
            args.consoles - 1
        );
        Some(
            Consoles::start(
                &target.base,
                &args.agent_token,
                &args.console_tokens,
                args.consoles - 1,
                args.connect_concurrency,
                args.threads,
            )
            .await?,
        )
    } else {
        None
    };

    eprintln!("flow: {} rooms (socket, hello, first message)", args.rooms);
    let rooms: Vec<anyhow::Result<(Room, SplitStream<Ws>)>> =
        futures::stream::iter(tokens.iter().enumerate())
            .map(|(n, t)| open_room(&target, t, run, n))
            .buffer_unordered(args.connect_concurrency.max(1))
            .collect()
            .await;
    let mut open = Vec::with_capacity(rooms.len());
    for r in rooms {
        let (room, rx) = r.context("opening a room")?;
        tokio::spawn(room_reader(rx, shared.clone()));
        open.push(Arc::new(room));
    }

    let mut passed: Option<f64> = None;
    let mut all_ok = true;
    for (i, &rate) in args.rates.iter().enumerate() {
        let total = (rate * args.duration.as_secs_f64()).round() as u64;
        let measured_from = (rate * args.warmup.as_secs_f64()).round() as u64;
        let step = Arc::new(Step {
            index: u32::try_from(i)?,
            rate,
            // Leave the sender tasks a moment to start.
            t0: Instant::now() + Duration::from_millis(500),
            total,
            measured_from: measured_from.min(total),
            sent: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            seen: (0..total).map(|_| AtomicBool::new(false)).collect(),
            written: (0..total).map(|_| AtomicU64::new(u64::MAX)).collect(),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            delivery: Mutex::new(Vec::new()),
            delivery_wire: Mutex::new(Vec::new()),
            acked: AtomicU64::new(0),
            ack: Mutex::new(Vec::new()),
            ack_wire: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(Vec::new()),
        });
        shared
            .steps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(step.clone());
        eprintln!(
            "flow: step {i}: {rate} msg/s for {:?} ({:?} warm-up) over {} rooms",
            args.duration,
            args.warmup,
            open.len()
        );
        let measured_start = step.due(step.measured_from);
        let list = args.list_interval.map(|every| {
            tokio::spawn(list_load(
                http.clone(),
                target.base.clone(),
                args.list_token
                    .clone()
                    .unwrap_or_else(|| args.agent_token.clone()),
                every,
                measured_start,
                step.end(),
            ))
        });
        let consoles_before = match &mut consoles {
            Some(c) => Some(c.counts().await?),
            None => None,
        };
        let senders: Vec<_> = open
            .iter()
            .enumerate()
            .map(|(r, room)| {
                tokio::spawn(room_sender(
                    room.clone(),
                    r as u64,
                    open.len() as u64,
                    step.clone(),
                    run,
                ))
            })
            .collect();
        for s in senders {
            let _ = s.await;
        }
        let sent_done = Instant::now();
        // Wait for the stragglers, at most --drain.
        let deadline = step.end().max(sent_done) + args.drain;
        loop {
            let expected = step.sent.load(Ordering::Relaxed);
            let complete = step.delivered.load(Ordering::Relaxed) >= expected
                && step.acked.load(Ordering::Relaxed) >= expected;
            if complete || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let list = match list {
            Some(h) => Some(h.await?),
            None => None,
        };
        let console_counts = match (&mut consoles, consoles_before) {
            (Some(c), Some(before)) => Some(c.counts().await?.since(before)),
            _ => None,
        };
        let (report, ok) = step_report(&args, &shared, &step, sent_done, list, console_counts);
        println!("{report}");
        if ok {
            passed = Some(rate);
        } else {
            all_ok = false;
            if args.rates.len() > 1 {
                eprintln!("flow: step {i} over the bound; stopping the ramp");
                break;
            }
        }
    }
    if args.rates.len() > 1 {
        let out = json!({
            "bench": "ceiling",
            "label": args.label,
            "rooms": open.len(),
            "p99_bound_ms": round(args.p99_bound.as_secs_f64() * 1000.0),
            "ceiling_per_second": passed,
        });
        println!(
            "ceiling [{}]: {} msg/s with p99 under {:?} and nothing lost",
            args.label,
            passed.map_or("none of the rates".into(), |r| format!("{r:.0}")),
            args.p99_bound
        );
        println!("{out}");
    }
    Ok(all_ok)
}

/// The readable line and the JSON line of a step; true when its p99 is
/// within the bound and nothing was lost.
fn step_report(
    args: &FlowArgs,
    shared: &Shared,
    step: &Step,
    sent_done: Instant,
    list: Option<(Vec<u64>, u64, Option<String>)>,
    consoles: Option<Counts>,
) -> (String, bool) {
    let take =
        |m: &Mutex<Vec<u64>>| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner()));
    let delivery = Latencies::new(take(&step.delivery));
    let ack = Latencies::new(take(&step.ack));
    let delivery_wire = Latencies::new(take(&step.delivery_wire));
    let ack_wire = Latencies::new(take(&step.ack_wire));
    let lag = Latencies::new(take(&step.lag));
    let sent = step.sent.load(Ordering::Relaxed);
    let delivered = step.delivered.load(Ordering::Relaxed);
    let acked = step.acked.load(Ordering::Relaxed);
    let lost = sent.saturating_sub(delivered);
    let unsent = step.unsent.load(Ordering::Relaxed);
    // The measured window: from the first measured due time to the moment
    // the last send was written (later than planned if the client lagged).
    let window = sent_done
        .max(step.end())
        .saturating_duration_since(step.due(step.measured_from))
        .as_secs_f64()
        .max(1e-9);
    let errors = step
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let ok = lost == 0
        && unsent == 0
        && delivery.percentile_ms(99.0) <= args.p99_bound.as_secs_f64() * 1000.0;
    let mut out = json!({
        "bench": "flow",
        "label": args.label,
        "step": step.index,
        "rooms": args.rooms,
        "consoles": args.consoles,
        "offered_per_second": step.rate,
        "seconds": round(args.duration.as_secs_f64()),
        "warmup_seconds": round(args.warmup.as_secs_f64()),
        "sent": sent,
        "unsent": unsent,
        "sent_per_second": round(sent as f64 / window),
        "late_seconds": round(sent_done.saturating_duration_since(step.end()).as_secs_f64()),
        "acked": acked,
        "delivered": delivered,
        "delivered_per_second": round(delivered as f64 / window),
        "lost": lost,
        "duplicates": step.duplicates.load(Ordering::Relaxed),
        "errors": errors,
        "rooms_closed": shared.rooms_closed.load(Ordering::Relaxed),
        "observer_closed": shared.observer_closed.load(Ordering::Relaxed),
        "observer_resyncs": shared.observer_resyncs.load(Ordering::Relaxed),
        "console_frames": consoles.map(|c| c.frames),
        "console_resyncs": consoles.map(|c| c.resyncs),
        "consoles_closed": consoles.map(|c| c.closed),
        "within_bound": ok,
    });
    merge(&mut out, delivery.json("delivery_"));
    merge(&mut out, ack.json("ack_"));
    merge(&mut out, delivery_wire.json("delivery_wire_"));
    merge(&mut out, ack_wire.json("ack_wire_"));
    merge(&mut out, lag.json("send_lag_"));
    let mut line = format!(
        "flow [{}] step {}: offered {:.0} msg/s over {} rooms, sent {} ({:.0}/s), acked {}, delivered {} ({:.0}/s), lost {}{}\n  \
         from due time:  customer→agent {}\n                 send→ack       {}\n  \
         from written:   customer→agent {}\n                 send→ack       {}\n  \
         client lateness (due → written) {}",
        args.label,
        step.index,
        step.rate,
        args.rooms,
        sent,
        sent as f64 / window,
        acked,
        delivered,
        delivered as f64 / window,
        lost,
        if errors.is_empty() {
            String::new()
        } else {
            format!(", errors {errors:?}")
        },
        delivery.summary(),
        ack.summary(),
        delivery_wire.summary(),
        ack_wire.summary(),
        lag.summary(),
    );
    if let Some(c) = consoles {
        line.push_str(&format!(
            "\n  {} more consoles received {} frames ({:.0}/s each, {} resyncs); {} closed",
            args.consoles - 1,
            c.frames,
            c.frames as f64
                / (args.consoles - 1).max(1) as f64
                / args.duration.as_secs_f64().max(1e-9),
            c.resyncs,
            c.closed
        ));
    }
    if let Some((lat, errors, first)) = list {
        let l = Latencies::new(lat);
        line.push_str(&format!(
            "\n  GET /api/v1/conversations?limit=50: {} requests, {errors} errors{}, {}",
            l.len(),
            first
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            l.summary()
        ));
        merge(&mut out, l.json("list_"));
        merge(&mut out, json!({ "list_errors": errors }));
    }
    line.push('\n');
    line.push_str(&out.to_string());
    (line, ok)
}

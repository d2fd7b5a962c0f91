//! The HTTP load: a closed loop of `concurrency` workers sharing a counter,
//! each sending its next request as soon as the previous one is answered.
//! A warm-up of the same shape runs first and is not counted (it fills the
//! connection pool, the server's statement caches and the page cache).

use crate::stats::{Latencies, Report};
use crate::text::{self, Rng};
use anyhow::Context;
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct LoadArgs {
    pub url: String,
    pub token: String,
    pub inbox: Uuid,
    pub concurrency: usize,
    pub requests: usize,
    pub warmup: usize,
    pub label: String,
    pub seed: u64,
}

/// Error texts beyond this many are only counted.
const KEPT_ERRORS: usize = 5;

struct Outcome {
    latencies: Vec<u64>,
    errors: usize,
    samples: Vec<String>,
}

fn client(concurrency: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        // A benchmark of a loopback server must not go through a proxy
        // configured in the environment.
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Runs `total` calls of `op` (given the call's index), `concurrency` at a
/// time, and times each one.
async fn drive<F, Fut>(concurrency: usize, total: usize, op: Arc<F>) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (next, op) = (next.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Outcome {
                latencies: Vec::with_capacity(total / concurrency.max(1) + 1),
                errors: 0,
                samples: Vec::new(),
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => out.latencies.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        out.errors += 1;
                        if out.samples.len() < KEPT_ERRORS {
                            out.samples.push(e);
                        }
                    }
                }
            }
            out
        }));
    }
    let mut all = Outcome {
        latencies: Vec::with_capacity(total),
        errors: 0,
        samples: Vec::new(),
    };
    for w in workers {
        match w.await {
            Ok(o) => {
                all.latencies.extend(o.latencies);
                all.errors += o.errors;
                all.samples.extend(o.samples);
            }
            Err(e) => {
                all.errors += 1;
                all.samples.push(format!("worker failed: {e}"));
            }
        }
    }
    all.samples.truncate(KEPT_ERRORS);
    all
}

async fn measure<F, Fut>(bench: &'static str, args: &LoadArgs, op: F) -> anyhow::Result<Report>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    if args.warmup > 0 {
        let w = drive(args.concurrency, args.warmup, op.clone()).await;
        println!(
            "{bench} [{}]: warm-up of {} requests done ({} errors)",
            args.label, args.warmup, w.errors
        );
        if w.errors == args.warmup {
            anyhow::bail!(
                "every warm-up request failed, e.g.: {}",
                w.samples.first().map(String::as_str).unwrap_or("?")
            );
        }
    }
    let started = Instant::now();
    let out = drive(args.concurrency, args.requests, op).await;
    let elapsed = started.elapsed();
    for e in &out.samples {
        eprintln!("{bench} [{}]: error: {e}", args.label);
    }
    Ok(Report {
        bench,
        label: args.label.clone(),
        concurrency: args.concurrency,
        requests: args.requests,
        errors: out.errors,
        elapsed,
        latencies: Latencies::new(out.latencies),
    })
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// POST /api/v1/conversations: a new contact with a Chinese name and a first
/// incoming message of about 100 Chinese characters, as an API inbox
/// integration would send it.
pub async fn create(args: LoadArgs) -> anyhow::Result<Report> {
    let client = client(args.concurrency)?;
    let endpoint = format!("{}/api/v1/conversations", args.url.trim_end_matches('/'));
    let auth = format!("Bearer {}", args.token);
    let (inbox, seed) = (args.inbox, args.seed);
    let op = move |i: usize| {
        let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let body = json!({
            "inbox_id": inbox,
            "contact": {
                "name": text::name(&mut rng),
                "phone": text::phone(&mut rng),
                "language": "zh-CN",
            },
            "subject": text::subject(&mut rng),
            "message": { "direction": "incoming", "text": text::message(&mut rng) },
        })
        .to_string();
        let request = client
            .post(&endpoint)
            .header(header::AUTHORIZATION, &auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            if status != StatusCode::CREATED {
                return Err(format!("{status}: {}", snippet(&bytes)));
            }
            Ok(())
        }
    };
    measure("create", &args, op).await
}

/// GET /api/v1/conversations?inbox_id=…&limit=50, checking that the page
/// holds 50 conversations of that inbox.
pub async fn list(args: LoadArgs) -> anyhow::Result<Report> {
    let client = client(args.concurrency)?;
    let endpoint = format!(
        "{}/api/v1/conversations?inbox_id={}&limit=50",
        args.url.trim_end_matches('/'),
        args.inbox
    );
    let auth = format!("Bearer {}", args.token);
    let inbox = args.inbox.to_string();
    let op = move |_: usize| {
        let request = client.get(&endpoint).header(header::AUTHORIZATION, &auth);
        let inbox = inbox.clone();
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            if status != StatusCode::OK {
                return Err(format!("{status}: {}", snippet(&bytes)));
            }
            check_page(&bytes, &inbox)
        }
    };
    measure("list", &args, op).await
}

fn check_page(body: &[u8], inbox: &str) -> Result<(), String> {
    let page: Value = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let items = page["items"]
        .as_array()
        .ok_or_else(|| format!("no items: {}", snippet(body)))?;
    if items.len() != 50 {
        return Err(format!("{} items instead of 50", items.len()));
    }
    if let Some(other) = items.iter().find(|c| c["inbox_id"] != inbox) {
        return Err(format!("a conversation of another inbox: {}", other["id"]));
    }
    Ok(())
}

/// Fails early, with a readable message, when the server is not there or the
/// token is refused, instead of reporting thousands of errors.
pub async fn preflight(url: &str, token: &str) -> anyhow::Result<()> {
    let response = client(1)?
        .get(format!("{}/api/v1/inboxes", url.trim_end_matches('/')))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        anyhow::bail!("GET /api/v1/inboxes answered {status}: {}", snippet(&body));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_must_hold_fifty_of_the_inbox() {
        let inbox = "0190f0e0-0000-7000-8000-000000000001";
        let item = json!({ "id": "x", "inbox_id": inbox });
        let full = json!({ "items": vec![item.clone(); 50], "next_cursor": "c" }).to_string();
        assert!(check_page(full.as_bytes(), inbox).is_ok());
        let short = json!({ "items": vec![item; 49] }).to_string();
        assert!(check_page(short.as_bytes(), inbox).is_err());
        let mut mixed = vec![json!({ "id": "x", "inbox_id": inbox }); 49];
        mixed.push(json!({ "id": "y", "inbox_id": "other" }));
        let mixed = json!({ "items": mixed }).to_string();
        assert!(check_page(mixed.as_bytes(), inbox).is_err());
        assert!(check_page(b"not json", inbox).is_err());
    }
}

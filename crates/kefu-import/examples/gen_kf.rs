//! Writes a synthetic 微信客服 export for benchmarks: `kf/sync_msg` items,
//! one per line, and optionally the same rows as flat CSV (for comparing
//! with a bare `sqlite3 .import`).
//!
//! `cargo run --release -p kefu-import --example gen_kf -- MESSAGES CUSTOMERS OUT.ndjson [OUT.csv]`

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (messages, customers) = (num(1, 1_000_000), num(2, 50_000).max(1));
    let out = args.get(3).map(String::as_str).unwrap_or("kf.ndjson");
    let mut ndjson = BufWriter::new(std::fs::File::create(out)?);
    let mut csv = match args.get(4) {
        Some(p) => Some(BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let base: i64 = 1_700_000_000;
    for i in 0..messages {
        let (customer, k) = (i % customers, (i / customers) as i64);
        // 10 h apart, a 30 h silence after every fifth: conversations split.
        let at = base + k * 36_000 + (k / 5) * 108_000 + customer as i64;
        let origin = if k % 2 == 0 { 3 } else { 5 };
        let agent = format!("agent{}", customer % 50);
        let text = format!("第 {k} 条消息，客户 {customer}，订单 {}", 100_000 + i);
        let line = serde_json::json!({
            "msgid": format!("msg-{i}"), "open_kfid": "wk-bench",
            "external_userid": format!("wm-{customer}"), "send_time": at, "origin": origin,
            "servicer_userid": agent, "msgtype": "text", "text": {"content": text},
        });
        writeln!(ndjson, "{line}")?;
        if let Some(csv) = csv.as_mut() {
            let dir = if origin == 3 { "incoming" } else { "outgoing" };
            writeln!(
                csv,
                "msg-{i},wm-{customer},wk-bench,{},{dir},{agent},\"{text}\"",
                at * 1000
            )?;
        }
    }
    ndjson.flush()?;
    if let Some(mut csv) = csv {
        csv.flush()?;
    }
    Ok(())
}

//! Writes a synthetic 微信客服 export for benchmarks: `kf/sync_msg` items,
//! one per line, and optionally the same rows as flat CSV (for comparing
//! with a bare `sqlite3 .import`).
//!
//! Ids look like WeChat's (`from_msgid_` and 19 scattered digits,
//! `wmAJ2GCAAA…` userids): counting ids (`msg-1`, `msg-2`…) land at the end
//! of every index, which flatters any importer and the baseline most of
//! all (its million rows: 4.3 s with counting ids, 14.8 s with these).
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
    let kfid = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";
    for i in 0..messages {
        let (customer, k) = (i % customers, (i / customers) as i64);
        // 10 h apart, a 30 h silence after every fifth: conversations split.
        let at = base + k * 36_000 + (k / 5) * 108_000 + customer as i64;
        let origin = if k % 2 == 0 { 3 } else { 5 };
        let agent = format!("agent{}", customer % 50);
        let text = format!("第 {k} 条消息，客户 {customer}，订单 {}", 100_000 + i);
        let msgid = format!("from_msgid_{}", mix(i as u64) % 10_000_000_000_000_000_000);
        let user = format!("wmAJ2GCAAA{:022x}", mix(customer as u64 + (1 << 40)));
        let line = serde_json::json!({
            "msgid": msgid, "open_kfid": kfid,
            "external_userid": user, "send_time": at, "origin": origin,
            "servicer_userid": agent, "msgtype": "text", "text": {"content": text},
        });
        writeln!(ndjson, "{line}")?;
        if let Some(csv) = csv.as_mut() {
            let dir = if origin == 3 { "incoming" } else { "outgoing" };
            writeln!(
                csv,
                "{msgid},{user},{kfid},{},{dir},{agent},\"{text}\"",
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

/// splitmix64: a fixed scramble, so every run writes the same ids.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

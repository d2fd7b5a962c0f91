//! `smtp`: mail into kefu's SMTP listener, the way a provider's MX delivers
//! it — many connections at once, each sending one message after another
//! (MAIL, RCPT, DATA) — then a count through the API that every message
//! became a stored conversation. Only for a listener on loopback.
//!
//! Each message comes from its own sender (kefu holds a sender's mail beyond
//! 30 in 10 minutes) and has its own Message-ID (a duplicate is stored once);
//! it is multipart: a short Chinese text and a PDF-typed attachment of
//! pseudo-random bytes, base64, filling it up to the asked size. The
//! listener answers 250 only once a message is stored, so the time to the
//! last 250 is the time to store them all.

use crate::stats::{Latencies, Report};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;

pub struct SmtpArgs {
    pub addr: SocketAddr,
    pub to: String,
    pub messages: usize,
    pub concurrency: usize,
    pub bytes: usize,
    pub label: String,
}

/// Sends `messages` mails over `concurrency` connections.
pub async fn send(args: SmtpArgs) -> anyhow::Result<Report> {
    if !args.addr.ip().is_loopback() {
        bail!(
            "the SMTP load goes only to a listener on loopback, not {}",
            args.addr
        );
    }
    let args = Arc::new(args);
    let next = Arc::new(AtomicUsize::new(0));
    let run = Uuid::now_v7().simple().to_string();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (args, next, run) = (args.clone(), next.clone(), run.clone());
        workers.spawn(async move { worker(&args, &next, &run).await });
    }
    let (mut micros, mut errors) = (Vec::new(), 0);
    while let Some(done) = workers.join_next().await {
        let (m, e) = done??;
        micros.extend(m);
        errors += e;
    }
    Ok(Report {
        bench: "smtp",
        label: args.label.clone(),
        concurrency: args.concurrency,
        requests: args.messages,
        errors,
        elapsed: started.elapsed(),
        latencies: Latencies::new(micros),
    })
}

/// One connection: messages until none is left. Returns the latencies of
/// the accepted ones (from MAIL to the 250 after the data) and the refusals.
async fn worker(
    args: &SmtpArgs,
    next: &AtomicUsize,
    run: &str,
) -> anyhow::Result<(Vec<u64>, usize)> {
    let stream = TcpStream::connect(args.addr)
        .await
        .with_context(|| format!("connect to {}", args.addr))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, 220).await?;
    write.write_all(b"EHLO bench.example\r\n").await?;
    expect(&mut read, 250).await?;
    let (mut micros, mut errors) = (Vec::new(), 0);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= args.messages {
            break;
        }
        let mail = message(i, run, &args.to, args.bytes);
        let t = Instant::now();
        let from = format!(
            "MAIL FROM:<c{i}.{run}@bench.example>\r\nRCPT TO:<{}>\r\nDATA\r\n",
            args.to
        );
        write.write_all(from.as_bytes()).await?;
        let accepted = expect(&mut read, 250).await.is_ok()
            && expect(&mut read, 250).await.is_ok()
            && expect(&mut read, 354).await.is_ok();
        if !accepted {
            write.write_all(b"RSET\r\n").await?;
            expect(&mut read, 250).await?;
            errors += 1;
            continue;
        }
        write.write_all(&mail).await?;
        write.write_all(b".\r\n").await?;
        match expect(&mut read, 250).await {
            Ok(()) => micros.push(t.elapsed().as_micros() as u64),
            Err(e) => {
                eprintln!("message {i} refused: {e}");
                errors += 1;
            }
        }
    }
    write.write_all(b"QUIT\r\n").await?;
    Ok((micros, errors))
}

/// Reads one (possibly multi-line) reply; an error unless its code is `code`.
async fn expect<R: AsyncBufReadExt + Unpin>(read: &mut R, code: u16) -> anyhow::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(120), read.read_line(&mut line))
            .await
            .context("no answer within 120 s")??;
        if n == 0 {
            bail!("the server closed the connection");
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    if line.get(..3) != Some(code.to_string().as_str()) {
        bail!("expected {code}, got {}", line.trim_end());
    }
    Ok(())
}

/// Message `i` of about `bytes` bytes, CRLF lines, none starting with a dot.
pub fn message(i: usize, run: &str, to: &str, bytes: usize) -> Vec<u8> {
    let mut m = format!(
        "From: 客户{i} <c{i}.{run}@bench.example>\r\nTo: {to}\r\nSubject: 订单 {i} 的发票和退款\r\n\
         Message-ID: <m{i}.{run}@bench.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0800\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b{run}\"\r\n\r\n\
         --b{run}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    for line in 0..12 {
        m.push_str(&format!(
            "您好，订单 {i} 的发票还没有收到，第 {line} 次询问。退款申请也提交三天了，麻烦尽快处理，谢谢！\r\n"
        ));
    }
    m.push_str(&format!(
        "\r\n--b{run}\r\nContent-Type: application/pdf; name=\"发票-{i}.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"invoice-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    let closing = format!("\r\n--b{run}--\r\n");
    // 76 base64 characters + CRLF carry 57 bytes.
    let lines = bytes.saturating_sub(m.len() + closing.len()) / 78;
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = m.into_bytes();
    out.reserve(lines * 78 + closing.len());
    let mut chunk = [0u8; 57];
    for _ in 0..lines {
        for b in chunk.iter_mut() {
            // xorshift64: cheap bytes that neither compress nor repeat.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        base64_line(&chunk, &mut out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(closing.as_bytes());
    out
}

fn base64_line(bytes: &[u8; 57], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[(n >> shift) as usize & 63]);
        }
    }
}

/// Conversations in `inbox`, counted through the API page by page.
pub async fn count_conversations(url: &str, token: &str, inbox: Uuid) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let (mut count, mut cursor) = (0, None::<String>);
    loop {
        let mut req = client
            .get(format!(
                "{}/api/v1/conversations",
                url.trim_end_matches('/')
            ))
            .bearer_auth(token)
            .query(&[("inbox_id", inbox.to_string()), ("limit", "100".into())]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: serde_json::Value = req.send().await?.error_for_status()?.json().await?;
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_asked_size_and_no_line_starts_with_a_dot() {
        let m = message(7, "r1", "support@bench.example", 50 * 1024);
        assert!(
            (50 * 1024 - 200..=50 * 1024).contains(&m.len()),
            "{}",
            m.len()
        );
        let text = String::from_utf8(m).unwrap();
        assert!(text.lines().all(|l| !l.starts_with('.')));
        assert!(text.contains("Message-ID: <m7.r1@bench.example>"));
        assert!(text.ends_with("--br1--\r\n"));
    }
}

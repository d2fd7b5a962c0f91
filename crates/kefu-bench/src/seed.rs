//! `kefu-bench seed`: fills a database with test conversations, directly
//! through SQL, to measure the list at a realistic size.
//!
//! This is test data, not the API path: each conversation gets a new contact
//! and one incoming message (seq 1), and rows go in with multi-row INSERTs,
//! many statements to a transaction. Going through `Store::create_conversation`
//! would take one transaction per conversation and half an hour for a million.
//! The store is opened first so that the schema exists and is current; the
//! rows follow it exactly (UUIDv7 ids made from the row's own creation time,
//! milliseconds since the epoch, numbers after the highest in use so the
//! server goes on after them).

use anyhow::{Context, bail};
use kefu_core::{ConversationStatus, Direction, InboxKind, Priority, SenderKind};
use serde_json::json;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder};
use std::str::FromStr;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::stats::round;
use crate::text::{self, Rng};

pub struct SeedArgs {
    pub database_url: String,
    pub inbox: Uuid,
    /// How many conversations the database should hold afterwards.
    pub conversations: u64,
    pub other_inboxes: u32,
    pub rows_per_statement: usize,
    pub per_transaction: usize,
    pub seed: u64,
    pub label: String,
}

/// One connection of either kind; `with_conn!` runs the same block of SQL on
/// whichever it is, with `$D` naming the sqlx database type (the store's
/// `on_db!` does the same for its pools).
enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

macro_rules! with_conn {
    ($conn:expr, $c:ident, $D:ident => $body:block) => {
        match $conn {
            Conn::Sqlite($c) => {
                #[allow(dead_code)]
                type $D = sqlx::Sqlite;
                $body
            }
            Conn::Postgres($c) => {
                #[allow(dead_code)]
                type $D = sqlx::Postgres;
                $body
            }
        }
    };
}

/// One conversation with its contact and first message.
struct Row {
    conversation: Uuid,
    contact: Uuid,
    message: Uuid,
    number: i64,
    inbox: Uuid,
    name: String,
    phone: String,
    subject: String,
    status: &'static str,
    priority: &'static str,
    created_at: i64,
    last_activity_at: i64,
    resolved_at: Option<i64>,
    text: String,
}

const DAY_MS: i64 = 86_400_000;
/// Seeded conversations were created over the year before the run.
const SPAN_MS: i64 = 365 * DAY_MS;
/// SQLite's limit on bound parameters per statement; the widest row binds 11.
const SQLITE_MAX_PARAMS: usize = 32_766;
const CONVERSATION_PARAMS: usize = 11;

fn uuid_v7_at(ms: i64, rng: &mut Rng) -> Uuid {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    random[8..].copy_from_slice(&rng.next_u64().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &random).into_uuid()
}

fn now_ms() -> i64 {
    kefu_core::time::to_millis(kefu_core::time::now())
}

async fn connect(url: &str) -> anyhow::Result<Conn> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        // Per connection, so the server's durability settings are untouched:
        // losing test data to a power cut costs nothing, and a large page
        // cache keeps the seven conversation indexes in memory.
        let conn = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Off)
            .busy_timeout(Duration::from_secs(60))
            .foreign_keys(true)
            .pragma("cache_size", "-1048576")
            .pragma("temp_store", "memory")
            .connect()
            .await?;
        Ok(Conn::Sqlite(conn))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut conn)
            .await?;
        Ok(Conn::Postgres(conn))
    } else {
        bail!("unsupported database URL (sqlite://PATH or postgres://…)")
    }
}

pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let rows_per_statement = args
        .rows_per_statement
        .clamp(1, SQLITE_MAX_PARAMS / CONVERSATION_PARAMS);
    let per_transaction = args.per_transaction.max(rows_per_statement);

    // Applies migrations; the store's own pools are not used for the bulk work.
    let store = kefu_store::Store::open(&args.database_url)
        .await
        .context("opening the store (migrations)")?;
    store.close().await;
    let mut conn = connect(&args.database_url).await?;

    let existing: i64 = with_conn!(&mut conn, c, D => {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inboxes WHERE id = $1")
            .bind(args.inbox).fetch_one(&mut *c).await?;
        if n == 0 {
            bail!("inbox {} does not exist in this database", args.inbox);
        }
        sqlx::query_scalar("SELECT COUNT(*) FROM conversations").fetch_one(&mut *c).await?
    });
    let to_add = args.conversations.saturating_sub(existing as u64);
    println!(
        "seed [{}]: {existing} conversations present, adding {to_add} (target {}), \
         {} other inboxes, {rows_per_statement} rows per INSERT, {per_transaction} per transaction",
        args.label, args.conversations, args.other_inboxes
    );

    let started = Instant::now();
    let end = now_ms();
    let start = end - SPAN_MS;
    let mut rng = Rng::new(args.seed);

    // The other inboxes make the inbox filter do real work: the target inbox
    // holds only its share of the conversations.
    let mut inboxes = vec![args.inbox];
    if to_add > 0 {
        for i in 0..args.other_inboxes {
            let id = uuid_v7_at(start, &mut rng);
            with_conn!(&mut conn, c, D => {
                sqlx::query("INSERT INTO inboxes (id, kind, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                    .bind(id).bind(InboxKind::Api.as_str()).bind(format!("bench: other inbox {}", i + 1)).bind(start)
                    .execute(&mut *c).await?;
            });
            inboxes.push(id);
        }
    }

    let statuses = [
        ConversationStatus::Open,
        ConversationStatus::Pending,
        ConversationStatus::Resolved,
        ConversationStatus::Resolved,
        ConversationStatus::Resolved,
        ConversationStatus::Closed,
    ];
    let priorities = [
        Priority::Low,
        Priority::Medium,
        Priority::Medium,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];
    let step = (SPAN_MS / to_add.max(1) as i64).max(1);
    let mut done: u64 = 0;
    let mut last_report = Instant::now();
    while done < to_add {
        let n = (to_add - done).min(per_transaction as u64);
        let rows = with_conn!(&mut conn, c, D => {
            let mut tx = c.begin().await?;
            // Numbers follow the highest in use (the server takes MAX + 1 on
            // SQLite, and the sequence is moved past them below on PostgreSQL).
            let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(number), 1000) FROM conversations")
                .fetch_one(&mut *tx).await?;
            let first_number = last + 1;
            // Made inside the transaction that reserved the numbers.
            let rows: Vec<Row> = (0..n)
                .map(|k| {
                    let i = (done + k) as i64;
                    let created_at = start + i * step + rng.below(step as u64) as i64;
                    let status = *rng.pick(&statuses);
                    let last_activity_at = (created_at + rng.below(3 * DAY_MS as u64) as i64).min(end);
                    let resolved = status == ConversationStatus::Resolved;
                    Row {
                        contact: uuid_v7_at(created_at, &mut rng),
                        conversation: uuid_v7_at(created_at, &mut rng),
                        message: uuid_v7_at(created_at, &mut rng),
                        number: first_number + k as i64,
                        inbox: *rng.pick(&inboxes),
                        name: text::name(&mut rng),
                        phone: text::phone(&mut rng),
                        subject: text::subject(&mut rng),
                        status: status.as_str(),
                        priority: rng.pick(&priorities).as_str(),
                        created_at,
                        last_activity_at,
                        resolved_at: resolved.then_some(last_activity_at),
                        text: text::message(&mut rng),
                    }
                })
                .collect();
            for chunk in rows.chunks(rows_per_statement) {
                let mut q = QueryBuilder::<D>::new(
                    "INSERT INTO contacts (id, name, phone, language, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.contact).push_bind(r.name.as_str()).push_bind(r.phone.as_str())
                        .push("'zh-CN'").push_bind(r.created_at).push_bind(r.created_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in rows.chunks(rows_per_statement) {
                let mut q = QueryBuilder::<D>::new(
                    "INSERT INTO conversations (id, number, inbox_id, contact_id, subject, status, priority, \
                     last_seq, last_activity_at, resolved_at, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.conversation).push_bind(r.number).push_bind(r.inbox)
                        .push_bind(r.contact).push_bind(r.subject.as_str()).push_bind(r.status)
                        .push_bind(r.priority).push("1").push_bind(r.last_activity_at)
                        .push_bind(r.resolved_at).push_bind(r.created_at).push_bind(r.last_activity_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in rows.chunks(rows_per_statement) {
                let mut q = QueryBuilder::<D>::new(
                    "INSERT INTO messages (id, conversation_id, seq, direction, sender_kind, sender_id, text, created_at) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.message).push_bind(r.conversation).push("1")
                        .push_bind(Direction::Incoming.as_str()).push_bind(SenderKind::Contact.as_str())
                        .push_bind(r.contact).push_bind(r.text.as_str()).push_bind(r.created_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            rows.len() as u64
        });
        done += rows;
        if last_report.elapsed() >= Duration::from_secs(5) || done == to_add {
            last_report = Instant::now();
            let s = started.elapsed().as_secs_f64();
            println!(
                "seed [{}]: {done}/{to_add} conversations in {s:.1} s ({:.0}/s)",
                args.label,
                done as f64 / s.max(1e-9)
            );
        }
    }
    let insert_seconds = started.elapsed().as_secs_f64();

    if let Conn::Postgres(c) = &mut conn {
        sqlx::query(
            "SELECT setval('conversation_number_seq', (SELECT MAX(number) FROM conversations))",
        )
        .execute(&mut *c)
        .await?;
    }
    let analyze = Instant::now();
    with_conn!(&mut conn, c, D => {
        sqlx::query("ANALYZE").execute(&mut *c).await?;
    });
    if let Conn::Sqlite(c) = &mut conn {
        // Folds the write-ahead log back into the database file so the list
        // benchmark does not read through a log of a gigabyte.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *c)
            .await?;
    }
    let analyze_seconds = analyze.elapsed().as_secs_f64();

    let (total, in_inbox): (i64, i64) = with_conn!(&mut conn, c, D => {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations").fetch_one(&mut *c).await?;
        let in_inbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE inbox_id = $1")
            .bind(args.inbox).fetch_one(&mut *c).await?;
        (total, in_inbox)
    });
    with_conn!(conn, c, D => { c.close().await?; });

    println!(
        "seed [{}]: inserted {done} conversations (+ as many contacts and messages) in {insert_seconds:.1} s \
         ({:.0}/s), ANALYZE {analyze_seconds:.1} s; the database holds {total}, {in_inbox} in inbox {}",
        args.label,
        done as f64 / insert_seconds.max(1e-9),
        args.inbox
    );
    println!(
        "{}",
        json!({
            "bench": "seed",
            "label": args.label,
            "inserted": done,
            "conversations": total,
            "in_inbox": in_inbox,
            "seconds": round(insert_seconds),
            "per_second": round(done as f64 / insert_seconds.max(1e-9)),
            "analyze_seconds": round(analyze_seconds),
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_row_time() {
        let mut rng = Rng::new(3);
        let ms = 1_700_000_000_123;
        let id = uuid_v7_at(ms, &mut rng);
        assert_eq!(id.get_version_num(), 7);
        let (secs, nanos) = id.get_timestamp().map(|t| t.to_unix()).unwrap_or((0, 0));
        assert_eq!(secs as i64 * 1000 + i64::from(nanos / 1_000_000), ms);
        assert!(uuid_v7_at(ms + 1, &mut rng) > id);
    }
}

//! SQLite's hot writes on a thread of their own.
//!
//! SQLite admits one writer, so a write transaction's whole duration is
//! what limits throughput. Through sqlx every statement is a round trip to
//! the connection's worker thread and back to a Tokio task that may wait its
//! turn in the run queue, and the write lock is held across all of those
//! waits: a create (five statements) held it for about 0.7 ms, of which the
//! SQL itself was a small part. Here a closure runs the whole transaction on
//! the thread that owns the connection, in one hop.
//!
//! Jobs that queue up while a transaction runs are committed together
//! (group commit): each runs inside its own SAVEPOINT, so a job that fails
//! rolls back alone, and every caller hears back only after the COMMIT, so
//! nothing is reported written before it is. A job alone in its batch, and
//! a bulk job ([`Writer::write_alone`]), is its own transaction instead:
//! inside a savepoint, every statement that may abort halfway copies each
//! page it touches into the statement journal, and releasing it walks that
//! journal from the start — for an import batch of thousands of rows that
//! walk grew with the batch and took a tenth of the whole import.
//!
//! Writes that are not hot stay on sqlx's single write connection; the two
//! take turns through SQLite's lock (see [`busy`]).
//!
//! Checkpoints (copying the WAL back into the database, with two fsyncs)
//! are not left to SQLite's auto-checkpoint, which runs inside whichever
//! COMMIT crosses 1,000 WAL pages: small transactions cross it many times
//! a second, and each time every caller of that batch, and every job queued
//! behind it, waited for the fsyncs (the p99 of chat delivery was those
//! waits). Instead [`checkpointer`] copies the bulk every second on a
//! thread and connection of its own, beside the writer, and every few
//! seconds has the writer finish what was appended meanwhile — a short step
//! between two batches, after which the next transaction starts the WAL
//! over, so it stays bounded.

use crate::{Result, StoreError};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// What a job tells the loop: whether it succeeded (else its savepoint is
/// rolled back), and how to hand its result over once the commit is known.
/// A job is given the connection, or the reason it cannot run.
type Done = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(Result<&Connection>) -> (bool, Done) + Send>;

enum Msg {
    Job(Job),
    /// A job committed on its own, never grouped (see the module doc).
    Alone(Job),
    /// Finish the checkpoint the checkpointer began (see the module doc).
    Checkpoint,
    Close(oneshot::Sender<()>),
}

/// The handle; cloning shares the one thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Msg>,
}

/// At most this many jobs share one commit, so one batch cannot keep the
/// lock from sqlx's writer for long.
const MAX_BATCH: usize = 64;

/// How often the WAL is copied into the database beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Every this many copies the writer finishes one, and the WAL starts over.
/// The finish pauses writes for an fsync or two; at 1,000 chat messages a
/// second the WAL grows by about 50 MB a second (each small transaction
/// writes its pages whole), so this bounds it near 200 MB at that rate.
const FINISH_EVERY: u32 = 4;

impl Writer {
    /// Opens a second connection to the database at `path` (already created
    /// and in WAL mode) and starts the thread that owns it.
    pub(crate) fn open(path: &str) -> Result<Writer> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", -32000)?;
        conn.busy_handler(Some(busy))?;
        conn.set_prepared_statement_cache_capacity(64);
        // This connection's checkpoints are the checkpointer's (see the
        // module doc). sqlx's write connection keeps SQLite's own: its
        // writes are rare, and a long import through it keeps the WAL
        // bounded by itself.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("kefu-sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        let bulk = Connection::open(path)?;
        bulk.busy_handler(Some(busy))?;
        let writer = jobs.clone();
        std::thread::Builder::new()
            .name("kefu-sqlite-checkpoint".into())
            .spawn(move || checkpointer(bulk, writer))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in a transaction on the writer thread. The result comes back
    /// after the commit; an error from `f` undoes what `f` wrote, and only that.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.send(f, false).await
    }

    /// [`Writer::write`] for bulk jobs (import batches): the job is a
    /// transaction of its own, never grouped with others under savepoints.
    pub(crate) async fn write_alone<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.send(f, true).await
    }

    async fn send<R, F>(&self, f: F, alone: bool) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let out = conn.and_then(|conn| {
                catch_unwind(AssertUnwindSafe(|| f(conn)))
                    .unwrap_or_else(|_| Err(StoreError::Invalid("the write failed".into())))
            });
            let ok = out.is_ok();
            let done: Done = Box::new(move |committed| {
                let _ = tx.send(committed.and(out));
            });
            (ok, done)
        });
        let msg = if alone {
            Msg::Alone(job)
        } else {
            Msg::Job(job)
        };
        self.jobs.send(msg).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Finishes the queued jobs and closes the connection.
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Waits for sqlx's writer in steps of 100 µs (SQLite's own handler sleeps
/// whole milliseconds), for at most 10 s.
fn busy(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempt < 100_000
}

/// Every [`CHECKPOINT_EVERY`]: copies the WAL into the database while the
/// writer goes on (PASSIVE never blocks it); every [`FINISH_EVERY`] times,
/// then asks the writer to copy the few pages appended meanwhile. Ends when
/// the writer has closed.
fn checkpointer(conn: Connection, writer: mpsc::Sender<Msg>) {
    for round in 1u32.. {
        std::thread::sleep(CHECKPOINT_EVERY);
        match checkpoint(&conn) {
            Ok(0) => {}
            Ok(_) if round % FINISH_EVERY == 0 => {
                if writer.send(Msg::Checkpoint).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// A PASSIVE checkpoint; answers the number of frames the WAL held.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
}

fn run(conn: Connection, rx: mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut closing = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Alone(job) => {
                    if !batch.is_empty() {
                        commit_batch(&conn, std::mem::take(&mut batch));
                    }
                    commit_batch(&conn, vec![job]);
                }
                Msg::Checkpoint => {
                    // After the batch so far: its callers are not kept waiting.
                    if !batch.is_empty() {
                        commit_batch(&conn, std::mem::take(&mut batch));
                    }
                    if let Err(e) = checkpoint(&conn) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
                Msg::Close(reply) => closing = Some(reply),
            }
            if closing.is_none() && batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, batch);
        }
        if let Some(reply) = closing {
            drop(conn);
            let _ = reply.send(());
            return;
        }
    }
}

fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        for job in batch {
            let (_, done) = job(Err(StoreError::Invalid(format!("database busy: {msg}"))));
            done(Ok(()));
        }
        return;
    }
    if batch.len() == 1 {
        if let Some(job) = batch.into_iter().next() {
            commit_one(conn, job);
        }
        return;
    }
    let mut dones = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = conn.execute_batch("SAVEPOINT job");
        if let Err(e) = savepoint {
            let (_, done) = job(Err(e.into()));
            done(Ok(()));
            continue;
        }
        let (ok, done) = job(Ok(conn));
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        match conn.execute_batch(end) {
            Ok(()) => dones.push(done),
            Err(e) => done(Err(e.into())),
        }
    }
    finish(conn, dones);
}

/// One job, the transaction already begun: no savepoint, the transaction
/// is the job's.
fn commit_one(conn: &Connection, job: Job) {
    let (ok, done) = job(Ok(conn));
    if ok {
        return finish(conn, vec![done]);
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "rollback failed");
    }
    // The job's own error reaches its caller.
    done(Ok(()));
}

/// Commits, then tells the callers.
fn finish(conn: &Connection, dones: Vec<Done>) {
    let committed = conn.execute_batch("COMMIT");
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for done in dones {
        done(match &committed {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Invalid(format!("commit failed: {e}"))),
        });
    }
}

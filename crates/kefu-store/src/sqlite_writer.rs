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
//! nothing is reported written before it is.
//!
//! Writes that are not hot stay on sqlx's single write connection; the two
//! take turns through SQLite's lock (see [`busy`]).

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
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("kefu-sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` in a transaction on the writer thread. The result comes back
    /// after the commit; an error from `f` undoes what `f` wrote, and only that.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
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
        self.jobs
            .send(Msg::Job(job))
            .map_err(|_| StoreError::Closed)?;
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

fn run(conn: Connection, rx: mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut closing = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
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

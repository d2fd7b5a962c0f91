//! Sorted runs: staged messages on disk between staging and placing.
//!
//! Each staging batch is sorted in memory into placing order (customer,
//! account, time, key) and written once, sequentially, as a run file in the
//! import's work directory; placing merges a pass's runs. A message is
//! written to the database once, when it is placed: staging used to insert
//! every row into a table and two indexes only to read it back in order,
//! and those random index writes were most of an import's time.
//!
//! A run is one JSON array per line: key, customer kind, customer value,
//! account, sent at, agent reference, body. The file is synced before the
//! transaction that records it commits, so a recorded run is complete; a
//! file that no transaction recorded (the process died in between) is
//! removed when the directory is next opened.

use super::After;
use crate::{Result, StoreError};
use serde_json::value::RawValue;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A staged message as runs hold it; the body is JSON, kept as text.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Row {
    pub key: String,
    pub customer_kind: String,
    pub customer_value: String,
    pub account: String,
    pub sent_at: i64,
    pub agent_ref: Option<String>,
    #[sqlx(try_from = "String")]
    pub body: Body,
}

/// A staged body: JSON text, checked once when it was made.
#[derive(Debug)]
pub(super) struct Body(pub Box<RawValue>);

impl TryFrom<String> for Body {
    type Error = serde_json::Error;
    fn try_from(s: String) -> std::result::Result<Body, serde_json::Error> {
        RawValue::from_string(s).map(Body)
    }
}

/// A line of a run file.
type Line = (
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Box<RawValue>,
);

impl Row {
    /// The placing order.
    pub fn order(&self) -> (&str, &str, &str, i64, &str) {
        (
            &self.customer_kind,
            &self.customer_value,
            &self.account,
            self.sent_at,
            &self.key,
        )
    }

    fn is_after(&self, after: Option<&After>) -> bool {
        after.is_none_or(|(k, v, a, t, key)| {
            self.order() > (k.as_str(), v.as_str(), a.as_str(), *t, key.as_str())
        })
    }

    /// About what the row takes in memory.
    pub fn size(&self) -> usize {
        let texts = self.key.len()
            + self.customer_kind.len()
            + self.customer_value.len()
            + self.account.len()
            + self.agent_ref.as_ref().map_or(0, String::len)
            + self.body.0.get().len();
        texts + std::mem::size_of::<Row>()
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let line = (
            &self.key,
            &self.customer_kind,
            &self.customer_value,
            &self.account,
            self.sent_at,
            &self.agent_ref,
            &self.body.0,
        );
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")
    }

    fn read(line: &str) -> serde_json::Result<Row> {
        let (key, customer_kind, customer_value, account, sent_at, agent_ref, body): Line =
            serde_json::from_str(line)?;
        Ok(Row {
            key,
            customer_kind,
            customer_value,
            account,
            sent_at,
            agent_ref,
            body: Body(body),
        })
    }
}

/// The work directory of imports into one database, locked while an import
/// uses it. Clones share the lock and the merge.
#[derive(Clone)]
pub struct ImportWork {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// Held for the lock: two imports writing runs into one directory
    /// would remove each other's files as orphans.
    _lock: File,
    merge: Mutex<Option<Merge>>,
}

impl ImportWork {
    /// Creates `dir` if needed and locks it, or fails when another import
    /// holds it.
    pub(super) fn lock(dir: &Path) -> Result<ImportWork> {
        std::fs::create_dir_all(dir)?;
        let lock = File::create(dir.join("lock"))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StoreError::Invalid(format!(
                "another import is using {}; wait for it to finish",
                dir.display()
            )),
            std::fs::TryLockError::Error(e) => StoreError::Io(e),
        })?;
        Ok(ImportWork {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                _lock: lock,
                merge: Mutex::new(None),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(super) fn path(&self, run: Uuid) -> PathBuf {
        self.inner.dir.join(format!("{run}.run"))
    }

    /// Removes run files no transaction recorded; fails when a recorded one
    /// is missing (the import ran with another work directory).
    pub(super) fn tidy(&self, recorded: &[Uuid]) -> Result<()> {
        if let Some(missing) = recorded.iter().map(|r| self.path(*r)).find(|p| !p.exists()) {
            return Err(StoreError::Invalid(format!(
                "the unplaced messages of an earlier import are in {}, which is missing: \
                 run the import again with the data directory it used",
                missing.display()
            )));
        }
        let recorded: std::collections::HashSet<&Uuid> = recorded.iter().collect();
        for entry in std::fs::read_dir(self.dir())? {
            let path = entry?.path();
            let run = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".run"))
                .and_then(|id| Uuid::parse_str(id).ok());
            if run.is_some_and(|r| !recorded.contains(&r)) {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Starts writing run `id`; rows are pushed in placing order.
    pub(super) fn run_writer(&self, id: Uuid) -> Result<RunWriter> {
        Ok(RunWriter {
            id,
            dir: self.dir().to_path_buf(),
            w: BufWriter::with_capacity(1 << 20, File::create(self.path(id))?),
            rows: 0,
            refs: BTreeSet::new(),
        })
    }

    /// Removes the files of runs whose rows are all placed.
    pub(super) fn remove(&self, runs: &[Uuid]) {
        for run in runs {
            if let Err(e) = std::fs::remove_file(self.path(*run)) {
                tracing::warn!(run = %run, error = %e, "could not remove an import run file");
            }
        }
    }

    /// Whether the open merge stands where `pass`/`after` say placing does.
    pub(super) fn merging_at(&self, pass: i64, after: Option<&After>) -> bool {
        let merge = self.inner.merge.lock().unwrap_or_else(|e| e.into_inner());
        merge
            .as_ref()
            .is_some_and(|m| m.pass == pass && m.after.as_ref() == after)
    }

    /// Opens a merge of `runs` (of `source`) at `pass`, after `after`.
    pub(super) fn open_merge(
        &self,
        pass: i64,
        runs: &[Uuid],
        after: Option<After>,
        source: String,
    ) -> Result<()> {
        let merged = Merged {
            runs: runs.to_vec(),
            source,
        };
        let merge = Merge::open(self, pass, merged, after)?;
        *self.inner.merge.lock().unwrap_or_else(|e| e.into_inner()) = Some(merge);
        Ok(())
    }

    /// The next `limit` rows of the open merge, and what it merges.
    pub(super) fn take(&self, limit: usize) -> Result<(Vec<Row>, Arc<Merged>)> {
        let mut merge = self.inner.merge.lock().unwrap_or_else(|e| e.into_inner());
        match merge.as_mut() {
            Some(m) => Ok((m.take(limit)?, m.merged.clone())),
            None => Ok((Vec::new(), Arc::default())),
        }
    }

    /// Merges the runs `group` into one new run `id`, synced; returns its
    /// number of rows and agent references. The group's files stay until
    /// the caller has recorded the swap.
    pub(super) fn merge_into(
        &self,
        id: Uuid,
        pass: i64,
        group: &[Uuid],
    ) -> Result<(i64, serde_json::Value)> {
        let merged = Merged {
            runs: group.to_vec(),
            source: String::new(),
        };
        let mut merge = Merge::open(self, pass, merged, None)?;
        let mut w = self.run_writer(id)?;
        loop {
            let rows = merge.take(8192)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                w.push(r)?;
            }
        }
        let (_, n, refs) = w.finish()?;
        Ok((n, refs))
    }

    /// Forgets the merge (a batch failed: the database is behind it).
    pub(super) fn reset(&self) {
        *self.inner.merge.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A run being written.
pub(super) struct RunWriter {
    id: Uuid,
    dir: PathBuf,
    w: BufWriter<File>,
    rows: i64,
    refs: BTreeSet<String>,
}

impl RunWriter {
    pub fn push(&mut self, row: &Row) -> Result<()> {
        row.write(&mut self.w)?;
        self.rows += 1;
        if let Some(a) = &row.agent_ref
            && !self.refs.contains(a)
        {
            self.refs.insert(a.clone());
        }
        Ok(())
    }

    /// Syncs the file (and its directory entry); returns the run's id, its
    /// number of rows and its agent references.
    pub fn finish(self) -> Result<(Uuid, i64, serde_json::Value)> {
        self.w
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        let refs = self
            .refs
            .into_iter()
            .map(serde_json::Value::String)
            .collect();
        Ok((self.id, self.rows, serde_json::Value::Array(refs)))
    }
}

/// One run being read.
struct Source {
    path: PathBuf,
    reader: BufReader<File>,
    line: u64,
    buf: String,
}

impl Source {
    fn next(&mut self) -> Result<Option<Row>> {
        self.buf.clear();
        if self.reader.read_line(&mut self.buf)? == 0 {
            return Ok(None);
        }
        self.line += 1;
        Row::read(self.buf.trim_end()).map(Some).map_err(|e| {
            StoreError::Invalid(format!(
                "import run {} line {}: {e}",
                self.path.display(),
                self.line
            ))
        })
    }
}

/// The smallest head of a run comes out first.
struct Head {
    row: Row,
    source: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Head) -> Ordering {
        self.row
            .order()
            .cmp(&other.row.order())
            .then(self.source.cmp(&other.source))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// What a merge reads: its runs and their source.
#[derive(Default)]
pub(super) struct Merged {
    pub runs: Vec<Uuid>,
    pub source: String,
}

/// A k-way merge of a pass's runs, from just after the placing cursor.
struct Merge {
    pass: i64,
    merged: Arc<Merged>,
    /// The last row taken.
    after: Option<After>,
    sources: Vec<Source>,
    heads: BinaryHeap<Reverse<Head>>,
}

impl Merge {
    fn open(work: &ImportWork, pass: i64, merged: Merged, after: Option<After>) -> Result<Merge> {
        let merged = Arc::new(merged);
        let mut m = Merge {
            pass,
            after,
            sources: Vec::with_capacity(merged.runs.len()),
            heads: BinaryHeap::with_capacity(merged.runs.len()),
            merged: merged.clone(),
        };
        for run in &merged.runs {
            let path = work.path(*run);
            let file = File::open(&path).map_err(|e| {
                StoreError::Invalid(format!(
                    "import run {}: {e} (is another import using this database \
                     from another data directory?)",
                    path.display()
                ))
            })?;
            m.sources.push(Source {
                path,
                reader: BufReader::with_capacity(64 << 10, file),
                line: 0,
                buf: String::new(),
            });
            let source = m.sources.len() - 1;
            // Rows up to the cursor were placed before (a resumed run).
            while let Some(row) = m.sources[source].next()? {
                if row.is_after(m.after.as_ref()) {
                    m.heads.push(Reverse(Head { row, source }));
                    break;
                }
            }
        }
        Ok(m)
    }

    fn take(&mut self, limit: usize) -> Result<Vec<Row>> {
        let mut rows: Vec<Row> = Vec::with_capacity(limit.min(self.heads.len() * 1024));
        while rows.len() < limit {
            let Some(Reverse(head)) = self.heads.pop() else {
                break;
            };
            if let Some(row) = self.sources[head.source].next()? {
                self.heads.push(Reverse(Head {
                    row,
                    source: head.source,
                }));
            }
            // Runs are sorted and keys unique: anything else is a damaged
            // file, and placing it would break a conversation's order.
            let in_order = match rows.last() {
                Some(prev) => head.row.order() > prev.order(),
                None => head.row.is_after(self.after.as_ref()),
            };
            if !in_order {
                return Err(StoreError::Invalid(format!(
                    "import run {} is out of order at {}",
                    self.sources[head.source].path.display(),
                    head.row.key
                )));
            }
            rows.push(head.row);
        }
        if let Some(last) = rows.last() {
            self.after = Some(super::after_of(last));
        }
        Ok(rows)
    }
}

//! Runs an import: files → `kefu-wechat` parsers → PII policy → store
//! (`Store::import_stage` into sorted runs, then `Store::import_place`), with a progress bar
//! and a report. The `kefu import wechat` command only parses flags and calls
//! [`run`].
//!
//! Start with [`run`] in `run.rs`, which orders the work:
//!
//! 1. tag files (`tags/get`, `get_corp_tag_list`) are read first, every
//!    time: they are small and name the tag ids that contacts carry;
//! 2. contact files are staged (contacts upserted by identity);
//! 3. message files, one source at a time (微信客服, 会话存档, 公众号): staged,
//!    then placed into conversations tagged `imported` and the source.
//!
//! Modules:
//! - `files`: finding files, fingerprints, format detection, the reader
//!   thread that parses one file into batches.
//! - `convert`: WeChat records → the store's `ImportContact` /
//!   `StagedMessage` (keys, directions, metadata, tag names).
//! - `tags`: the tag book built from tag files.
//! - `agents`: WeChat userids → kefu agents (existing, mapped, placeholders).
//! - `report`: [`Report`], its text form and exit code.
//! - `progress`: the terminal progress bar.

mod agents;
mod convert;
mod files;
mod progress;
mod report;
mod run;
mod tags;

pub use kefu_wechat::pii::{PiiMode, PiiPolicy};
pub use kefu_wechat::{Encoding, Format, MessageSource, UnknownEncoding, encoding_for_label};
pub use report::{ConflictLine, FileReport, MergeLine, RejectedLine, Report};
pub use run::run;

use std::path::PathBuf;
use uuid::Uuid;

/// Everything `kefu import wechat` can be told.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files or directories (read recursively, in name order).
    pub paths: Vec<PathBuf>,
    /// Every file is read as this format instead of detecting it.
    pub format: Option<Format>,
    /// Read and count everything, write nothing.
    pub dry_run: bool,
    /// A longer silence between two messages starts a new conversation.
    pub gap_hours: f64,
    pub keep_deleted_tags: bool,
    pub keep_groups: bool,
    /// `userid,email` lines mapping WeChat userids to kefu agents.
    pub agent_map: Option<PathBuf>,
    /// Directory holding the media files named by media_id / sdkfileid / md5sum.
    pub media_dir: Option<PathBuf>,
    /// Also hash every media file so `md5sum` references match whatever the
    /// file names (reads the whole directory once).
    pub hash_media: bool,
    pub pii: PiiPolicy,
    /// Messages per staging transaction (one sorted run, cut earlier at
    /// 32 MB) at most; placing takes as many per transaction, up to 50,000.
    pub batch: usize,
    /// Where staged messages wait, as sorted runs, until they are placed; a
    /// killed import resumes from there. Default: `import` beside the
    /// attachments directory (the data directory).
    pub work_dir: Option<PathBuf>,
    /// Who runs the import, for `import_runs`.
    pub actor: String,
    /// Inbox of the imported conversations; default: one named "微信导入",
    /// created when missing.
    pub inbox: Option<Uuid>,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// The encoding of CSV files (`--encoding`); `None`: detected per file.
    pub encoding: Option<&'static kefu_wechat::Encoding>,
}

impl Options {
    /// The defaults of the command line for these paths. PII: ID and bank
    /// card numbers are masked (they are never needed to answer a customer
    /// and are the costliest to leak); mobile numbers and emails are kept
    /// because agents call and write back to them.
    pub fn new(paths: Vec<PathBuf>) -> Options {
        Options {
            paths,
            format: None,
            dry_run: false,
            gap_hours: 24.0,
            keep_deleted_tags: false,
            keep_groups: false,
            agent_map: None,
            media_dir: None,
            hash_media: false,
            pii: PiiPolicy {
                mobile: PiiMode::Keep,
                resident_id: PiiMode::Mask,
                bank_card: PiiMode::Mask,
                email: PiiMode::Keep,
            },
            batch: 100_000,
            work_dir: None,
            actor: "unknown".into(),
            inbox: None,
            progress: false,
            encoding: None,
        }
    }
}

/// What stops a run. A bad line or an unreadable file does not: they are
/// rejected in the report and the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] kefu_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("agent map {0}")]
    AgentMap(String),
    #[error("reader thread failed: {0}")]
    Reader(String),
    #[error("writing a batch failed: {0}")]
    Writer(String),
}

impl ImportError {
    fn io(path: &std::path::Path, source: std::io::Error) -> ImportError {
        ImportError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

//! Input files: finding them, telling their format, fingerprinting them,
//! and the reader thread that parses one into batches.

use crate::convert::{Ctx, Item, item};
use kefu_wechat::pii::PiiSummary;
use kefu_wechat::{CsvRecords, Format, JsonRecords, OpenError, Records, SheetOptions};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// A file to import.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub format: Format,
    pub size: u64,
}

/// The files of a walk, and those it left out.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<PathBuf>,
    /// Files in media folders: the one `--media` names and any folder
    /// named `media` (any case), which hold attachments, not sources.
    pub media_files: u64,
}

/// Every file under `paths`, directories walked recursively, each in name
/// order so that runs over the same tree go in the same order (a resumed run
/// must place what a clean one would). Media folders (see [`Walk`]) are
/// counted, not walked into: an export folder laid out as the README shows
/// holds `media/` beside the JSON.
pub fn walk(paths: &[PathBuf], media: Option<&Path>) -> io::Result<Walk> {
    let media = media.and_then(|m| std::fs::canonicalize(m).ok());
    let mut out = Walk::default();
    for p in paths {
        let named = is_media_dir(p, media.as_deref());
        walk_into(p, media.as_deref(), named, &mut out)?;
    }
    Ok(out)
}

/// `--media`'s folder anywhere; a folder named `media` below a given path.
fn is_media_dir(p: &Path, media: Option<&Path>) -> bool {
    p.is_dir() && media.is_some_and(|m| std::fs::canonicalize(p).is_ok_and(|c| c == m))
}

fn walk_into(p: &Path, media: Option<&Path>, skip: bool, out: &mut Walk) -> io::Result<()> {
    if !p.is_dir() {
        match skip {
            true => out.media_files += 1,
            false => out.files.push(p.to_path_buf()),
        }
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for e in entries {
        let named_media = e.is_dir()
            && e.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.eq_ignore_ascii_case("media"));
        let skip = skip || named_media || is_media_dir(&e, media);
        walk_into(&e, media, skip, out)?;
    }
    Ok(())
}

/// What a found file is.
#[derive(Debug)]
pub enum Found {
    Source(Input),
    /// Not a source (an image, a voice file, an archive…: its kind).
    Binary(&'static str),
}

/// The file's format: the forced one, or sniffed from its first 8 KiB;
/// files that cannot be a source are told apart by their bytes first.
pub fn detect(path: &Path, forced: Option<Format>) -> Result<Found, OpenError> {
    let mut file = std::fs::File::open(path).map_err(OpenError::Io)?;
    let size = file.metadata().map_err(OpenError::Io)?.len();
    let mut head = Vec::with_capacity(8192);
    (&mut file)
        .take(8192)
        .read_to_end(&mut head)
        .map_err(OpenError::Io)?;
    let binary = match forced {
        Some(Format::Xlsx) => None,
        _ => kefu_wechat::non_source(&head, Some(path)),
    };
    if let Some(kind) = binary {
        return Ok(Found::Binary(kind));
    }
    let format = match forced {
        Some(f) => f,
        None => kefu_wechat::detect(&head, Some(path)).ok_or(OpenError::Undetected)?,
    };
    Ok(Found::Source(Input {
        path: path.to_path_buf(),
        format,
        size,
    }))
}

const EDGE: u64 = 64 * 1024;

/// sha256 of the size and the first and last 64 KiB: cheap on a 5 GB file,
/// and an export that grew or was rewritten gets a new fingerprint. A file
/// edited only in its middle would not — exports are not edited that way.
pub fn fingerprint(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    let mut buf = Vec::with_capacity(EDGE as usize);
    (&mut file).take(EDGE).read_to_end(&mut buf)?;
    h.update(&buf);
    if size > EDGE {
        file.seek(SeekFrom::Start(size.saturating_sub(EDGE).max(EDGE)))?;
        buf.clear();
        file.take(EDGE).read_to_end(&mut buf)?;
        h.update(&buf);
    }
    Ok(hex::encode(h.finalize()))
}

/// Counts the bytes read, for the progress bar and the recorded offset.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The file's records, and for a CSV the encoding it is read in.
fn open(
    input: &Input,
    sheet: SheetOptions,
    read: Arc<AtomicU64>,
) -> Result<(Records, Option<&'static str>), OpenError> {
    if !input.format.is_json() {
        // Spreadsheets are small; their bytes are counted as read at once.
        read.store(input.size, Ordering::Relaxed);
        if input.format == Format::Csv {
            let file = std::fs::File::open(&input.path).map_err(OpenError::Io)?;
            let csv = CsvRecords::new(file, sheet).map_err(OpenError::Io)?;
            let encoding = csv.encoding;
            return Ok((Box::new(csv), Some(encoding)));
        }
        return kefu_wechat::open(&input.path, Some(input.format), sheet).map(|(_, r)| (r, None));
    }
    let file = std::fs::File::open(&input.path).map_err(OpenError::Io)?;
    let reader = std::io::BufReader::with_capacity(64 * 1024, Counting { inner: file, read });
    Ok((Box::new(JsonRecords::new(input.format, reader)), None))
}

/// Up to `batch` records of a file, converted.
pub struct Batch {
    pub items: Vec<Item>,
    /// Records consumed from the start of the file, this batch included:
    /// the resume point once the batch is committed.
    pub consumed: u64,
    /// Bytes read so far (the reader buffers ahead: an upper bound).
    pub bytes: u64,
    pub pii: PiiSummary,
    /// The encoding a CSV is read in.
    pub encoding: Option<&'static str>,
}

/// Parses `input` on the calling (blocking) thread, skipping the first
/// `skip` records (committed by an earlier run), and sends batches until the
/// file ends or the receiver is gone. Parsing and PII scanning thus run
/// beside the database writes instead of between them.
pub fn read(
    input: &Input,
    skip: u64,
    batch: usize,
    ctx: &Ctx,
    tx: mpsc::Sender<Batch>,
) -> Result<(), OpenError> {
    let read = Arc::new(AtomicU64::new(0));
    let (mut records, encoding) = open(input, ctx.sheet, read.clone())?;
    for _ in 0..skip {
        if records.next().is_none() {
            break;
        }
    }
    let mut consumed = skip;
    let next = || Batch {
        items: Vec::with_capacity(batch),
        consumed: 0,
        bytes: 0,
        pii: PiiSummary::default(),
        encoding,
    };
    let mut current = next();
    for r in records {
        let it = item(ctx, r, &mut current.pii);
        current.items.push(it);
        consumed += 1;
        if current.items.len() >= batch {
            current.consumed = consumed;
            current.bytes = read.load(Ordering::Relaxed);
            if tx
                .blocking_send(std::mem::replace(&mut current, next()))
                .is_err()
            {
                return Ok(());
            }
        }
    }
    current.consumed = consumed;
    current.bytes = read.load(Ordering::Relaxed);
    let _ = tx.blocking_send(current);
    Ok(())
}

//! Attachment bytes on disk, addressed by their SHA-256: the same file sent
//! twice is stored once, and a name can never escape the directory.
//!
//! Uploads arrive through [`Blobs::spool`] (streamed to a temporary file
//! while hashing, so a request never holds a file in memory) and become a
//! blob with [`Blobs::keep`]; small byte buffers go through [`Blobs::put`].
//!
//! Deleting a content-addressed file races with a new upload of the same
//! bytes (it finds the file present, keeps it, and records a row only
//! afterwards). So every store of existing bytes refreshes the file's
//! modification time, and [`Blobs::retire`] first renames the file away and
//! only then lets the caller look at its age and its references: an upload
//! that saw the file before the rename made it fresh (the caller restores
//! it), one after the rename writes the file again.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

/// The extension of files being received.
const SPOOL: &str = "spool";
/// The most a spool copies per write to the blocking pool.
const SPOOL_BUF: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn new(dir: impl Into<PathBuf>) -> Blobs {
        Blobs { dir: dir.into() }
    }

    /// Writes `bytes` (via a temporary file and a rename, so a crash never
    /// leaves a half-written blob under its final name) and returns the hash.
    pub async fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let hash = hex(&Sha256::digest(bytes));
        let path = self
            .path(&hash)
            .ok_or_else(|| std::io::Error::other("bad hash"))?;
        if refresh(&path).await {
            return Ok(hash);
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = path.with_extension(format!("tmp{}", uuid::Uuid::now_v7().simple()));
        // Not tokio::fs::write: it copies the whole buffer before writing
        // (a 30 MB mail would be held twice); File::write_all hands the
        // blocking writer a bounded chunk at a time.
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(bytes).await?;
        file.flush().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await?;
        Ok(hash)
    }

    /// A temporary file in this store's directory (so [`Blobs::keep`] is a
    /// rename) that hashes what is written to it.
    pub async fn spool(&self) -> std::io::Result<Spool> {
        // Beside the two-letter blob folders, never mistaken for one.
        tokio::fs::create_dir_all(&self.dir).await?;
        let path = self
            .dir
            .join(format!("{}.{SPOOL}", uuid::Uuid::now_v7().simple()));
        let mut file = tokio::fs::File::create(&path).await?;
        // Each write is copied for the blocking pool; tokio's default of up
        // to 2 MiB a copy let ten concurrent uploads hold 20 MiB in flight.
        file.set_max_buf_size(SPOOL_BUF);
        Ok(Spool {
            file,
            hasher: Sha256::new(),
            size: 0,
            tmp: TempPath(path),
        })
    }

    /// Makes a spooled file a blob and returns its hash. Bytes stored
    /// already are kept once: the spooled copy goes when it is dropped.
    pub async fn keep(&self, spooled: &Spooled) -> std::io::Result<String> {
        let path = self
            .path(&spooled.sha256)
            .ok_or_else(|| std::io::Error::other("bad hash"))?;
        if refresh(&path).await {
            return Ok(spooled.sha256.clone());
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(spooled.path(), &path).await?;
        Ok(spooled.sha256.clone())
    }

    /// Renames the blob away so that no new upload can rely on it any
    /// more; `None` when there is no such file (another node took it).
    pub async fn retire(&self, sha256: &str) -> std::io::Result<Option<Retired>> {
        let Some(path) = self.path(sha256) else {
            return Ok(None);
        };
        let parked = path.with_extension(format!("swept{}", uuid::Uuid::now_v7().simple()));
        match tokio::fs::rename(&path, &parked).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let modified = tokio::fs::metadata(&parked).await?.modified()?;
        Ok(Some(Retired {
            path,
            parked,
            modified,
        }))
    }

    /// Removes temporary files older than `before` that a crash or a
    /// dropped connection left behind; returns how many.
    pub async fn remove_stale_spools(&self, before: SystemTime) -> std::io::Result<u64> {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            if entry.path().extension().and_then(|e| e.to_str()) != Some(SPOOL) {
                continue;
            }
            let old = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < before);
            if old && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Where the blob with this hash lives; `None` for anything that is not
    /// 64 lower-case hex digits.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        let ok = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| self.dir.join(&sha256[..2]).join(&sha256[2..4]).join(sha256))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// True when the blob is there and now counts as just stored (see the
/// module's note on deleting). Checked again after the touch: a sweeper
/// that renamed it away in between must not leave the caller without it.
async fn refresh(path: &Path) -> bool {
    let p = path.to_path_buf();
    let touched = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(SystemTime::now()))
    })
    .await;
    matches!(touched, Ok(Ok(()))) && tokio::fs::try_exists(path).await.unwrap_or(false)
}

/// A file being received: written to disk as it arrives, hashed on the way.
#[derive(Debug)]
pub struct Spool {
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    tmp: TempPath,
}

impl Spool {
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn finish(mut self) -> std::io::Result<Spooled> {
        self.file.flush().await?;
        Ok(Spooled {
            sha256: hex(&self.hasher.finalize()),
            size: self.size,
            tmp: self.tmp,
        })
    }
}

/// A received file waiting on disk for [`Blobs::keep`]; when dropped, its
/// temporary file is removed (a refused submission leaves nothing).
#[derive(Debug)]
pub struct Spooled {
    pub sha256: String,
    pub size: u64,
    tmp: TempPath,
}

impl Spooled {
    /// The temporary file, to look at its contents before keeping it.
    pub fn path(&self) -> &Path {
        &self.tmp.0
    }
}

#[derive(Debug)]
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        // Gone already once kept; a failure otherwise leaves a stale file
        // for `remove_stale_spools`.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A blob renamed away by [`Blobs::retire`]: delete it or put it back.
#[derive(Debug)]
pub struct Retired {
    path: PathBuf,
    parked: PathBuf,
    /// The last time its bytes were stored (written or found present).
    pub modified: SystemTime,
}

impl Retired {
    pub async fn delete(self) -> std::io::Result<()> {
        tokio::fs::remove_file(&self.parked).await
    }

    /// Back under its name. Should an upload have written the same bytes
    /// there meanwhile, this replaces them with themselves.
    pub async fn restore(self) -> std::io::Result<()> {
        tokio::fs::rename(&self.parked, &self.path).await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_bytes_same_file() {
        let dir = std::env::temp_dir().join(format!("kefu-blobs-{}", uuid::Uuid::now_v7()));
        let blobs = Blobs::new(&dir);
        let a = blobs.put("退款凭证".as_bytes()).await.unwrap();
        let b = blobs.put("退款凭证".as_bytes()).await.unwrap();
        assert_eq!(a, b);
        let path = blobs.path(&a).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), "退款凭证".as_bytes());
        assert!(blobs.path("../../etc/passwd").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn spooled_files_are_kept_once_or_removed() {
        let dir = std::env::temp_dir().join(format!("kefu-blobs-{}", uuid::Uuid::now_v7()));
        let blobs = Blobs::new(&dir);
        let put = blobs.put("合同 v2".as_bytes()).await.unwrap();
        let mut spool = blobs.spool().await.unwrap();
        spool.write("合同".as_bytes()).await.unwrap();
        spool.write(" v2".as_bytes()).await.unwrap();
        let spooled = spool.finish().await.unwrap();
        assert_eq!((spooled.sha256.as_str(), spooled.size), (put.as_str(), 9));
        let tmp = spooled.path().to_path_buf();
        assert_eq!(blobs.keep(&spooled).await.unwrap(), put);
        drop(spooled);
        assert!(!tmp.exists(), "the second copy is not kept");

        let mut spool = blobs.spool().await.unwrap();
        spool.write(b"refused").await.unwrap();
        let spooled = spool.finish().await.unwrap();
        let tmp = spooled.path().to_path_buf();
        drop(spooled);
        assert!(!tmp.exists(), "dropped unkept, the file goes");

        // Retired, a blob can come back or go.
        let retired = blobs.retire(&put).await.unwrap().unwrap();
        assert!(!blobs.path(&put).unwrap().exists());
        assert!(blobs.retire(&put).await.unwrap().is_none());
        retired.restore().await.unwrap();
        assert!(blobs.path(&put).unwrap().exists());
        blobs
            .retire(&put)
            .await
            .unwrap()
            .unwrap()
            .delete()
            .await
            .unwrap();
        assert!(!blobs.path(&put).unwrap().exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

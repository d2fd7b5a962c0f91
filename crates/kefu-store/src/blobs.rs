//! Attachment bytes on disk, addressed by their SHA-256: the same file sent
//! twice is stored once, and a name can never escape the directory.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

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
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
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
}

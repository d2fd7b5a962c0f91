//! Finding a message's file in a media directory.
//!
//! Exporters name downloaded files by the key they fetched them with:
//! `media_id` (微信客服), `sdkfileid` or `md5sum` (session archive), with or
//! without an extension. [`MediaIndex::scan`] records each file's name and
//! stem; [`MediaIndex::resolve`] tries a message's keys in turn. Files named
//! otherwise can still be matched by content hash with
//! [`MediaIndex::hash_files`], run on demand since it reads every file.
//!
//! Memory: one path per file (plus one digest per file after hashing).
//! Voice stays as the original AMR/Silk file; [`sniff_mime`] names its type
//! and the duration comes from the message.

use crate::model::MediaRef;
use md5::{Digest, Md5};
use serde::Serialize;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct MediaIndex {
    by_name: HashMap<String, PathBuf>,
    /// md5 hex of file contents → path, filled by `hash_files`.
    by_md5: HashMap<String, PathBuf>,
    /// Names seen twice: the first file wins, the report shows the count.
    pub duplicate_names: usize,
    pub files: usize,
}

/// How a reference was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    FileName,
    ContentMd5,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Resolution {
    Found {
        path: PathBuf,
        key: String,
        by: MatchedBy,
        mime: Option<&'static str>,
    },
    /// The keys that were tried (empty when the message named none).
    Missing { keys: Vec<String> },
}

impl MediaIndex {
    /// Walks `dir` recursively (symlinked directories are not followed, so a
    /// link loop cannot hang the scan).
    pub fn scan(dir: &Path) -> io::Result<Self> {
        let mut index = MediaIndex::default();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() || kind.is_symlink() {
                    index.add(entry.path());
                }
            }
        }
        Ok(index)
    }

    fn add(&mut self, path: PathBuf) {
        self.files += 1;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string);
        let stem = path
            .file_stem()
            .and_then(|n| n.to_str())
            .map(str::to_string);
        let mut keys: Vec<String> = name.into_iter().chain(stem).collect();
        keys.dedup();
        for key in keys {
            match self.by_name.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => self.duplicate_names += 1,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(path.clone());
                }
            }
        }
    }

    /// Hashes every file's content (md5, streamed), so that `md5sum`
    /// references match files whatever their names. Returns how many files
    /// were hashed; unreadable files are skipped.
    pub fn hash_files(&mut self) -> usize {
        let mut paths: Vec<&PathBuf> = self.by_name.values().collect();
        paths.sort();
        paths.dedup();
        let hashed: Vec<(String, PathBuf)> = paths
            .into_iter()
            .filter_map(|p| Some((md5_file(p).ok()?, p.clone())))
            .collect();
        let n = hashed.len();
        for (digest, path) in hashed {
            self.by_md5.entry(digest).or_insert(path);
        }
        n
    }

    /// Finds the file for a reference: by name (media_id, sdkfileid, md5sum),
    /// then by content hash if `hash_files` ran.
    pub fn resolve(&self, m: &MediaRef) -> Resolution {
        let keys: Vec<&str> = m.keys().collect();
        for key in &keys {
            if let Some(path) = self.by_name.get(*key) {
                return found(path, key, MatchedBy::FileName);
            }
        }
        if let Some(md5) = m.md5sum.as_deref()
            && let Some(path) = self.by_md5.get(&md5.to_ascii_lowercase())
        {
            return found(path, md5, MatchedBy::ContentMd5);
        }
        Resolution::Missing {
            keys: keys.into_iter().map(str::to_string).collect(),
        }
    }
}

fn found(path: &Path, key: &str, by: MatchedBy) -> Resolution {
    let mime = mime_of(path).ok().flatten();
    Resolution::Found {
        path: path.to_path_buf(),
        key: key.to_string(),
        by,
        mime,
    }
}

pub fn md5_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The type of a file from its first bytes; WeChat voice is AMR or Silk.
pub fn sniff_mime(head: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"#!AMR", "audio/amr"),
        (b"#!SILK_V3", "audio/silk"),
        (b"\x02#!SILK_V3", "audio/silk"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF8", "image/gif"),
        (b"%PDF", "application/pdf"),
        (b"ID3", "audio/mpeg"),
        (b"PK\x03\x04", "application/zip"),
    ];
    if let Some((_, mime)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(mime);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some("video/mp4");
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    None
}

/// [`sniff_mime`] of a file's first bytes.
pub fn mime_of(path: &Path) -> io::Result<Option<&'static str>> {
    let mut head = Vec::with_capacity(16);
    fs::File::open(path)?.take(16).read_to_end(&mut head)?;
    Ok(sniff_mime(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_table() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"#!AMR\n...", Some("audio/amr")),
            (b"#!SILK_V3\x0c", Some("audio/silk")),
            (b"\x02#!SILK_V3\x0c", Some("audio/silk")),
            (b"\xFF\xD8\xFF\xE0", Some("image/jpeg")),
            (b"\x00\x00\x00\x18ftypmp42", Some("video/mp4")),
            (b"RIFF\x00\x00\x00\x00WEBPVP8", Some("image/webp")),
            (b"hello", None),
            (b"", None),
        ];
        for (head, want) in cases {
            assert_eq!(sniff_mime(head), *want, "{head:?}");
        }
    }
}

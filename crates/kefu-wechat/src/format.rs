//! Which source a file is: named by `--format`, or sniffed from its first
//! bytes and name by [`detect`].

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `kf/sync_msg` responses (one, an array, or concatenated).
    KfSync,
    /// NDJSON of `msg_list` items. Read by the same code as `KfSync`: the
    /// two differ only in what `detect` saw.
    KfMessages,
    /// `kf/customer/batchget` responses.
    KfCustomers,
    /// Session archive (会话内容存档), decrypted NDJSON.
    Archive,
    /// Official Account `customservice/msgrecord/getmsglist`.
    OaRecords,
    /// Official Account `user/info` / `user/info/batchget`.
    OaUsers,
    /// Official Account `tags/get`.
    OaTags,
    /// `externalcontact/get` / `batch/get_by_user`.
    Contacts,
    /// `externalcontact/get_corp_tag_list`.
    CorpTags,
    Csv,
    Xlsx,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::KfSync,
        Format::KfMessages,
        Format::KfCustomers,
        Format::Archive,
        Format::OaRecords,
        Format::OaUsers,
        Format::OaTags,
        Format::Contacts,
        Format::CorpTags,
        Format::Csv,
        Format::Xlsx,
    ];

    /// The `--format` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::KfSync => "kf-sync",
            Format::KfMessages => "kf-messages",
            Format::KfCustomers => "kf-customers",
            Format::Archive => "archive",
            Format::OaRecords => "oa-records",
            Format::OaUsers => "oa-users",
            Format::OaTags => "oa-tags",
            Format::Contacts => "contacts",
            Format::CorpTags => "corp-tags",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    /// JSON sources go through [`crate::JsonRecords`]; the others are sheets.
    pub fn is_json(self) -> bool {
        !matches!(self, Format::Csv | Format::Xlsx)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl std::fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = Format::ALL.iter().map(|f| f.as_str()).collect();
        write!(
            f,
            "unknown format {:?}; expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Accepts the names of [`Format::as_str`], `_` for `-`, any case, and a
    /// few aliases (`kf`, `msgaudit`, `external-contacts`…).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match norm.as_str() {
            "kf" | "sync-msg" => Some(Format::KfSync),
            "kf-ndjson" => Some(Format::KfMessages),
            "msgaudit" | "session-archive" => Some(Format::Archive),
            "external-contacts" | "externalcontact" => Some(Format::Contacts),
            "corp-tag-list" => Some(Format::CorpTags),
            _ => None,
        };
        alias
            .or_else(|| Format::ALL.into_iter().find(|f| f.as_str() == norm))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Sniffs a file's format from its first bytes (a few KiB is plenty) and,
/// for spreadsheets, its name. `None` when nothing matched: ask for
/// `--format`.
pub fn detect(head: &[u8], path: Option<&Path>) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") {
        return Some(Format::Xlsx);
    }
    let ext = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("xlsx") => return Some(Format::Xlsx),
        Some("csv") | Some("tsv") => return Some(Format::Csv),
        _ => {}
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace())?;
    if first == b'{' || first == b'[' {
        return detect_json(body);
    }
    looks_like_sheet(body).then_some(Format::Csv)
}

/// What a file that cannot be a source is — `image`, `audio`, `video`,
/// `document`, `archive` or `binary` — from its first bytes (a few KiB),
/// not its name: an export folder holds media files named by media_id with
/// no extension, and screenshots named `.json` by mistake. `None` for
/// anything that may be a source (text, or a zip that is an XLSX: one whose
/// name ends in `.xlsx` or whose head names an `xl/` part).
pub fn non_source(head: &[u8], path: Option<&Path>) -> Option<&'static str> {
    let ext = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if head.starts_with(b"PK\x03\x04") {
        let xlsx = ext.as_deref() == Some("xlsx") || head.windows(3).any(|w| w == b"xl/");
        return (!xlsx).then_some("archive");
    }
    if let Some(mime) = crate::media::sniff_mime(head) {
        return Some(match mime.split('/').next() {
            Some("image") => "image",
            Some("audio") => "audio",
            Some("video") => "video",
            _ => "document",
        });
    }
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x1F\x8B", "archive"),           // gzip
        (b"7z\xBC\xAF\x27\x1C", "archive"), // 7-Zip
        (b"Rar!\x1A\x07", "archive"),       // RAR
        (b"\xFD7zXZ\x00", "archive"),       // xz
        (b"BZh", "archive"),                // bzip2
        (b"OggS", "audio"),
        (b"fLaC", "audio"),
        (b"\x1A\x45\xDF\xA3", "video"), // Matroska / WebM
        (b"FLV\x01", "video"),
        (b"II*\x00", "image"), // TIFF
        (b"MM\x00*", "image"),
        (b"\x00\x00\x01\x00", "image"),                    // ICO
        (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "document"), // old Office
    ];
    if let Some((_, kind)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(kind);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") {
        return Some(match &head[8..12] {
            b"WAVE" => "audio",
            b"AVI " => "video",
            _ => "binary",
        });
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Some("archive");
    }
    // Text never holds NUL bytes, except UTF-16 (with its BOM).
    let utf16 = head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF");
    (!utf16 && head.contains(&0)).then_some("binary")
}

/// Key-based sniffing on raw text rather than parsing, because the head may
/// end mid-document. The order settles files whose items hold several keys.
fn detect_json(body: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(body);
    // Look at the first record only, so a text that mentions a key later on
    // does not decide.
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let scope = if first_line.len() > 2 && first_line.ends_with(['}', ']']) {
        first_line
    } else {
        &text
    };
    let has = |key: &str| has_key(scope, key);
    let rules: [(bool, Format); 11] = [
        (has("msg_list"), Format::KfSync),
        (has("customer_list"), Format::KfCustomers),
        (has("recordlist"), Format::OaRecords),
        (has("tag_group"), Format::CorpTags),
        (
            has("external_contact") || has("external_contact_list") || has("follow_user"),
            Format::Contacts,
        ),
        (
            has("user_info_list") || (has("openid") && has("tagid_list")),
            Format::OaUsers,
        ),
        (has("openid") && has("opercode"), Format::OaRecords),
        (
            has("msgtime") || (has("action") && has("msgid")),
            Format::Archive,
        ),
        (
            has("open_kfid") || has("origin") || has("send_time"),
            Format::KfMessages,
        ),
        (has("tags"), Format::OaTags),
        (has("group_id") && has("tag"), Format::CorpTags),
    ];
    rules.into_iter().find(|(hit, _)| *hit).map(|(_, f)| f)
}

/// `"key"` followed by optional whitespace and a colon.
fn has_key(text: &str, key: &str) -> bool {
    let needle = format!("\"{key}\"");
    text.match_indices(&needle)
        .any(|(i, _)| text[i + needle.len()..].trim_start().starts_with(':'))
}

/// A header line with a comma or tab and a known Chinese column name.
fn looks_like_sheet(body: &[u8]) -> bool {
    let text = crate::sheet::decode_head(body);
    let header = crate::sheet::simplified(text.lines().next().unwrap_or(""));
    (header.contains(',') || header.contains('\t'))
        && [
            "客户名称",
            "昵称",
            "姓名",
            "添加时间",
            "手机",
            "添加人",
            "名称",
        ]
        .iter()
        .any(|h| header.contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_table() {
        let cases: &[(&[u8], Option<&str>, Option<Format>)] = &[
            (br#"{"errcode":0,"errmsg":"ok","next_cursor":"x","has_more":0,"msg_list":[]}"#, None, Some(Format::KfSync)),
            (br#"[{"errcode":0,"msg_list":[]}]"#, None, Some(Format::KfSync)),
            (br#"{"msgid":"a","open_kfid":"wk","origin":3,"send_time":1}"#, None, Some(Format::KfMessages)),
            (br#"{"msgid":"a","action":"send","msgtime":1,"msgtype":"text","text":{"content":"\"origin\": 3"}}"#, None, Some(Format::Archive)),
            (br#"{"msgid":"a","action":"switch","time":1,"user":"u"}"#, None, Some(Format::Archive)),
            (br#"{"recordlist":[],"number":0,"msgid":1}"#, None, Some(Format::OaRecords)),
            (br#"{"openid":"o","opercode":2003,"text":"x","time":1}"#, None, Some(Format::OaRecords)),
            (br#"{"customer_list":[]}"#, None, Some(Format::KfCustomers)),
            (br#"{"external_contact":{},"follow_user":[]}"#, None, Some(Format::Contacts)),
            (br#"{"external_contact_list":[]}"#, None, Some(Format::Contacts)),
            (br#"{"tag_group":[]}"#, None, Some(Format::CorpTags)),
            (br#"{"tags":[{"id":2,"name":"x","count":0}]}"#, None, Some(Format::OaTags)),
            (br#"{"user_info_list":[]}"#, None, Some(Format::OaUsers)),
            (br#"{"subscribe":1,"openid":"o","tagid_list":[]}"#, None, Some(Format::OaUsers)),
            (b"\xEF\xBB\xBF{\"msg_list\":[]}", None, Some(Format::KfSync)),
            (b"{\n  \"errcode\": 0,\n  \"msg_list\": []\n}", None, Some(Format::KfSync)),
            (b"PK\x03\x04rest", None, Some(Format::Xlsx)),
            (b"anything", Some("a.XLSX"), Some(Format::Xlsx)),
            (b"a,b", Some("list.csv"), Some(Format::Csv)),
            ("客户名称,添加时间\n张三,2023-01-01".as_bytes(), None, Some(Format::Csv)),
            (b"hello world", None, None),
            (b"", None, None),
            (br#"{"foo":1}"#, None, None),
        ];
        for (head, path, want) in cases {
            let got = detect(head, path.map(Path::new));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn non_source_table() {
        let mut tar = vec![0u8; 512];
        tar[..8].copy_from_slice(b"chat.txt");
        tar[257..262].copy_from_slice(b"ustar");
        let cases: &[(&[u8], Option<&str>, Option<&str>)] = &[
            (
                b"\xFF\xD8\xFF\xE0\x00\x10JFIF",
                Some("a.json"),
                Some("image"),
            ),
            (b"\x89PNG\r\n\x1a\n\x00\x00", None, Some("image")),
            (b"#!AMR\n\x3c", Some("MEDIA2"), Some("audio")),
            (b"\x02#!SILK_V3\x0c", None, Some("audio")),
            (b"\x00\x00\x00\x18ftypmp42", None, Some("video")),
            (b"%PDF-1.4", None, Some("document")),
            (
                b"PK\x03\x04\x14\x00\x00\x00word/document.xml",
                Some("x.docx"),
                Some("archive"),
            ),
            (
                b"PK\x03\x04\x14\x00\x00\x00media/1.jpg",
                Some("backup.zip"),
                Some("archive"),
            ),
            (
                b"PK\x03\x04\x14\x00\x00\x00[Content_Types].xml..xl/workbook.xml",
                None,
                None,
            ),
            (b"PK\x03\x04\x14\x00", Some("客户.xlsx"), None),
            (b"\x1F\x8B\x08\x00", Some("kf.ndjson.gz"), Some("archive")),
            (b"7z\xBC\xAF\x27\x1C\x00\x04", None, Some("archive")),
            (&tar, None, Some("archive")),
            (b"RIFF\x00\x00\x00\x00WAVEfmt ", None, Some("audio")),
            (
                b"\x00\x00\x00\x01Bud1\x00",
                Some(".DS_Store"),
                Some("binary"),
            ),
            (br#"{"msg_list":[]}"#, None, None),
            ("客户名称,手机\r\n".as_bytes(), None, None),
            (b"\xFF\xFE\xA2\x5B\x37\x62", Some("list.txt"), None),
            (b"", None, None),
        ];
        for (head, path, want) in cases {
            assert_eq!(
                non_source(head, path.map(Path::new)),
                *want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn parse_names() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert_eq!("KF_SYNC".parse::<Format>(), Ok(Format::KfSync));
        assert_eq!("msgaudit".parse::<Format>(), Ok(Format::Archive));
        assert!("nope".parse::<Format>().is_err());
    }
}

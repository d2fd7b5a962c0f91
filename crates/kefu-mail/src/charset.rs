//! Charset labels, and text whose label is unknown or wrong.
//!
//! mail-parser looks a label up in its own table and decodes anything it does not know as
//! lossy UTF-8, silently: `=?eucgb2312_cn?b?…?=` (the label Python's `email` writes for
//! GB2312) came out as `����δ����`, became the thread subject and went back to the
//! customer in the acknowledgement. Here a label resolves through, in order:
//!
//! 1. the WHATWG encoding labels ([`Encoding::for_label`]): what browsers accept, kept
//!    by the encoding_rs authors;
//! 2. [`ALIASES`]: the spellings mail clients and libraries write that WHATWG lacks —
//!    Python codec names and aliases (`eucgb2312_cn`, `big5_tw`, `cp936`, `ujis`),
//!    Java's (`x-mswin-936`, `x-windows-950`, `MS950_HKSCS`), Microsoft code pages and
//!    Outlook's (`windows-936`, `_iso-2022-jp$ESC`, `unicodeFFFE`);
//! 3. mail-parser's own table, for the few it decodes and encoding_rs does not (UTF-7,
//!    IBM 850, …).
//!
//! A label none of them knows (EUC-TW, HZ, ISO-2022-KR/CN, which encoding_rs cannot
//! decode, or a typo) is a guess, and the message says so ([`Problem::UnknownCharset`]).
//! So is text that is not valid in its declared charset ([`Problem::WrongCharset`]):
//! GBK bytes labelled UTF-8 are common from misconfigured Chinese webmail. The guesses,
//! in order: UTF-8, GB18030, Big5 — the charsets kefu's customers write — each taken
//! only if it decodes without error and without private-use characters (Big5 read as
//! GB18030 decodes without error but lands in GB18030's user-defined areas, which is
//! how the two are told apart).

use std::borrow::Cow;

use encoding_rs::{
    BIG5, EUC_JP, EUC_KR, Encoding, GB18030, GBK, ISO_2022_JP, REPLACEMENT, SHIFT_JIS, UTF_8,
    UTF_16BE, UTF_16LE, WINDOWS_1252,
};
use mail_parser::decoders::charsets::{DecoderFnc, map::charset_decoder};

use crate::parse::Problem;
use crate::transfer;

/// Labels seen in real mail that are not WHATWG labels, written without separators and in
/// lower case (`eucgb2312_cn` → `eucgb2312cn`), the way [`key`] normalises a label.
/// Sources: Python's `encodings.aliases` and codec names (what `email.header.Header` and
/// `MIMEText(_charset=…)` write verbatim), Java's `Charset` names and aliases, Microsoft
/// code page names as Outlook and .NET write them.
const ALIASES: &[(&str, &Encoding)] = &[
    // GB2312 / GBK (encoding_rs decodes both with the GB18030 decoder).
    ("eucgb2312cn", GBK),
    ("euccn", GBK),
    ("xeuccn", GBK),
    ("gb23121980", GBK),
    ("gb231280", GBK),
    ("cngb", GBK),
    ("cp936", GBK),
    ("ms936", GBK),
    ("936", GBK),
    ("windows936", GBK),
    ("xmswin936", GBK),
    ("xmacsimpchinese", GBK),
    ("xmacchinesesimp", GBK),
    ("gb180302000", GB18030),
    ("gb180302005", GB18030),
    ("gb180302022", GB18030),
    ("xgb18030", GB18030),
    // Big5 (encoding_rs's Big5 is Big5-HKSCS, as WHATWG specifies).
    ("big5tw", BIG5),
    ("big5hkscs", BIG5),
    ("big5hk", BIG5),
    ("xbig5hkscs2001", BIG5),
    ("hkscs", BIG5),
    ("cp950", BIG5),
    ("ms950", BIG5),
    ("950", BIG5),
    ("windows950", BIG5),
    ("xwindows950", BIG5),
    ("ms950hkscs", BIG5),
    ("xms950hkscs", BIG5),
    ("xmactradchinese", BIG5),
    ("xmacchinesetrad", BIG5),
    // Japanese.
    ("cp932", SHIFT_JIS),
    ("932", SHIFT_JIS),
    ("windows932", SHIFT_JIS),
    ("mskanji", SHIFT_JIS),
    ("sjis", SHIFT_JIS),
    ("shiftjis", SHIFT_JIS),
    ("shiftjis2004", SHIFT_JIS),
    ("shiftjisx0213", SHIFT_JIS),
    ("sjis2004", SHIFT_JIS),
    ("sjisx0213", SHIFT_JIS),
    ("cswindows31j", SHIFT_JIS),
    ("xmacjapanese", SHIFT_JIS),
    ("eucjp", EUC_JP),
    ("ujis", EUC_JP),
    ("eucjis", EUC_JP),
    ("eucjis2004", EUC_JP),
    ("eucjisx0213", EUC_JP),
    ("jisx0213", EUC_JP),
    ("iso2022jp", ISO_2022_JP),
    ("iso2022jp1", ISO_2022_JP),
    ("iso2022jp2", ISO_2022_JP),
    ("iso2022jp3", ISO_2022_JP),
    ("iso2022jp2004", ISO_2022_JP),
    ("iso2022jpext", ISO_2022_JP),
    // Outlook's labels for ISO-2022-JP with and without SI/SO.
    ("iso2022jpesc", ISO_2022_JP),
    ("iso2022jpsio", ISO_2022_JP),
    // Korean (encoding_rs's EUC-KR is Windows-949, a superset).
    ("euckr", EUC_KR),
    ("korean", EUC_KR),
    ("ksc5601", EUC_KR),
    ("ksc56011987", EUC_KR),
    ("ksc56011989", EUC_KR),
    ("ksx1001", EUC_KR),
    ("cp949", EUC_KR),
    ("ms949", EUC_KR),
    ("949", EUC_KR),
    ("uhc", EUC_KR),
    ("windows949", EUC_KR),
    ("xwindows949", EUC_KR),
    ("xmackorean", EUC_KR),
    // Unicode.
    ("utf8", UTF_8),
    ("u8", UTF_8),
    ("utf", UTF_8),
    ("cp65001", UTF_8),
    ("utf8ucs2", UTF_8),
    ("utf8ucs4", UTF_8),
    ("utf16", UTF_16LE),
    ("u16", UTF_16LE),
    ("unicode", UTF_16LE),
    ("utf16le", UTF_16LE),
    ("unicodelittleunmarked", UTF_16LE),
    ("unicodefeff", UTF_16LE),
    ("utf16be", UTF_16BE),
    ("unicodebigunmarked", UTF_16BE),
    ("unicodefffe", UTF_16BE),
    // Latin-1 and ASCII: windows-1252, as WHATWG decodes them.
    ("latin", WINDOWS_1252),
    ("latin1", WINDOWS_1252),
    ("l1", WINDOWS_1252),
    ("8859", WINDOWS_1252),
    ("iso8859", WINDOWS_1252),
    ("iso885911987", WINDOWS_1252),
    ("cp819", WINDOWS_1252),
    ("ibm819", WINDOWS_1252),
    ("isoir100", WINDOWS_1252),
    ("csisolatin1", WINDOWS_1252),
    ("us", WINDOWS_1252),
    ("usascii", WINDOWS_1252),
    ("646", WINDOWS_1252),
    ("cp367", WINDOWS_1252),
    ("ibm367", WINDOWS_1252),
    ("iso646us", WINDOWS_1252),
    ("ansix341968", WINDOWS_1252),
    ("ansix341986", WINDOWS_1252),
    ("1252", WINDOWS_1252),
];

/// How a label decodes.
#[derive(Clone, Copy)]
pub(crate) enum Charset {
    /// An encoding_rs encoding; decoding can be checked for errors.
    Rs(&'static Encoding),
    /// A charset only mail-parser decodes (UTF-7, IBM 850, …); it never fails.
    Parser(DecoderFnc),
}

/// The label as written, without quotes, spaces and an RFC 2231 language suffix
/// (`utf-8*zh-CN`).
pub(crate) fn clean_label(label: &str) -> &str {
    let label = label.trim().trim_matches(['"', '\'']).trim();
    label.split_once('*').map_or(label, |(l, _)| l)
}

/// Lower case, letters and digits only: `GB_2312-80` → `gb231280`.
fn key(label: &str) -> String {
    label
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Resolves a label; `None` when nothing knows it or nothing here can decode it.
pub(crate) fn lookup(label: &str) -> Option<Charset> {
    let label = clean_label(label);
    if label.is_empty() {
        return None;
    }
    // REPLACEMENT is WHATWG's "known, but do not decode" (HZ, ISO-2022-KR/CN).
    let usable = |e: &'static Encoding| (e != REPLACEMENT).then_some(Charset::Rs(e));
    if let Some(e) = Encoding::for_label(label.as_bytes()) {
        return usable(e);
    }
    let k = key(label);
    if let Some((_, e)) = ALIASES.iter().find(|(a, _)| *a == k) {
        return usable(e);
    }
    // `windows_1250`, `iso_8859_2`, `cp_1251`: numbered families in any spelling.
    let numbered = [
        ("windows", "windows-"),
        ("cp", "windows-"),
        ("iso8859", "iso-8859-"),
    ]
    .iter()
    .find_map(|(prefix, canonical)| {
        let n = k.strip_prefix(prefix)?;
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Encoding::for_label(format!("{canonical}{n}").as_bytes()))
            .flatten()
    });
    if let Some(e) = numbered {
        return usable(e);
    }
    charset_decoder(label.as_bytes()).map(Charset::Parser)
}

/// Whether mail-parser decodes this label itself, so its output can be trusted.
pub(crate) fn parser_knows(label: &str) -> bool {
    let label = clean_label(label);
    charset_decoder(label.as_bytes()).is_some() && lookup(label).is_some()
}

/// What [`decode`] had to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Decoded as declared (or as UTF-8, with no label and valid UTF-8).
    AsDeclared,
    /// The label is unknown; `used` is the guess.
    Unknown { label: String, used: String },
    /// The bytes are not valid in the declared charset; `used` is the guess.
    Wrong { declared: String, used: String },
}

impl Outcome {
    /// The problem to record, if any; `part` is the MIME part (`None` in a header).
    pub(crate) fn problem(self, part: Option<usize>) -> Option<Problem> {
        match self {
            Outcome::AsDeclared => None,
            Outcome::Unknown { label, used } => Some(Problem::UnknownCharset { label, used }),
            Outcome::Wrong { declared, used } => Some(Problem::WrongCharset {
                part,
                declared,
                used,
            }),
        }
    }
}

/// Adds a problem unless it is already listed (a label may recur in many words).
pub(crate) fn record(problems: &mut Vec<Problem>, problem: Option<Problem>) {
    if let Some(p) = problem
        && !problems.contains(&p)
    {
        problems.push(p);
    }
}

/// Decodes `bytes` declared as `label` (`None`: no charset given). Never fails: the last
/// resort is lossy, and the outcome says what was guessed.
pub(crate) fn decode(bytes: &[u8], label: Option<&str>) -> (String, Outcome) {
    let label = label.map(clean_label).filter(|l| !l.is_empty());
    let Some(label) = label else {
        // RFC 2045 says US-ASCII; 8-bit text without a label is UTF-8 nearly always now.
        if let Some(text) = strict(UTF_8, bytes) {
            return (text.into_owned(), Outcome::AsDeclared);
        }
        let (text, used) = guess(bytes, UTF_8);
        let declared = "(none)".to_string();
        return (text, Outcome::Wrong { declared, used });
    };
    match lookup(label) {
        Some(Charset::Parser(f)) => (f(bytes), Outcome::AsDeclared),
        Some(Charset::Rs(e)) => decode_declared(bytes, e, label),
        None => {
            let (text, used) = guess(bytes, UTF_8);
            let label = label.to_string();
            (text, Outcome::Unknown { label, used })
        }
    }
}

fn decode_declared(bytes: &[u8], e: &'static Encoding, label: &str) -> (String, Outcome) {
    let wrong = |used: String| Outcome::Wrong {
        declared: label.to_string(),
        used,
    };
    // Non-ASCII bytes that are valid UTF-8 are UTF-8 whatever the label says: real GBK
    // or Latin-1 text is practically never valid UTF-8, while UTF-8 labelled GB2312
    // (and then read as mojibake) is common.
    if e != UTF_8
        && e.is_ascii_compatible()
        && !bytes.is_ascii()
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return (text.to_string(), wrong("UTF-8".into()));
    }
    match strict(e, bytes) {
        Some(text) => (text.into_owned(), Outcome::AsDeclared),
        None => {
            let (text, used) = guess(bytes, e);
            (text, wrong(used))
        }
    }
}

/// Strict decoding (no replacement characters), with a byte-order mark honoured.
fn strict<'a>(e: &'static Encoding, bytes: &'a [u8]) -> Option<Cow<'a, str>> {
    let (e, bytes) = match Encoding::for_bom(bytes) {
        Some((bom, len)) if bom == e || (is_utf16(bom) && is_utf16(e)) => (bom, &bytes[len..]),
        _ => (e, bytes),
    };
    e.decode_without_bom_handling_and_without_replacement(bytes)
}

fn is_utf16(e: &'static Encoding) -> bool {
    e == UTF_16LE || e == UTF_16BE
}

/// UTF-8, then GB18030, then Big5: the first that decodes cleanly, else the first that
/// decodes at all, else `fallback` with replacement characters. Returns the text and
/// the name of what was used.
fn guess(bytes: &[u8], fallback: &'static Encoding) -> (String, String) {
    const GUESSES: [&Encoding; 3] = [UTF_8, GB18030, BIG5];
    let decoded: Vec<(&'static Encoding, Cow<'_, str>)> = GUESSES
        .iter()
        .filter_map(|&e| strict(e, bytes).map(|t| (e, t)))
        .collect();
    let private = |t: &str| t.chars().any(|c| ('\u{E000}'..='\u{F8FF}').contains(&c));
    let best = decoded
        .iter()
        .find(|(_, t)| !private(t))
        .or_else(|| decoded.first());
    match best {
        Some((e, t)) => (t.to_string(), e.name().to_string()),
        None => {
            let (t, _) = fallback.decode_without_bom_handling(bytes);
            (
                t.into_owned(),
                format!("{} with replacement characters", fallback.name()),
            )
        }
    }
}

/// One RFC 2047 encoded word of a raw header: its label and decoded bytes.
struct Word<'a> {
    label: &'a str,
    bytes: Vec<u8>,
}

/// The encoded words of a raw header value, in order.
fn encoded_words(raw: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("=?") {
        rest = &rest[start + 2..];
        let Some((label, after)) = rest.split_once('?') else {
            break;
        };
        if label.is_empty() || label.len() > 64 || label.contains(char::is_whitespace) {
            continue;
        }
        let mut chars = after.chars();
        let (Some(kind), Some('?')) = (chars.next(), chars.next()) else {
            continue;
        };
        let body = chars.as_str();
        let Some(end) = body.find("?=") else {
            break;
        };
        let text = &body[..end];
        let bytes = match kind {
            'b' | 'B' => transfer::base64(text.as_bytes()).0,
            'q' | 'Q' => transfer::q_word(text.as_bytes()),
            _ => continue,
        };
        words.push(Word { label, bytes });
        rest = &body[end + 2..];
    }
    words
}

/// The RFC 2231 extended parameters of a raw header value (`filename*=gbk''%C4%E3`,
/// `name*0*=big5''%B5o; name*1*=%B2%BC`), each segment with the charset of its
/// parameter's first segment, in order.
fn extended_parameters(raw: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut label = "";
    for param in raw.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !name.ends_with('*') {
            continue;
        }
        let value = value.trim().trim_matches('"');
        // The first segment (`name*` or `name*0*`) carries `charset'language'`.
        let first = name.matches('*').count() == 1 || name.ends_with("*0*");
        let data = if first {
            let mut pieces = value.splitn(3, '\'');
            match (pieces.next(), pieces.next(), pieces.next()) {
                (Some(charset), Some(_), Some(data)) => {
                    label = charset;
                    data
                }
                _ => continue,
            }
        } else {
            value
        };
        if !label.is_empty() {
            let bytes = percent_decode(data.as_bytes());
            words.push(Word { label, bytes });
        }
    }
    words
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let pair = (input.get(i + 1), input.get(i + 2));
        if let (b'%', (Some(&h), Some(&l))) = (b, pair)
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// Repairs what mail-parser decoded from the raw header `raw` into `texts` (a subject,
/// the display names of an address list, or a file name, in order): each RFC 2047
/// encoded word or RFC 2231 parameter whose charset mail-parser does not know came out
/// as lossy UTF-8, which is found and replaced by our decoding. Address and parameter
/// parsing stay mail-parser's; only the charset step is redone. Problems for unknown
/// labels go into `problems`, once each.
pub(crate) fn redecode_words(raw: &str, texts: &mut [&mut String], problems: &mut Vec<Problem>) {
    let (mut index, mut offset) = (0, 0);
    let words = encoded_words(raw)
        .into_iter()
        .chain(extended_parameters(raw));
    for word in words {
        if parser_knows(word.label) {
            continue;
        }
        let (ours, outcome) = decode(&word.bytes, Some(word.label));
        record(problems, outcome.problem(None));
        let theirs = String::from_utf8_lossy(&word.bytes);
        if theirs == ours.as_str() || theirs.is_empty() {
            continue;
        }
        // The first place at or after the previous replacement, across the texts.
        let (mut i, mut from) = (index, offset);
        while let Some(text) = texts.get_mut(i) {
            if let Some(at) = text.get(from..).and_then(|t| t.find(theirs.as_ref())) {
                let at = from + at;
                text.replace_range(at..at + theirs.len(), &ours);
                (index, offset) = (i, at + ours.len());
                break;
            }
            (i, from) = (i + 1, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(label: &str) -> Option<&'static str> {
        match lookup(label)? {
            Charset::Rs(e) => Some(e.name()),
            Charset::Parser(_) => Some("(mail-parser)"),
        }
    }

    #[test]
    fn labels() {
        let cases = [
            // WHATWG.
            ("gb2312", Some("GBK")),
            ("x-gbk", Some("GBK")),
            ("GB_2312-80", Some("GBK")),
            ("big5-hkscs", Some("Big5")),
            ("ks_c_5601-1987", Some("EUC-KR")),
            ("\"UTF-8\"", Some("UTF-8")),
            // Python.
            ("eucgb2312_cn", Some("GBK")),
            ("euc_cn", Some("GBK")),
            ("gb2312_1980", Some("GBK")),
            ("cp936", Some("GBK")),
            ("ms936", Some("GBK")),
            ("big5_tw", Some("Big5")),
            ("big5hkscs", Some("Big5")),
            ("cp950", Some("Big5")),
            ("ujis", Some("EUC-JP")),
            ("cp932", Some("Shift_JIS")),
            ("cp949", Some("EUC-KR")),
            ("gb18030_2000", Some("gb18030")),
            ("utf_8", Some("UTF-8")),
            ("cp65001", Some("UTF-8")),
            ("windows_1252", Some("windows-1252")),
            ("iso_8859_2", Some("ISO-8859-2")),
            ("latin_1", Some("windows-1252")),
            // Java, Microsoft, Outlook.
            ("x-mswin-936", Some("GBK")),
            ("windows-936", Some("GBK")),
            ("x-windows-950", Some("Big5")),
            ("MS950_HKSCS", Some("Big5")),
            ("_iso-2022-jp$ESC", Some("ISO-2022-JP")),
            ("unicodeFFFE", Some("UTF-16BE")),
            ("utf-8*zh-CN", Some("UTF-8")),
            // Only mail-parser.
            ("utf-7", Some("(mail-parser)")),
            // Unknown or not decodable.
            ("x-euc-tw", None),
            ("hz-gb-2312", None),
            ("iso-2022-kr", None),
            ("klingon", None),
            ("", None),
        ];
        for (label, want) in cases {
            assert_eq!(name(label), want, "{label}");
        }
    }

    #[test]
    fn decoding_and_guessing() {
        let gbk = GBK.encode("退款申请").0.into_owned();
        let big5 = BIG5.encode("請問何時出貨？").0.into_owned();
        let cases: Vec<(&[u8], Option<&str>, &str, Outcome)> = vec![
            (&gbk, Some("eucgb2312_cn"), "退款申请", Outcome::AsDeclared),
            ("退款".as_bytes(), None, "退款", Outcome::AsDeclared),
            (
                &gbk,
                Some("utf-8"),
                "退款申请",
                Outcome::Wrong {
                    declared: "utf-8".into(),
                    used: "gb18030".into(),
                },
            ),
            (
                &big5,
                Some("utf-8"),
                "請問何時出貨？",
                Outcome::Wrong {
                    declared: "utf-8".into(),
                    used: "Big5".into(),
                },
            ),
            (
                "退款".as_bytes(),
                Some("gb2312"),
                "退款",
                Outcome::Wrong {
                    declared: "gb2312".into(),
                    used: "UTF-8".into(),
                },
            ),
            (
                &gbk,
                Some("x-euc-tw"),
                "退款申请",
                Outcome::Unknown {
                    label: "x-euc-tw".into(),
                    used: "gb18030".into(),
                },
            ),
            (
                &gbk,
                None,
                "退款申请",
                Outcome::Wrong {
                    declared: "(none)".into(),
                    used: "gb18030".into(),
                },
            ),
            (
                b"plain",
                Some("klingon"),
                "plain",
                Outcome::Unknown {
                    label: "klingon".into(),
                    used: "UTF-8".into(),
                },
            ),
        ];
        for (bytes, label, text, outcome) in cases {
            assert_eq!(
                decode(bytes, label),
                (text.to_string(), outcome),
                "{label:?}"
            );
        }
    }

    #[test]
    fn words_are_redecoded_in_place() {
        use base64::Engine as _;
        let gbk = GBK.encode("张三").0.into_owned();
        let lossy = String::from_utf8_lossy(&gbk).into_owned();
        let raw = format!(
            "=?utf-8?q?Li?= <li@x.cn>, =?eucgb2312_cn?b?{}?= <z@x.cn>",
            base64::engine::general_purpose::STANDARD.encode(&gbk)
        );
        let (mut first, mut second) = ("Li".to_string(), lossy);
        let mut problems = Vec::new();
        redecode_words(&raw, &mut [&mut first, &mut second], &mut problems);
        assert_eq!((first.as_str(), second.as_str()), ("Li", "张三"));
        assert!(problems.is_empty(), "{problems:?}");

        // RFC 2231, in one piece and in continuations.
        let big5 = BIG5.encode("發票.pdf").0.into_owned();
        let pct: String = big5.iter().map(|b| format!("%{b:02X}")).collect();
        let (head, tail) = pct.split_at(6);
        for raw in [
            format!("attachment; filename*=big5_tw'zh'{pct}"),
            format!("attachment;\r\n filename*0*=big5_tw''{head};\r\n filename*1*={tail}"),
        ] {
            let (a, b) = big5.split_at(2);
            let mut name = if raw.contains("*0*") {
                String::from_utf8_lossy(a).into_owned() + &String::from_utf8_lossy(b)
            } else {
                String::from_utf8_lossy(&big5).into_owned()
            };
            redecode_words(&raw, &mut [&mut name], &mut problems);
            assert_eq!(name, "發票.pdf", "{raw}");
        }
    }
}

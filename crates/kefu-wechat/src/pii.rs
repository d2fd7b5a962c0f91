//! Personal information in free text (PIPL): mobile numbers, resident ID
//! numbers, bank cards and emails, each kept, masked or dropped by a
//! [`PiiPolicy`], with a [`PiiSummary`] of what was found and done.
//!
//! Only free text is scanned — message text and the text fields of `raw` —
//! never id fields: some userids are phone numbers, and a masked msgid or
//! sdkfileid would break idempotency and media matching.
//!
//! Digit boundaries: the `regex` crate has no look-around, so each candidate's
//! neighbours are checked by hand; a number that is part of a longer digit
//! run (an order number) is not personal data of these classes. Chinese
//! characters and full-width punctuation count as boundaries. Full-width
//! digits (１３８…) are not recognised.

use crate::model::MessageRecord;
use chrono::NaiveDate;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiClass {
    Mobile,
    ResidentId,
    BankCard,
    Email,
}

impl PiiClass {
    /// Placeholder used by [`PiiMode::Drop`].
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiClass::Mobile => "[手机号已删除]",
            PiiClass::ResidentId => "[身份证号已删除]",
            PiiClass::BankCard => "[银行卡号已删除]",
            PiiClass::Email => "[邮箱已删除]",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiMode {
    #[default]
    Keep,
    /// Keep a recognisable shape: 138****5678, 110105********123X,
    /// 6222 **** **** 1234, z***@qq.com.
    Mask,
    /// Replace with a placeholder such as `[手机号已删除]`.
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PiiPolicy {
    pub mobile: PiiMode,
    pub resident_id: PiiMode,
    pub bank_card: PiiMode,
    pub email: PiiMode,
}

/// How many of one class were found, and what was done with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassCount {
    pub found: u64,
    pub kept: u64,
    pub masked: u64,
    pub dropped: u64,
}

impl ClassCount {
    fn merge(&mut self, o: &ClassCount) {
        self.found += o.found;
        self.kept += o.kept;
        self.masked += o.masked;
        self.dropped += o.dropped;
    }
}

/// Per-class counts; merge the summaries of several files for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PiiSummary {
    pub mobile: ClassCount,
    pub resident_id: ClassCount,
    pub bank_card: ClassCount,
    pub email: ClassCount,
}

impl PiiSummary {
    pub fn merge(&mut self, other: &PiiSummary) {
        self.mobile.merge(&other.mobile);
        self.resident_id.merge(&other.resident_id);
        self.bank_card.merge(&other.bank_card);
        self.email.merge(&other.email);
    }

    pub fn get(&self, class: PiiClass) -> &ClassCount {
        match class {
            PiiClass::Mobile => &self.mobile,
            PiiClass::ResidentId => &self.resident_id,
            PiiClass::BankCard => &self.bank_card,
            PiiClass::Email => &self.email,
        }
    }

    fn get_mut(&mut self, class: PiiClass) -> &mut ClassCount {
        match class {
            PiiClass::Mobile => &mut self.mobile,
            PiiClass::ResidentId => &mut self.resident_id,
            PiiClass::BankCard => &mut self.bank_card,
            PiiClass::Email => &mut self.email,
        }
    }

    pub fn total_found(&self) -> u64 {
        self.mobile.found + self.resident_id.found + self.bank_card.found + self.email.found
    }
}

/// One finding: byte range in the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PiiMatch {
    pub class: PiiClass,
    pub start: usize,
    pub end: usize,
}

static MOBILE: LazyLock<Regex> = LazyLock::new(|| re(r"(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}"));
static ID18: LazyLock<Regex> = LazyLock::new(|| re(r"\d{17}[\dXx]"));
static ID15: LazyLock<Regex> = LazyLock::new(|| re(r"\d{15}"));
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\d{4}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?"));
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"[A-Za-z0-9._%+-]+[@＠][A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"));

/// The patterns are constants covered by the tests, so failing to compile one
/// is a programming error, not an input error.
#[allow(clippy::expect_used)]
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static PII pattern compiles")
}

/// Extra check of a candidate (checksum, date…) beyond its pattern.
type Validator = fn(&str) -> bool;

/// All findings, non-overlapping, in text order. Where two classes claim the
/// same digits the more specific wins: email, then ID, card, mobile.
pub fn find(text: &str) -> Vec<PiiMatch> {
    let mut all = Vec::new();
    let classes: [(&Regex, PiiClass, Validator); 5] = [
        (&EMAIL, PiiClass::Email, |_| true),
        (&ID18, PiiClass::ResidentId, valid_id18),
        (&ID15, PiiClass::ResidentId, valid_id15),
        (&CARD, PiiClass::BankCard, luhn_ok),
        (&MOBILE, PiiClass::Mobile, |_| true),
    ];
    for (priority, (regex, class, check)) in classes.into_iter().enumerate() {
        let bounded = class != PiiClass::Email;
        for (start, end) in bounded_matches(regex, text, bounded) {
            if check(&text[start..end]) {
                all.push((start, end, priority, class));
            }
        }
    }
    // Earliest first, then longest, then by priority.
    all.sort_by_key(|&(s, e, p, _)| (s, std::cmp::Reverse(e), p));
    let mut out: Vec<PiiMatch> = Vec::new();
    for (start, end, _, class) in all {
        if out.last().is_none_or(|m| m.end <= start) {
            out.push(PiiMatch { class, start, end });
        }
    }
    out
}

/// Matches whose neighbours are not digits (nor an ID's trailing X).
fn bounded_matches(regex: &Regex, text: &str, bounded: bool) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos <= text.len() {
        let Some(m) = regex.find_at(text, pos) else {
            break;
        };
        let before_ok = m.start() == 0 || !bytes[m.start() - 1].is_ascii_digit();
        let after_ok = bytes
            .get(m.end())
            .is_none_or(|b| !b.is_ascii_digit() && !matches!(b, b'X' | b'x'));
        if !bounded || (before_ok && after_ok) {
            out.push((m.start(), m.end()));
            pos = m.end().max(m.start() + 1);
        } else {
            // A match inside a longer digit run cannot start anywhere else
            // in that run: skip past it (keeps the scan linear).
            pos = m.start() + 1;
            while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
        }
        while pos < text.len() && !text.is_char_boundary(pos) {
            pos += 1;
        }
    }
    out
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
/// Province-level region codes (first two digits).
const PROVINCES: &[u32] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
];

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn valid_region_and_date(d: &[u32], year: i32, month: u32, day: u32) -> bool {
    let province = d.first().copied().unwrap_or(0) * 10 + d.get(1).copied().unwrap_or(0);
    PROVINCES.contains(&province) && NaiveDate::from_ymd_opt(year, month, day).is_some()
}

/// GB 11643: region, real birth date (1900–2099), check character.
pub fn valid_id18(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d = digits(&s[..17]);
    let n = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |acc, x| acc * 10 + x);
    let year = n(6..10) as i32;
    if !(1900..=2099).contains(&year) || !valid_region_and_date(&d, year, n(10..12), n(12..14)) {
        return false;
    }
    let sum: u32 = d.iter().zip(ID_WEIGHTS).map(|(x, w)| x * w).sum();
    ID_CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

/// Legacy 15-digit ID: region and a real 19YYMMDD date; no check digit.
pub fn valid_id15(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 15 || s.len() != 15 {
        return false;
    }
    let n = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |acc, x| acc * 10 + x);
    valid_region_and_date(&d, 1900 + n(6..8) as i32, n(8..10), n(10..12))
}

/// 16–19 digits (separators allowed) passing the Luhn check.
pub fn luhn_ok(s: &str) -> bool {
    let d = digits(s);
    if !(16..=19).contains(&d.len()) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl PiiPolicy {
    /// The same mode for every class.
    pub fn all(mode: PiiMode) -> Self {
        PiiPolicy {
            mobile: mode,
            resident_id: mode,
            bank_card: mode,
            email: mode,
        }
    }

    pub fn mode(&self, class: PiiClass) -> PiiMode {
        match class {
            PiiClass::Mobile => self.mobile,
            PiiClass::ResidentId => self.resident_id,
            PiiClass::BankCard => self.bank_card,
            PiiClass::Email => self.email,
        }
    }

    /// The text with the policy applied; counts go into `summary`.
    pub fn apply(&self, text: &str, summary: &mut PiiSummary) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in find(text) {
            out.push_str(&text[last..m.start]);
            let found = &text[m.start..m.end];
            let count = summary.get_mut(m.class);
            count.found += 1;
            match self.mode(m.class) {
                PiiMode::Keep => {
                    count.kept += 1;
                    out.push_str(found);
                }
                PiiMode::Mask => {
                    count.masked += 1;
                    out.push_str(&mask(m.class, found));
                }
                PiiMode::Drop => {
                    count.dropped += 1;
                    out.push_str(m.class.placeholder());
                }
            }
            last = m.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Applies the policy to a message's `text` (counted) and to the free-text
    /// fields of its `raw` (not counted again: they hold the same content).
    pub fn apply_to_message(&self, m: &mut MessageRecord, summary: &mut PiiSummary) {
        if *self == PiiPolicy::all(PiiMode::Keep) {
            return;
        }
        m.text = self.apply(&m.text, summary);
        self.scrub_value(&mut m.raw, &mut PiiSummary::default());
    }

    /// Applies the policy to the string values under free-text keys, at any
    /// depth; id fields are left alone.
    pub fn scrub_value(&self, v: &mut Value, summary: &mut PiiSummary) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    match val {
                        Value::String(s) if FREE_TEXT_KEYS.contains(&k.as_str()) => {
                            *s = self.apply(s, summary);
                        }
                        _ => self.scrub_value(val, summary),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| self.scrub_value(x, summary)),
            _ => {}
        }
    }
}

/// Keys whose values are written by people. An allow-list, not a deny-list:
/// a new id field in a future export must not be masked by accident.
const FREE_TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "title",
    "desc",
    "description",
    "address",
    "name",
    "remark",
    "head_content",
    "tail_content",
    "msg_content",
    "nickname",
    "wish",
    "topic",
    "feed_desc",
    "place",
];

fn mask(class: PiiClass, s: &str) -> String {
    match class {
        PiiClass::Mobile => {
            let n = digit_count(s);
            mask_digits(s, n.saturating_sub(8), 4)
        }
        PiiClass::ResidentId => mask_digits(s, 6, 4),
        PiiClass::BankCard => mask_digits(s, 4, 4),
        PiiClass::Email => mask_email(s),
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_digit() || c == 'X' || c == 'x'
}

fn digit_count(s: &str) -> usize {
    s.chars().filter(|c| is_id_char(*c)).count()
}

/// Replaces digits except the first `front` and last `back`; separators stay.
fn mask_digits(s: &str, front: usize, back: usize) -> String {
    let n = digit_count(s);
    let mut i = 0;
    s.chars()
        .map(|c| {
            if !is_id_char(c) {
                return c;
            }
            i += 1;
            if i <= front || i > n.saturating_sub(back) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

fn mask_email(s: &str) -> String {
    let at = s.find(['@', '＠']).unwrap_or(0);
    let (local, domain) = s.split_at(at);
    let first: String = local.chars().take(1).collect();
    format!("{first}***{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        let cases: &[(Validator, &str, bool)] = &[
            (valid_id18, "11010519491231002X", true),
            (valid_id18, "11010519491231002x", true),
            (valid_id18, "110105194912310021", false), // wrong check char
            (valid_id18, "110105194902300028", false), // 30 February
            (valid_id18, "990105194912310021", false), // no such province
            (valid_id18, "440304199001011233", true),
            (valid_id15, "110105491231002", true),
            (valid_id15, "110105491331002", false), // month 13
            (luhn_ok, "6222020012345671", true),
            (luhn_ok, "6222020012345672", false),
            (luhn_ok, "6228 4800 1234 5678 903", true),
            (luhn_ok, "4111111111111111", true),
            (luhn_ok, "411111111111111", false), // 15 digits
        ];
        for (f, input, want) in cases {
            assert_eq!(f(input), *want, "{input}");
        }
    }

    #[test]
    fn mask_table() {
        let p = PiiPolicy::all(PiiMode::Mask);
        let cases = [
            (
                "我的手机号是13812345678，谢谢",
                "我的手机号是138****5678，谢谢",
            ),
            ("电话：+86 138-1234-5678。", "电话：+86 138-****-5678。"),
            ("电话8613812345678", "电话86138****5678"),
            (
                "手机13812345678和15900001111都打不通",
                "手机138****5678和159****1111都打不通",
            ),
            (
                "身份证11010519491231002X办理",
                "身份证110105********002X办理",
            ),
            (
                "身份证：440304199001011233。",
                "身份证：440304********1233。",
            ),
            ("旧身份证110105491231002", "旧身份证110105*****1002"),
            (
                "卡号6222 0200 1234 5671请核对",
                "卡号6222 **** **** 5671请核对",
            ),
            ("卡号6228480012345678903", "卡号6228***********8903"),
            ("邮箱zhang.san@example.com谢谢", "邮箱z***@example.com谢谢"),
            ("邮箱：lisi＠qq.com。", "邮箱：l***＠qq.com。"),
            ("13812345678@163.com", "1***@163.com"),
            // Parts of longer numbers are not matched.
            ("订单号2138123456789", "订单号2138123456789"),
            ("流水13812345678901", "流水13812345678901"),
            ("编号16222020012345671001", "编号16222020012345671001"),
            ("运单11010519491231002X1", "运单11010519491231002X1"),
            ("无敏感信息", "无敏感信息"),
            ("", ""),
        ];
        for (input, want) in cases {
            let mut s = PiiSummary::default();
            assert_eq!(p.apply(input, &mut s), want, "{input}");
        }
    }

    #[test]
    fn drop_keep_and_summary() {
        let text = "手机13812345678，身份证11010519491231002X，卡6222020012345671，邮箱a@b.cn";
        let mut s = PiiSummary::default();
        let out = PiiPolicy::all(PiiMode::Drop).apply(text, &mut s);
        assert_eq!(
            out,
            "手机[手机号已删除]，身份证[身份证号已删除]，卡[银行卡号已删除]，邮箱[邮箱已删除]"
        );
        assert_eq!(
            (
                s.mobile.dropped,
                s.resident_id.dropped,
                s.bank_card.dropped,
                s.email.dropped
            ),
            (1, 1, 1, 1)
        );
        let mut k = PiiSummary::default();
        let policy = PiiPolicy {
            mobile: PiiMode::Mask,
            ..PiiPolicy::default()
        };
        assert_eq!(
            policy.apply(text, &mut k),
            text.replace("13812345678", "138****5678")
        );
        assert_eq!((k.mobile.masked, k.email.kept, k.total_found()), (1, 1, 4));
        s.merge(&k);
        assert_eq!(s.get(PiiClass::Mobile).found, 2);
        let json = serde_json::to_value(s).expect("serialize");
        assert_eq!(json["mobile"]["masked"], 1);
    }

    #[test]
    fn raw_scrub_leaves_ids() {
        let mut v = serde_json::json!({"msgid": "13812345678", "from": "13812345678",
            "text": {"content": "call 13812345678"}, "file": {"sdkfileid": "13812345678", "filename": "x"}});
        PiiPolicy::all(PiiMode::Drop).scrub_value(&mut v, &mut PiiSummary::default());
        assert_eq!(v["msgid"], "13812345678");
        assert_eq!(v["from"], "13812345678");
        assert_eq!(v["file"]["sdkfileid"], "13812345678");
        assert_eq!(v["text"]["content"], "call [手机号已删除]");
    }
}

//! Spreadsheet customer lists (CSV and XLSX) → [`ContactRecord`]s.
//!
//! Columns are mapped by header synonyms, never by position: console exports
//! change column order between versions and people edit them in Excel.
//! Start with [`CsvRecords`] and [`read_xlsx`]; both share [`Header`] and
//! the row conversion.
//!
//! Encoding (CSV): the one [`SheetOptions::encoding`] names (`--encoding`);
//! else a byte order mark (UTF-8, or UTF-16 as Excel's "Unicode text"
//! writes); else valid UTF-8 in the first 64 KiB means UTF-8; else the
//! legacy encoding `chardetng` (Firefox's detector) finds most likely —
//! GBK, which Excel writes on mainland Chinese Windows, is read as GB18030
//! (its superset), and Big5 (Taiwan, Hong Kong), Shift_JIS, EUC-KR… as
//! themselves. Guessing GB18030 for every non-UTF-8 file turned a Big5
//! list into mojibake: Big5 bytes are nearly all valid GBK.
//!
//! Excel damages long numbers (IDs, card numbers, some phones) into
//! `3.40524E+17` or trailing zeros. Such values are flagged as warnings in
//! the record and not used as phones or identities.

use crate::model::*;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
pub use encoding_rs::Encoding;
use encoding_rs::{Decoder, GB18030, GBK, UTF_8};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{self, Read};

/// Options of the spreadsheet readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetOptions {
    /// Offset of the times written without a zone, in seconds east of UTC.
    /// Default: Beijing time, UTC+8.
    pub utc_offset_secs: i32,
    /// The encoding of CSV files, when the user knows it better than
    /// detection (`--encoding`, see [`encoding_for_label`]).
    #[serde(skip)]
    pub encoding: Option<&'static Encoding>,
}

impl Default for SheetOptions {
    fn default() -> Self {
        SheetOptions {
            utc_offset_secs: 8 * 3600,
            encoding: None,
        }
    }
}

/// An encoding named by `--encoding`: any WHATWG label (`gbk`, `big5`,
/// `shift_jis`, `utf-16le`…), any case. GBK and its labels mean GB18030, its
/// superset, so that characters past GBK still decode.
/// Windows' code page names of the two Chinese encodings are accepted too.
pub fn encoding_for_label(label: &str) -> Result<&'static Encoding, UnknownEncoding> {
    let label = label.trim();
    let whatwg = match label.to_ascii_lowercase().as_str() {
        "cp936" => "gbk",
        "cp950" => "big5",
        _ => label,
    };
    match Encoding::for_label(whatwg.as_bytes()) {
        Some(e) if e == GBK => Ok(GB18030),
        Some(e) => Ok(e),
        None => Err(UnknownEncoding(label.to_string())),
    }
}

/// A `--encoding` value that names no encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEncoding(pub String);

impl std::fmt::Display for UnknownEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown encoding {:?}; use a WHATWG label such as gbk, gb18030, big5, shift_jis, utf-8",
            self.0
        )
    }
}

impl std::error::Error for UnknownEncoding {}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    AddedAt,
    Phone,
    Email,
    Company,
    Description,
    /// 添加人账号: the member's userid.
    Owner,
    /// 添加人: the member's display name (used as owner when no account column).
    OwnerName,
    Position,
    Gender,
    ExternalUserid,
    Unionid,
    Openid,
    /// 标签 / 企业标签: tags without a group.
    Tags,
    /// `标签组N(组名)`: tags of one group.
    TagGroup(String),
    /// Anything else, kept in `attributes` under a normalized key or the header.
    Other(String),
}

/// (synonyms, field); headers are compared after trimming and lower-casing.
/// Builds the field a synonym list stands for (`Field` is not `const`-able).
type MakeField = fn() -> Field;

const SYNONYMS: &[(&[&str], MakeField)] = &[
    (
        &[
            "客户名称",
            "客户昵称",
            "昵称",
            "名称",
            "姓名",
            "客户姓名",
            "name",
            "nickname",
        ],
        || Field::Name,
    ),
    (
        &["添加时间", "添加日期", "创建时间", "added_at", "createtime"],
        || Field::AddedAt,
    ),
    (
        &[
            "手机",
            "电话",
            "手机号",
            "手机号码",
            "电话号码",
            "联系电话",
            "联络电话",
            "phone",
            "mobile",
        ],
        || Field::Phone,
    ),
    (
        &["邮箱", "电子邮箱", "邮件", "电子邮件", "email"],
        || Field::Email,
    ),
    (
        &[
            "企业",
            "公司",
            "企业名称",
            "公司名称",
            "company",
            "corp_name",
        ],
        || Field::Company,
    ),
    (
        &["描述", "备注", "备注信息", "description", "remark"],
        || Field::Description,
    ),
    (
        &["添加人账号", "添加人帐号", "所属员工账号", "userid"],
        || Field::Owner,
    ),
    (&["添加人", "所属员工", "跟进人"], || {
        Field::OwnerName
    }),
    (&["职务", "职位", "position"], || Field::Position),
    (&["性别", "gender"], || Field::Gender),
    (
        &[
            "外部联系人id",
            "客户id",
            "external_userid",
            "externaluserid",
        ],
        || Field::ExternalUserid,
    ),
    (&["unionid"], || Field::Unionid),
    (&["openid"], || Field::Openid),
    (&["标签", "企业标签", "客户标签", "tags"], || {
        Field::Tags
    }),
    (&["来源", "添加渠道"], || {
        Field::Other("source".into())
    }),
    (&["地址", "address"], || Field::Other("address".into())),
];

/// Traditional characters of the header synonyms → simplified, so that a
/// list written in Taiwan or Hong Kong (Big5, 客戶名稱 / 手機 / 標籤組)
/// maps like a mainland one. Only header words: values stay as written.
const TRADITIONAL: &[(char, char)] = &[
    ('戶', '户'),
    ('稱', '称'),
    ('暱', '昵'),
    ('機', '机'),
    ('話', '话'),
    ('碼', '码'),
    ('聯', '联'),
    ('繫', '系'),
    ('絡', '络'),
    ('郵', '邮'),
    ('電', '电'),
    ('業', '业'),
    ('備', '备'),
    ('註', '注'),
    ('資', '资'),
    ('訊', '讯'),
    ('間', '间'),
    ('時', '时'),
    ('職', '职'),
    ('務', '务'),
    ('別', '别'),
    ('籤', '签'),
    ('組', '组'),
    ('帳', '账'),
    ('號', '号'),
    ('門', '门'),
    ('屬', '属'),
    ('員', '员'),
    ('來', '来'),
    ('進', '进'),
    ('標', '标'),
    ('識', '识'),
    ('區', '区'),
    ('場', '场'),
    ('體', '体'),
    ('設', '设'),
    ('單', '单'),
    ('級', '级'),
];

/// A header with its traditional characters simplified (see [`TRADITIONAL`]).
pub(crate) fn simplified(h: &str) -> String {
    h.chars()
        .map(|c| {
            TRADITIONAL
                .iter()
                .find(|(t, _)| *t == c)
                .map_or(c, |(_, s)| *s)
        })
        .collect()
}

impl Field {
    pub fn from_header(h: &str) -> Field {
        let plain = h
            .trim()
            .trim_start_matches('\u{feff}')
            .trim_matches('*')
            .trim()
            .to_lowercase();
        if let Some(group) = tag_group_name(&plain) {
            return Field::TagGroup(group);
        }
        let norm = simplified(&plain);
        SYNONYMS
            .iter()
            .find(|(names, _)| names.contains(&norm.as_str()))
            .map_or_else(|| Field::Other(h.trim().to_string()), |(_, f)| f())
    }

    fn is_known(&self) -> bool {
        !matches!(self, Field::Other(k) if !matches!(k.as_str(), "source" | "address"))
    }
}

/// `标签组1(客户等级)` or `标签组1（客户等级）` → `客户等级`; `标签组1` → itself.
/// `標籤組1(客戶等級)` → `客戶等級`: the group keeps its own characters.
fn tag_group_name(h: &str) -> Option<String> {
    let prefix = h.char_indices().nth(3).map_or(h.len(), |(i, _)| i);
    if simplified(&h[..prefix]) != "标签组" {
        return None;
    }
    let rest = &h[prefix..];
    let open = rest.find(['(', '（']);
    let inner = open.map(|i| {
        let after = &rest[i..];
        let after = after.trim_start_matches(['(', '（']);
        after.trim_end_matches([')', '）']).trim().to_string()
    });
    Some(
        inner
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| h.to_string()),
    )
}

/// Columns whose numbers Excel may have damaged.
fn is_numeric_id_column(field: &Field, header: &str) -> bool {
    matches!(field, Field::Phone)
        || ["身份证", "证件", "卡号", "账号", "号码", "编号", "id"]
            .iter()
            .any(|k| header.to_lowercase().contains(k))
}

/// Why a value looks damaged by Excel, if it does.
pub fn mangled_number(s: &str) -> Option<&'static str> {
    let t = s.trim();
    let b = t.as_bytes();
    let sci = t.contains(['e', 'E'])
        && t.split(['e', 'E']).count() == 2
        && t.split(['e', 'E']).all(|p| {
            let p = p.trim_start_matches(['+', '-']);
            !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        });
    if sci {
        return Some("scientific notation");
    }
    if b.len() >= 16 && b.iter().all(u8::is_ascii_digit) && b[15..].iter().all(|&c| c == b'0') {
        return Some("digits past the 15th are zeros");
    }
    None
}

/// The mapped header row.
#[derive(Debug, Clone)]
pub struct Header {
    pub columns: Vec<(String, Field)>,
}

impl Header {
    pub fn new(cells: &[String]) -> Self {
        Header {
            columns: cells
                .iter()
                .map(|h| (h.trim().to_string(), Field::from_header(h)))
                .collect(),
        }
    }

    fn known_count(&self) -> usize {
        self.columns.iter().filter(|(_, f)| f.is_known()).count()
    }
}

/// A cell as the readers give it: text, or a number / Excel date serial.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// Days since 1899-12-30 (Excel's serial date).
    Date(f64),
}

impl Cell {
    fn text(&self) -> Option<String> {
        match self {
            Cell::Empty => None,
            Cell::Text(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Cell::Number(n) | Cell::Date(n) => Some(number_text(*n)),
        }
    }
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// How many leading rows may precede the header (titles, notes).
const HEADER_SEARCH_ROWS: usize = 10;

/// Converts rows one at a time once the header is known.
#[derive(Debug)]
struct RowMapper {
    header: Option<Header>,
    pending: Vec<(u64, Vec<Cell>)>,
    opts: SheetOptions,
}

impl RowMapper {
    fn new(opts: SheetOptions) -> Self {
        RowMapper {
            header: None,
            pending: Vec::new(),
            opts,
        }
    }

    /// Feeds a row; returns the items it releases (rows are held back while
    /// the header is looked for).
    fn push(&mut self, line: u64, cells: Vec<Cell>) -> Vec<Item> {
        if let Some(h) = &self.header {
            return row_item(h, line, &cells, &self.opts).into_iter().collect();
        }
        self.pending.push((line, cells));
        let last = self
            .pending
            .last()
            .map(|(_, c)| header_of(c))
            .map(|h| h.known_count() >= 2);
        if last == Some(true) || self.pending.len() >= HEADER_SEARCH_ROWS {
            return self.settle_header();
        }
        Vec::new()
    }

    /// Picks the header among the held rows: the first with two known
    /// columns, else the first row.
    fn settle_header(&mut self) -> Vec<Item> {
        let pending = std::mem::take(&mut self.pending);
        let idx = pending
            .iter()
            .position(|(_, c)| header_of(c).known_count() >= 2)
            .unwrap_or(0);
        let Some((_, cells)) = pending.get(idx) else {
            return Vec::new();
        };
        let header = header_of(cells);
        let items = pending[idx + 1..]
            .iter()
            .filter_map(|(line, cells)| row_item(&header, *line, cells, &self.opts))
            .collect();
        self.header = Some(header);
        items
    }

    fn finish(&mut self) -> Vec<Item> {
        if self.header.is_none() {
            self.settle_header()
        } else {
            Vec::new()
        }
    }
}

fn header_of(cells: &[Cell]) -> Header {
    let texts: Vec<String> = cells.iter().map(|c| c.text().unwrap_or_default()).collect();
    Header::new(&texts)
}

/// None for an empty row (skipped silently).
fn row_item(h: &Header, line: u64, cells: &[Cell], opts: &SheetOptions) -> Option<Item> {
    if cells.iter().all(|c| c.text().is_none()) {
        return None;
    }
    let rec = row_to_contact(h, cells, opts);
    if rec.identities.is_empty() && rec.name.is_none() {
        return Some(Err(Rejected {
            line,
            reason: "row has no name, phone, email or WeChat id".into(),
        }));
    }
    Some(Ok(Record::Contact(rec)))
}

/// Splits a multi-value cell: 、 , ， ; ； | and line breaks.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(['、', ',', '，', ';', '；', '|', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

/// Maps one row; never fails — doubtful values become warnings.
pub fn row_to_contact(h: &Header, cells: &[Cell], opts: &SheetOptions) -> ContactRecord {
    let mut rec = ContactRecord::new(ContactSource::Spreadsheet);
    let mut follow = Follow::default();
    let mut owner_name = None;
    for ((header, field), cell) in h.columns.iter().zip(cells) {
        let Some(text) = cell.text() else { continue };
        if is_numeric_id_column(field, header) {
            let float_loss = matches!(cell, Cell::Number(n) if n.abs() >= 1e15);
            if let Some(why) =
                mangled_number(&text).or(float_loss.then_some("number too long for Excel"))
            {
                rec.warnings.push(format!(
                    "{header}: {text} looks damaged by Excel ({why}); not used"
                ));
                rec.attributes.insert(header.clone(), Value::String(text));
                continue;
            }
        }
        match field {
            Field::Name => rec.name = Some(text),
            Field::AddedAt => match sheet_time(cell, opts) {
                Some(ms) => follow.added_at = Some(ms),
                None => {
                    rec.warnings
                        .push(format!("{header}: cannot read time {text:?}"));
                    rec.attributes.insert(header.clone(), Value::String(text));
                }
            },
            Field::Phone => {
                for p in split_list(&text) {
                    if !rec.phones.iter().any(|x| x == p) {
                        rec.phones.push(p.to_string());
                    }
                }
            }
            Field::Email => rec.email = Some(text),
            Field::Company => rec.company = Some(text),
            Field::Description => follow.description = Some(text),
            Field::Owner => follow.userid = Some(text),
            Field::OwnerName => owner_name = Some(text),
            Field::Position => rec.position = Some(text),
            Field::Gender => rec.gender = Some(gender(&text)),
            Field::ExternalUserid => rec.add_identity(IdentityKind::WechatExternalUserid, &text),
            Field::Unionid => rec.add_identity(IdentityKind::WechatUnionid, &text),
            Field::Openid => rec.add_identity(IdentityKind::WechatOpenid, &text),
            Field::Tags | Field::TagGroup(_) => {
                let group = match field {
                    Field::TagGroup(g) => Some(g.clone()),
                    _ => None,
                };
                for t in split_list(&text) {
                    follow.tags.push(TagRef {
                        kind: TagKind::Spreadsheet,
                        group: group.clone(),
                        name: Some(t.into()),
                        id: None,
                    });
                }
            }
            Field::Other(key) => {
                rec.attributes.insert(key.clone(), Value::String(text));
            }
        }
    }
    finish_row(&mut rec, follow, owner_name);
    rec
}

fn finish_row(rec: &mut ContactRecord, mut follow: Follow, owner_name: Option<String>) {
    match (&follow.userid, owner_name) {
        (None, Some(n)) => follow.userid = Some(n),
        (Some(_), Some(n)) => {
            rec.attributes.insert("owner_name".into(), Value::String(n));
        }
        _ => {}
    }
    for p in rec.phones.clone() {
        rec.add_identity(IdentityKind::Phone, &p);
    }
    if let Some(e) = rec.email.clone() {
        rec.add_identity(IdentityKind::Email, &e);
    }
    rec.owner = follow.userid.clone();
    rec.description = follow.description.clone();
    rec.added_at = follow.added_at;
    for t in &follow.tags {
        rec.add_tag(t.clone());
    }
    if follow != Follow::default() {
        rec.follows.push(follow);
    }
}

fn gender(s: &str) -> Gender {
    match s {
        "男" | "male" | "1" => Gender::Male,
        "女" | "female" | "2" => Gender::Female,
        _ => Gender::Unknown,
    }
}

const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y-%m-%dT%H:%M:%S",
];
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y%m%d"];

/// A zone-less time (text or Excel serial) read at the configured offset → UTC ms.
pub fn sheet_time(cell: &Cell, opts: &SheetOptions) -> Option<i64> {
    let naive = match cell {
        Cell::Date(d) | Cell::Number(d) => excel_serial(*d)?,
        Cell::Text(s) => parse_naive(s.trim())?,
        Cell::Empty => return None,
    };
    let zone = FixedOffset::east_opt(opts.utc_offset_secs)?;
    zone.from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp_millis())
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    TIME_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            DATE_FORMATS
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(s, f).ok()?.and_hms_opt(0, 0, 0))
        })
}

/// Excel's serial date: days since 1899-12-30, fraction = time of day.
fn excel_serial(d: f64) -> Option<NaiveDateTime> {
    if !(1.0..2_958_466.0).contains(&d) {
        return None;
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let ms = (d * 86_400_000.0).round() as i64;
    base.checked_add_signed(chrono::TimeDelta::try_milliseconds(ms)?)
}

// ---- encoding ----

/// How much of a CSV decides its encoding.
const SNIFF_BYTES: usize = 64 * 1024;

/// BOM → its encoding; strict UTF-8 → UTF-8; else chardetng's guess, GBK
/// read as GB18030. A multi-byte character cut by the end of `head` does
/// not count against UTF-8. `head` is the whole file when shorter than
/// 64 KiB.
pub fn detect_encoding(head: &[u8]) -> &'static Encoding {
    if let Some((bom, _)) = Encoding::for_bom(head) {
        return bom;
    }
    match std::str::from_utf8(head) {
        Ok(_) => return UTF_8,
        Err(e) if e.error_len().is_none() && head.len() >= SNIFF_BYTES => return UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(head, head.len() < SNIFF_BYTES);
    // No top-level domain to hint with; UTF-8 was ruled out above.
    match detector.guess(None, false) {
        e if e == GBK => GB18030,
        e => e,
    }
}

/// Decodes the head of a file for sniffing (lossy).
pub(crate) fn decode_head(body: &[u8]) -> String {
    let (text, _, _) = detect_encoding(body).decode(body);
    text.into_owned()
}

/// A `Read` that turns any encoding into UTF-8 as it goes, so a large CSV
/// is never held whole.
struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    output: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<R: Read> DecodingReader<R> {
    fn new(inner: R, encoding: &'static Encoding) -> Self {
        DecodingReader {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            input: vec![0; 16 * 1024],
            output: Vec::new(),
            out_pos: 0,
            eof: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        let n = if self.eof {
            0
        } else {
            self.inner.read(&mut self.input)?
        };
        self.eof = n == 0;
        let cap = self.decoder.max_utf8_buffer_length(n).unwrap_or(n * 4 + 16);
        self.output.clear();
        self.output.resize(cap, 0);
        let (_, _, written, _) =
            self.decoder
                .decode_to_utf8(&self.input[..n], &mut self.output, self.eof);
        self.output.truncate(written);
        self.out_pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos >= self.output.len() {
            if self.eof {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.output.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

// ---- CSV ----

/// Streams contacts from a CSV (or tab-separated) file in any of the
/// encodings above.
pub struct CsvRecords<R: Read> {
    rows: csv::StringRecordsIntoIter<DecodingReader<io::Chain<io::Cursor<Vec<u8>>, R>>>,
    mapper: RowMapper,
    queue: std::collections::VecDeque<Item>,
    done: bool,
    /// The encoding that was detected, for the report.
    pub encoding: &'static str,
}

impl<R: Read> CsvRecords<R> {
    pub fn new(mut input: R, opts: SheetOptions) -> io::Result<Self> {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut input)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)?;
        let encoding = opts.encoding.unwrap_or_else(|| detect_encoding(&head));
        let (first_line, _, _) = encoding.decode(&head[..head.len().min(4096)]);
        let first_line = first_line.lines().next().unwrap_or("");
        let delimiter = if first_line.contains('\t') && !first_line.contains(',') {
            b'\t'
        } else {
            b','
        };
        let reader = DecodingReader::new(io::Cursor::new(head).chain(input), encoding);
        let rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(reader)
            .into_records();
        Ok(CsvRecords {
            rows,
            mapper: RowMapper::new(opts),
            queue: Default::default(),
            done: false,
            encoding: encoding.name(),
        })
    }
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.rows.next() {
                Some(Ok(row)) => {
                    let line = row.position().map_or(0, |p| p.line());
                    let cells = row.iter().map(|c| Cell::Text(c.to_string())).collect();
                    self.queue.extend(self.mapper.push(line, cells));
                }
                Some(Err(e)) => {
                    let line = e.position().map_or(0, |p| p.line());
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        self.done = true;
                    }
                    return Some(Err(Rejected {
                        line,
                        reason: format!("CSV: {e}"),
                    }));
                }
                None => {
                    self.done = true;
                    self.queue.extend(self.mapper.finish());
                }
            }
        }
    }
}

// ---- XLSX ----

#[derive(Debug)]
pub enum SheetError {
    Io(io::Error),
    Workbook(String),
}

impl std::fmt::Display for SheetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SheetError::Io(e) => write!(f, "reading spreadsheet: {e}"),
            SheetError::Workbook(e) => write!(f, "invalid workbook: {e}"),
        }
    }
}

impl std::error::Error for SheetError {}

/// Reads the first worksheet of an XLSX. The workbook is zipped XML that
/// calamine loads whole, so this takes the bytes in memory (a customer list
/// is small); rows are then converted lazily.
pub fn read_xlsx<R: Read>(mut input: R, opts: SheetOptions) -> Result<XlsxRecords, SheetError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(SheetError::Io)?;
    // calamine is third-party code parsing untrusted zip/XML: a panic in it
    // must not take the import down, so it is contained here.
    let rows = std::panic::catch_unwind(move || xlsx_rows(bytes))
        .map_err(|_| SheetError::Workbook("the XLSX parser failed on this file".into()))??;
    Ok(XlsxRecords {
        rows: rows.into_iter(),
        mapper: RowMapper::new(opts),
        queue: Default::default(),
        done: false,
    })
}

fn xlsx_rows(bytes: Vec<u8>) -> Result<Vec<(u64, Vec<Cell>)>, SheetError> {
    use calamine::{Data, Reader, Xlsx};
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| SheetError::Workbook(e.to_string()))?;
    let range = match wb.worksheet_range_at(0) {
        Some(r) => r.map_err(|e| SheetError::Workbook(e.to_string()))?,
        None => return Ok(Vec::new()),
    };
    let first_row = u64::from(range.start().map_or(0, |(r, _)| r));
    let first_col = range.start().map_or(0, |(_, c)| c) as usize;
    let cell = |d: &Data| match d {
        Data::Empty | Data::Error(_) => Cell::Empty,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::Bool(b) => Cell::Text(b.to_string()),
        Data::DateTime(d) => Cell::Date(d.as_f64()),
    };
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, row)| {
            // Keep column positions when the used range does not start at A.
            let cells = std::iter::repeat_n(Cell::Empty, first_col)
                .chain(row.iter().map(cell))
                .collect();
            (first_row + i as u64 + 1, cells)
        })
        .collect())
}

/// Contacts of an XLSX, from [`read_xlsx`].
pub struct XlsxRecords {
    rows: std::vec::IntoIter<(u64, Vec<Cell>)>,
    mapper: RowMapper,
    queue: std::collections::VecDeque<Item>,
    done: bool,
}

impl Iterator for XlsxRecords {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.rows.next() {
                Some((line, cells)) => self.queue.extend(self.mapper.push(line, cells)),
                None => {
                    self.done = true;
                    self.queue.extend(self.mapper.finish());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_mapping() {
        let cases = [
            ("客户名称", Field::Name),
            ("昵称", Field::Name),
            (" 姓名 ", Field::Name),
            ("添加时间", Field::AddedAt),
            ("手机号", Field::Phone),
            ("电话", Field::Phone),
            ("邮箱", Field::Email),
            ("公司", Field::Company),
            ("备注", Field::Description),
            ("添加人", Field::OwnerName),
            ("添加人账号", Field::Owner),
            ("职务", Field::Position),
            ("标签", Field::Tags),
            ("标签组1(客户等级)", Field::TagGroup("客户等级".into())),
            ("标签组2（地区）", Field::TagGroup("地区".into())),
            ("标签组3", Field::TagGroup("标签组3".into())),
            ("来源", Field::Other("source".into())),
            ("地址", Field::Other("address".into())),
            ("添加人所属部门", Field::Other("添加人所属部门".into())),
            ("客戶名稱", Field::Name),
            ("手機號碼", Field::Phone),
            ("電子郵件", Field::Email),
            ("備註", Field::Description),
            ("標籤", Field::Tags),
            ("標籤組1(客戶等級)", Field::TagGroup("客戶等級".into())),
            ("添加時間", Field::AddedAt),
        ];
        for (h, want) in cases {
            assert_eq!(Field::from_header(h), want, "{h}");
        }
    }

    #[test]
    fn mangled_numbers() {
        let cases = [
            ("3.40524E+17", true),
            ("6.22202E+18", true),
            ("1e5", true),
            ("340524199001011000", true),
            ("6222020012345670000", true),
            ("13812345678", false),
            ("11010519491231002X", false),
            ("440304199001011233", false),
            ("E+", false),
            ("email@e1.com", false),
        ];
        for (s, want) in cases {
            assert_eq!(mangled_number(s).is_some(), want, "{s}");
        }
    }

    #[test]
    fn times() {
        let o = SheetOptions::default();
        let utc = SheetOptions {
            utc_offset_secs: 0,
            ..Default::default()
        };
        // 2023-05-01 08:00 Beijing = 2023-05-01 00:00 UTC = 1682899200 s.
        let cases = [
            (
                Cell::Text("2023-05-01 08:00:00".into()),
                o,
                Some(1_682_899_200_000),
            ),
            (
                Cell::Text("2023/5/1 08:00".into()),
                o,
                Some(1_682_899_200_000),
            ),
            (
                Cell::Text("2023年05月01日 08:00".into()),
                o,
                Some(1_682_899_200_000),
            ),
            (
                Cell::Text("2023-05-01".into()),
                utc,
                Some(1_682_899_200_000),
            ),
            (Cell::Date(45047.0 + 8.0 / 24.0), o, Some(1_682_899_200_000)),
            (Cell::Text("昨天".into()), o, None),
            (Cell::Date(f64::NAN), o, None),
            (Cell::Empty, o, None),
        ];
        for (cell, opts, want) in cases {
            assert_eq!(sheet_time(&cell, &opts), want, "{cell:?}");
        }
    }

    #[test]
    fn encodings() {
        let (gbk, _, _) = encoding_rs::GBK.encode("客户名称,手机\n张三,13800000000\n");
        let (gbk_long, _, _) = encoding_rs::GBK.encode(
            "客户名称,描述,添加人,添加时间,来源,手机,企业,邮箱\r\n\
             张伟,老客户，需要发票,李娜,2023-05-01 08:00:00,扫描二维码,13800138000,上海某某贸易有限公司,zw@example.com\r\n",
        );
        let (big5, _, _) = encoding_rs::BIG5.encode(
            "客戶名稱,手機,公司,地址\r\n陳大文,0912345678,台灣積體電路製造股份有限公司,新竹市東區\r\n\
             林美玲,0987654321,鴻海精密工業,臺北市信義區\r\n",
        );
        let (sjis, _, _) = encoding_rs::SHIFT_JIS
            .encode("顧客名,電話番号,会社\r\n山田太郎,090-1234-5678,株式会社サンプル\r\n");
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend("客户名称\t手机".encode_utf16().flat_map(u16::to_le_bytes));
        let cases: [(&[u8], &str); 8] = [
            (b"\xEF\xBB\xBFname", "UTF-8"),
            ("客户名称".as_bytes(), "UTF-8"),
            (&gbk, "gb18030"),
            (&gbk_long, "gb18030"),
            (&big5, "Big5"),
            (&sjis, "Shift_JIS"),
            (&utf16, "UTF-16LE"),
            (b"plain ascii", "UTF-8"),
        ];
        for (bytes, want) in cases {
            assert_eq!(detect_encoding(bytes).name(), want);
        }
    }

    #[test]
    fn encoding_labels() {
        let cases = [
            ("big5", Some("Big5")),
            ("BIG5-HKSCS", Some("Big5")),
            ("gbk", Some("gb18030")),
            ("cp936", Some("gb18030")),
            ("CP950", Some("Big5")),
            ("GB2312", Some("gb18030")),
            (" utf-8 ", Some("UTF-8")),
            ("shift_jis", Some("Shift_JIS")),
            ("x-user-defined", Some("x-user-defined")),
            ("klingon", None),
        ];
        for (label, want) in cases {
            assert_eq!(
                encoding_for_label(label).ok().map(|e| e.name()),
                want,
                "{label}"
            );
        }
    }

    #[test]
    fn title_row_before_header() {
        let csv = "客户列表导出,,\n客户名称,手机,添加时间\n张三,13800000000,2023-05-01 08:00:00\n";
        let items: Vec<_> = CsvRecords::new(csv.as_bytes(), SheetOptions::default())
            .expect("csv")
            .collect();
        assert_eq!(items.len(), 1);
        let Ok(Record::Contact(c)) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(c.name.as_deref(), Some("张三"));
        assert_eq!(c.added_at, Some(1_682_899_200_000));
    }
}

//! The parsing layer of `kefu import wechat`: turns what a company leaving
//! WeChat customer service holds — message exports, contacts, tags,
//! spreadsheets and media files — into owned, normalized records. No database
//! and no Tokio: the importer drives these readers and stores the results.
//!
//! Start with [`detect`] and [`JsonRecords`], then [`model`]:
//!
//! - [`format`]: the [`Format`] enum (`--format` names) and [`detect`], which
//!   sniffs a file's first bytes.
//! - [`reader`]: [`JsonRecords`], a streaming iterator of
//!   `Result<Record, Rejected>` over any `BufRead` (NDJSON, concatenated or
//!   array JSON); a bad line is rejected with its number and reading goes on.
//!   [`open`] detects a file's format and returns the right reader boxed —
//!   the one call the CLI needs per file.
//! - [`model`]: the output types — [`Record`], [`MessageRecord`],
//!   [`ContactRecord`], [`TagGroupRecord`], [`Rejected`].
//! - Source modules, one per WeChat API family: `kf` (微信客服), `archive`
//!   (会话内容存档), `oa` (公众号), `contact` (客户联系); the JSON byte
//!   splitter lives in `stream`.
//! - [`sheet`]: CSV / XLSX customer lists with Chinese headers.
//! - [`session`]: [`Sessionizer`], which cuts one customer's messages into
//!   conversations.
//! - [`media`]: [`media::MediaIndex`] finds a message's file in a media
//!   directory by media_id / sdkfileid / md5sum; [`media::sniff_mime`] names
//!   AMR / Silk voice and common image types.
//! - [`pii`]: masking of phone numbers, ID numbers, bank cards and emails in
//!   free text.
//!
//! Readers yield duplicates and out-of-order messages as found; dedupe (by
//! source + msgid) and ordering are the importer's job.

mod archive;
mod contact;
pub mod format;
mod kf;
pub mod media;
pub mod model;
mod oa;
pub mod pii;
pub mod reader;
pub mod session;
pub mod sheet;
mod stream;
mod text;
mod value;

pub use archive::is_external_id;
pub use format::{Format, UnknownFormat, detect, non_source};
pub use model::*;
pub use reader::{JsonRecords, OpenError, Records, open};
pub use session::Sessionizer;
pub use sheet::{
    CsvRecords, Encoding, SheetOptions, UnknownEncoding, encoding_for_label, read_xlsx,
};

//! [`JsonRecords`]: the streaming reader for every JSON source.
//!
//! Values come from [`crate::stream`] one at a time; each is converted by the
//! source module for the format, and its records are queued. Memory is one
//! value plus its records, whatever the file size.

use crate::format::Format;
use crate::model::{Item, Record, Rejected};
use crate::stream::{DEFAULT_MAX_VALUE_BYTES, Splitter};
use crate::{archive, contact, kf, oa};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::BufRead;

/// Streams records of a JSON format from any `BufRead`.
///
/// ```
/// use kefu_wechat::{Format, JsonRecords};
/// let input = "{\"msgid\":\"m1\",\"send_time\":1,\"origin\":3,\"msgtype\":\"text\",\"text\":{\"content\":\"hi\"}}\nnot json\n";
/// let items: Vec<_> = JsonRecords::new(Format::KfMessages, input.as_bytes()).collect();
/// assert!(items[0].is_ok());
/// assert_eq!(items[1].as_ref().err().map(|r| r.line), Some(2));
/// ```
pub struct JsonRecords<R> {
    format: Format,
    values: Splitter<R>,
    queue: VecDeque<Item>,
}

impl<R: BufRead> JsonRecords<R> {
    /// For [`Format::Csv`] / [`Format::Xlsx`] every value is rejected: use
    /// [`crate::sheet`] for those.
    pub fn new(format: Format, input: R) -> Self {
        Self::with_limit(format, input, DEFAULT_MAX_VALUE_BYTES)
    }

    /// As [`JsonRecords::new`], with a cap on one JSON value's size; a larger
    /// value is skipped and rejected.
    pub fn with_limit(format: Format, input: R, max_value_bytes: usize) -> Self {
        JsonRecords {
            format,
            values: Splitter::new(input, max_value_bytes),
            queue: VecDeque::new(),
        }
    }
}

impl<R: BufRead> Iterator for JsonRecords<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            let chunk = self.values.next()?;
            match chunk.parse() {
                Ok((line, value)) => {
                    let items = convert(self.format, value);
                    self.queue.extend(
                        items
                            .into_iter()
                            .map(|r| r.map_err(|reason| Rejected { line, reason })),
                    );
                }
                Err((line, reason)) => return Some(Err(Rejected { line, reason })),
            }
        }
    }
}

/// One parsed JSON value → its records. Public so that a caller holding
/// values from elsewhere (an API response) can reuse the conversion.
pub fn convert(format: Format, value: Value) -> Vec<Result<Record, String>> {
    match format {
        Format::KfSync | Format::KfMessages => kf::convert_sync(value),
        Format::KfCustomers => kf::convert_customers(value),
        Format::Archive => archive::convert(value),
        Format::OaRecords => oa::convert_records(value),
        Format::OaUsers => oa::convert_users(value),
        Format::OaTags => oa::convert_tags(value),
        Format::Contacts => contact::convert_contacts(value),
        Format::CorpTags => contact::convert_corp_tags(value),
        Format::Csv | Format::Xlsx => vec![Err(format!("{format} is not a JSON format"))],
    }
}

/// Why a file could not be opened as records at all (per-item problems are
/// [`Rejected`] items instead).
#[derive(Debug)]
pub enum OpenError {
    Io(std::io::Error),
    /// The format could not be detected: pass one explicitly.
    Undetected,
    Sheet(crate::sheet::SheetError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "{e}"),
            OpenError::Undetected => f.write_str("cannot tell the file's format; pass --format"),
            OpenError::Sheet(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Any reader's items, boxed so the importer can treat every format alike.
pub type Records = Box<dyn Iterator<Item = Item>>;

/// Opens a file: detects its format (unless given), and returns the
/// matching streaming reader with the format it used.
pub fn open(
    path: &std::path::Path,
    format: Option<Format>,
    sheet: crate::sheet::SheetOptions,
) -> Result<(Format, Records), OpenError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(OpenError::Io)?;
    let format = match format {
        Some(f) => f,
        None => {
            let mut head = Vec::with_capacity(8192);
            (&file)
                .take(8192)
                .read_to_end(&mut head)
                .map_err(OpenError::Io)?;
            crate::format::detect(&head, Some(path)).ok_or(OpenError::Undetected)?
        }
    };
    let file = std::fs::File::open(path).map_err(OpenError::Io)?;
    let records: Records = match format {
        Format::Csv => Box::new(crate::sheet::CsvRecords::new(file, sheet).map_err(OpenError::Io)?),
        Format::Xlsx => Box::new(crate::sheet::read_xlsx(file, sheet).map_err(OpenError::Sheet)?),
        json => Box::new(JsonRecords::new(
            json,
            std::io::BufReader::with_capacity(64 * 1024, file),
        )),
    };
    Ok((format, records))
}

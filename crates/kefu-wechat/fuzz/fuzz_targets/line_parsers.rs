//! Feeds arbitrary bytes to every line/JSON reader, the CSV reader, format
//! detection and the PII scanner: none may panic, and every JSON reader must
//! terminate with each item either a record or a rejection.
#![no_main]

use kefu_wechat::pii::{PiiMode, PiiPolicy, PiiSummary};
use kefu_wechat::{CsvRecords, Format, JsonRecords, Record, SheetOptions, detect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = detect(data, None);
    let policy = PiiPolicy::all(PiiMode::Mask);
    for format in Format::ALL.into_iter().filter(|f| f.is_json()) {
        for item in JsonRecords::with_limit(format, data, 1 << 16) {
            if let Ok(Record::Message(mut m)) = item {
                policy.apply_to_message(&mut m, &mut PiiSummary::default());
            }
        }
    }
    if let Ok(rows) = CsvRecords::new(data, SheetOptions::default()) {
        rows.for_each(drop);
    }
    let text = String::from_utf8_lossy(data);
    let _ = policy.apply(&text, &mut PiiSummary::default());
});

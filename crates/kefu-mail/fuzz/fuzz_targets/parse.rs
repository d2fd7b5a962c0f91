//! `parse` must return for any input, never panic (the `Panicked` problem means the
//! catch_unwind guard fired, which is a bug too), and keep its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = kefu_mail::parse(data);
    assert_eq!(parsed.size, data.len());
    assert!(!parsed.problems.contains(&kefu_mail::Problem::Panicked));
    let _ = kefu_mail::quote::visible_text(&parsed.text);
});

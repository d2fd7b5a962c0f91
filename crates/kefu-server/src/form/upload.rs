//! Files customers attach to a form: typed by their first bytes (a name or
//! a browser's claimed type is not evidence), and only types an agent can
//! open safely — the same list the chat widget accepts.

use crate::http::widget::VISITOR_TYPES;

/// The file's type from its contents, when it is one we accept. Plain text
/// has no magic number: valid UTF-8 without control characters (other than
/// tabs, line and page breaks) counts as text.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let found = match infer::get(bytes) {
        Some(t) => t.mime_type(),
        None if is_text(bytes) => "text/plain",
        None => return None,
    };
    VISITOR_TYPES.iter().copied().find(|t| *t == found)
}

fn is_text(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
        }
        Err(_) => false,
    }
}

pub(crate) use crate::http::attachments::clean_filename;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some("image/png")),
            (b"\xff\xd8\xff\xe0\0\x10JFIF\0", Some("image/jpeg")),
            (b"%PDF-1.7\n%\xe2\xe3", Some("application/pdf")),
            ("订单号 12345\n".as_bytes(), Some("text/plain")),
            (b"MZ\x90\0\x03\0\0\0", None),
            (b"\x7fELF\x02\x01\x01", None),
            (
                b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                Some("text/plain"),
            ),
            (b"", None),
            (b"\0\0\0binary", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}

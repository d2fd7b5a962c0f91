//! Files customers attach to a form: typed by their first bytes (a name or
//! a browser's claimed type is not evidence), and only types an agent can
//! open safely — the same list the chat widget accepts.

use crate::http::widget::VISITOR_TYPES;

/// The file's type from its contents, when it is one we accept. Plain text
/// has no magic number: valid UTF-8 without control characters (other than
/// tabs, line and page breaks) counts as text. (Requests use [`Sniffer`].)
#[cfg(test)]
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let mut s = Sniffer::default();
    s.feed(bytes);
    s.finish()
}

/// [`sniff`] for a file that arrives in chunks and is never held whole:
/// magic numbers are looked for in its first [`HEAD`] bytes, and the text
/// test runs over every chunk as it passes.
#[derive(Debug, Default)]
pub struct Sniffer {
    head: Vec<u8>,
    text: TextCheck,
}

/// Enough for every type accepted (Office files are recognised by names
/// near the start of their zip directory).
const HEAD: usize = 64 * 1024;

impl Sniffer {
    pub fn feed(&mut self, chunk: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.text.feed(chunk);
    }

    pub fn finish(&self) -> Option<&'static str> {
        let found = match infer::get(&self.head) {
            Some(t) => t.mime_type(),
            None if self.text.is_text() => "text/plain",
            None => return None,
        };
        VISITOR_TYPES.iter().copied().find(|t| *t == found)
    }
}

/// Valid UTF-8 without control characters, checked chunk by chunk: a
/// character cut at a chunk's end waits in `carry` for the next chunk.
#[derive(Debug)]
struct TextCheck {
    ok: bool,
    any: bool,
    carry: Vec<u8>,
}

impl Default for TextCheck {
    fn default() -> Self {
        TextCheck {
            ok: true,
            any: false,
            carry: Vec::new(),
        }
    }
}

impl TextCheck {
    fn feed(&mut self, chunk: &[u8]) {
        if !self.ok || chunk.is_empty() {
            return;
        }
        self.any = true;
        let joined;
        let data = if self.carry.is_empty() {
            chunk
        } else {
            let mut v = std::mem::take(&mut self.carry);
            v.extend_from_slice(chunk);
            joined = v;
            &joined
        };
        let (valid, rest) = match std::str::from_utf8(data) {
            Ok(s) => (s, &[][..]),
            // Cut short at the end: the rest may complete it.
            Err(e) if e.error_len().is_none() => {
                let (a, b) = data.split_at(e.valid_up_to());
                (std::str::from_utf8(a).unwrap_or_default(), b)
            }
            Err(_) => {
                self.ok = false;
                return;
            }
        };
        self.ok = !valid
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'));
        self.carry = rest.to_vec();
    }

    fn is_text(&self) -> bool {
        self.ok && self.any && self.carry.is_empty()
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
            // In chunks of every size, cutting characters anywhere.
            for size in 1..4 {
                let mut s = Sniffer::default();
                bytes.chunks(size).for_each(|c| s.feed(c));
                assert_eq!(s.finish(), *want, "{size}-byte chunks");
            }
        }
        let mut cut = Sniffer::default();
        cut.feed("退款".as_bytes().split_at(4).0);
        assert_eq!(cut.finish(), None, "a character cut at the very end");
    }
}

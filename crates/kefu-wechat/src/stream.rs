//! Cuts a byte stream into JSON values without parsing them, so memory stays
//! at one value however large the file is.
//!
//! Handles NDJSON, concatenated documents (pretty or compact) and a top-level
//! array, whose elements are yielded one by one. `serde_json::StreamDeserializer`
//! was the obvious alternative, but it cannot step into a top-level array and
//! it stops at the first syntax error; a byte scanner that only tracks
//! strings and nesting can do both and resynchronise after a broken line.
//!
//! Resynchronisation: a raw line break inside a string is never valid JSON,
//! so it marks the value broken; and when a value that started at column 0
//! is still open at a line starting with `{`, that value was truncated (a cut
//! NDJSON line) and a new one begins.
//!
//! Line records: a value that starts at column 0 and holds more than its
//! opening bracket on its first line is an NDJSON record, and in NDJSON each
//! line is its own record: if the line ends while the value is still open,
//! the value ends there, broken, and the next line is read on its own (so
//! two broken lines in a row are two rejections, each with its line).
//! Pretty printers (serde_json, jq, Python's `indent`, JS, Go, PHP) all put
//! the opening bracket alone on the first line, so a pretty document never
//! looks like a line record.

use std::io::BufRead;

/// One value's bytes, or the reason it cannot be parsed.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// 1-based line where the value starts.
    pub line: u64,
    pub bytes: Vec<u8>,
    pub error: Option<String>,
}

impl Chunk {
    /// Parses the chunk; errors carry the absolute line of the fault.
    pub fn parse(self) -> Result<(u64, serde_json::Value), (u64, String)> {
        if let Some(e) = self.error {
            return Err((self.line, e));
        }
        serde_json::from_slice(&self.bytes)
            .map(|v| (self.line, v))
            .map_err(|e| {
                let line = self.line + (e.line() as u64).saturating_sub(1);
                (line, format!("invalid JSON: {e}"))
            })
    }
}

/// Default cap on one value: beyond it the value is skipped and rejected.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outside {
    Top,
    TopArray,
}

#[derive(Debug)]
struct Current {
    start_line: u64,
    started_at_col0: bool,
    /// A bare token (number, word, garbage): ends at a line break, or at `,`
    /// / `]` inside a top-level array.
    scalar: bool,
    depth: u32,
    in_str: bool,
    escaped: bool,
    error: Option<String>,
    /// A line break has been seen inside the value.
    multiline: bool,
    /// Something besides the opening bracket and blanks is on the value's
    /// first line: with `started_at_col0`, the mark of an NDJSON record.
    first_line_content: bool,
}

impl Current {
    /// An NDJSON record (see the module comment) still open: a line break
    /// now ends it, broken.
    fn is_open_line_record(&self) -> bool {
        self.started_at_col0 && !self.scalar && self.depth > 0 && self.first_line_content
    }
}

enum Step {
    Continue,
    /// The byte completed a value.
    Emit(Chunk),
    /// A value ended before this byte, which must be looked at again.
    EmitAndRetry(Chunk),
}

#[derive(Debug)]
struct Scan {
    line: u64,
    col0: bool,
    first_byte: bool,
    bom_left: u8,
    outside: Outside,
    cur: Option<Current>,
    buf: Vec<u8>,
    max: usize,
    too_big: bool,
}

impl Scan {
    fn new(max: usize) -> Self {
        Scan {
            line: 1,
            col0: true,
            first_byte: true,
            bom_left: 0,
            outside: Outside::Top,
            cur: None,
            buf: Vec::new(),
            max,
            too_big: false,
        }
    }

    fn step(&mut self, b: u8) -> Step {
        if self.skip_bom(b) {
            return Step::Continue;
        }
        let at_col0 = self.col0;
        self.col0 = b == b'\n';
        if self.cur.is_none() {
            self.step_outside(b, at_col0);
            return Step::Continue;
        }
        if at_col0 && b == b'{' && self.truncated_by_new_value() {
            self.col0 = true; // the byte is looked at again, still at column 0
            let chunk = self.finish(Some("unterminated JSON value".into()));
            return Step::EmitAndRetry(chunk);
        }
        self.step_inside(b)
    }

    /// Skips a UTF-8 byte order mark at the very start.
    fn skip_bom(&mut self, b: u8) -> bool {
        const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
        if self.first_byte {
            self.first_byte = false;
            if b == BOM[0] {
                self.bom_left = 2;
                return true;
            }
        } else if self.bom_left > 0 {
            let expected = BOM[3 - self.bom_left as usize];
            self.bom_left -= 1;
            if b == expected {
                return true;
            }
            // Not a BOM after all: a broken value will be reported at parse.
            self.bom_left = 0;
        }
        false
    }

    fn truncated_by_new_value(&self) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|c| c.started_at_col0 && !c.scalar && c.depth > 0)
    }

    fn step_outside(&mut self, b: u8, at_col0: bool) {
        match (self.outside, b) {
            (_, b'\n') => self.line += 1,
            (_, b' ' | b'\t' | b'\r') => {}
            (Outside::Top, b'[') => self.outside = Outside::TopArray,
            (Outside::TopArray, b',') => {}
            (Outside::TopArray, b']') => self.outside = Outside::Top,
            (_, b'{' | b'[') => self.start(b, at_col0, false),
            _ => self.start(b, at_col0, true),
        }
    }

    fn start(&mut self, b: u8, at_col0: bool, scalar: bool) {
        self.buf.clear();
        self.too_big = false;
        self.cur = Some(Current {
            start_line: self.line,
            started_at_col0: at_col0,
            scalar,
            depth: 0,
            in_str: false,
            escaped: false,
            error: None,
            multiline: false,
            first_line_content: false,
        });
        // Re-run the opening byte through the value automaton.
        let _ = self.step_inside(b);
    }

    fn step_inside(&mut self, b: u8) -> Step {
        let in_array = self.outside == Outside::TopArray;
        let Some(cur) = self.cur.as_mut() else {
            return Step::Continue;
        };
        if cur.scalar {
            // A raw line break is never inside a JSON string, so it ends a
            // bare token even after an odd quote (a line of garbage).
            let ends = b == b'\n' || (!cur.in_str && in_array && (b == b',' || b == b']'));
            if ends {
                self.col0 = false;
                let chunk = self.finish(None);
                return Step::EmitAndRetry(chunk);
            }
        }
        if b == b'\n' && cur.is_open_line_record() {
            let reason = if cur.in_str {
                "unterminated JSON value: the line ends inside a string"
            } else {
                "unterminated JSON value: the line ends inside it"
            };
            // The line break is looked at again, outside any value.
            let chunk = self.finish(Some(reason.into()));
            return Step::EmitAndRetry(chunk);
        }
        if b == b'\n' {
            self.line += 1;
            cur.multiline = true;
        } else if !cur.first_line_content
            && !cur.multiline
            && !self.buf.is_empty()
            && !b.is_ascii_whitespace()
        {
            cur.first_line_content = true;
        }
        self.push(b);
        let Some(cur) = self.cur.as_mut() else {
            return Step::Continue;
        };
        if cur.in_str {
            if cur.escaped {
                cur.escaped = false;
            } else if b == b'\\' {
                cur.escaped = true;
            } else if b == b'"' {
                cur.in_str = false;
            } else if b == b'\n' {
                cur.in_str = false;
                cur.error
                    .get_or_insert_with(|| "line break inside a JSON string".into());
            }
            return Step::Continue;
        }
        match b {
            b'"' => cur.in_str = true,
            b'{' | b'[' if !cur.scalar => cur.depth = cur.depth.saturating_add(1),
            b'}' | b']' if !cur.scalar => {
                cur.depth = cur.depth.saturating_sub(1);
                if cur.depth == 0 {
                    return Step::Emit(self.finish(None));
                }
            }
            _ => {}
        }
        Step::Continue
    }

    fn push(&mut self, b: u8) {
        if self.too_big {
            return;
        }
        if self.buf.len() >= self.max {
            self.too_big = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.push(b);
    }

    fn finish(&mut self, error: Option<String>) -> Chunk {
        let cur = self.cur.take();
        let (line, own_error) = match cur {
            Some(c) => (c.start_line, c.error),
            None => (self.line, None),
        };
        let error = if self.too_big {
            Some(format!("value larger than {} bytes, skipped", self.max))
        } else {
            own_error.or(error)
        };
        self.too_big = false;
        Chunk {
            line,
            bytes: std::mem::take(&mut self.buf),
            error,
        }
    }

    /// At end of input: a pending bare token is complete, an open value is not.
    fn finish_eof(&mut self) -> Option<Chunk> {
        let cur = self.cur.as_ref()?;
        let error = (!cur.scalar).then(|| "unexpected end of input inside a JSON value".into());
        Some(self.finish(error))
    }
}

/// Iterator over the JSON values of a reader.
pub(crate) struct Splitter<R> {
    input: R,
    scan: Scan,
    done: bool,
}

impl<R: BufRead> Splitter<R> {
    pub fn new(input: R, max_value_bytes: usize) -> Self {
        Splitter {
            input,
            scan: Scan::new(max_value_bytes.max(1)),
            done: false,
        }
    }

    fn next_chunk(&mut self) -> Option<Chunk> {
        loop {
            let avail = match self.input.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    let line = self.scan.line;
                    return Some(Chunk {
                        line,
                        bytes: Vec::new(),
                        error: Some(format!("read error: {e}")),
                    });
                }
            };
            if avail.is_empty() {
                self.done = true;
                return self.scan.finish_eof();
            }
            let mut used = avail.len();
            let mut out = None;
            for (i, &b) in avail.iter().enumerate() {
                match self.scan.step(b) {
                    Step::Continue => {}
                    Step::Emit(c) => {
                        used = i + 1;
                        out = Some(c);
                        break;
                    }
                    Step::EmitAndRetry(c) => {
                        used = i;
                        out = Some(c);
                        break;
                    }
                }
            }
            self.input.consume(used);
            if out.is_some() {
                return out;
            }
        }
    }
}

impl<R: BufRead> Iterator for Splitter<R> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if self.done {
            return None;
        }
        self.next_chunk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, expected (line, parsed-or-error) per value)
    fn split(input: &str) -> Vec<Result<(u64, String), u64>> {
        Splitter::new(input.as_bytes(), 1 << 20)
            .map(|c| match c.parse() {
                Ok((l, v)) => Ok((l, v.to_string())),
                Err((l, _)) => Err(l),
            })
            .collect()
    }

    /// Per value: Ok((line, compact JSON)) or Err(line of the rejection).
    type Expected<'a> = &'a [Result<(u64, &'a str), u64>];

    #[test]
    fn table() {
        let cases: &[(&str, Expected)] = &[
            ("", &[]),
            (
                "{\"a\":1}\n{\"a\":2}\n",
                &[Ok((1, r#"{"a":1}"#)), Ok((2, r#"{"a":2}"#))],
            ),
            ("\u{feff}{\"a\":1}", &[Ok((1, r#"{"a":1}"#))]),
            (
                "{\"a\":1}{\"a\":2}",
                &[Ok((1, r#"{"a":1}"#)), Ok((1, r#"{"a":2}"#))],
            ),
            (
                "[{\"a\":1},\n {\"a\":2}]",
                &[Ok((1, r#"{"a":1}"#)), Ok((2, r#"{"a":2}"#))],
            ),
            (
                "[\n{\"a\":1},\n{\"a\":2}\n]\n",
                &[Ok((2, r#"{"a":1}"#)), Ok((3, r#"{"a":2}"#))],
            ),
            (
                "{\n  \"a\": {\"b\": \"}{\"}\n}\n",
                &[Ok((1, r#"{"a":{"b":"}{"}}"#))],
            ),
            // Truncated NDJSON line: rejected, the next line still parses.
            ("{\"a\":1\n{\"a\":2}\n", &[Err(1), Ok((2, r#"{"a":2}"#))]),
            // Cut inside a string.
            ("{\"a\":\"x\n{\"a\":2}\n", &[Err(1), Ok((2, r#"{"a":2}"#))]),
            (
                "garbage here\n{\"a\":2}\n",
                &[Err(1), Ok((2, r#"{"a":2}"#))],
            ),
            (
                "{\"a\":1}}\n{\"a\":2}",
                &[Ok((1, r#"{"a":1}"#)), Err(1), Ok((2, r#"{"a":2}"#))],
            ),
            ("{\"a\":1", &[Err(1)]),
            // NDJSON: every line is its own record, so two broken lines in a
            // row are two rejections (the second does not start with `{`).
            (
                "{\"a\":{\"b\":1}\n\"c\":2}\n{\"a\":3}\n",
                &[Err(1), Err(2), Ok((3, r#"{"a":3}"#))],
            ),
            (
                "{\"a\":\"x\ny\"}\n{\"a\":2}\n",
                &[Err(1), Err(2), Ok((3, r#"{"a":2}"#))],
            ),
            (
                "{\"a\":1}\n{\"a\":1,\r\n\"b\":\r\n{\"a\":2}\r\n",
                &[Ok((1, r#"{"a":1}"#)), Err(2), Err(3), Ok((4, r#"{"a":2}"#))],
            ),
            // A pretty document (bracket alone on its first line) spans lines.
            (
                "{\n  \"a\": [\n    1\n  ]\n}\n{\n\"b\":2}",
                &[Ok((1, r#"{"a":[1]}"#)), Ok((6, r#"{"b":2}"#))],
            ),
            ("[1, \"x,y\"]", &[Ok((1, "1")), Ok((1, r#""x,y""#))]),
            ("{\"a\":\"\\\"}\"}", &[Ok((1, r#"{"a":"\"}"}"#))]),
            ("\n\n{\"a\":tru}\n", &[Err(3)]),
        ];
        for (input, expected) in cases {
            let want: Vec<_> = expected
                .iter()
                .map(|r| r.map(|(l, s)| (l, s.to_string())))
                .collect();
            assert_eq!(split(input), want, "input {input:?}");
        }
    }

    #[test]
    fn oversized_value_is_skipped_and_rest_continues() {
        let input = format!("{{\"a\":\"{}\"}}\n{{\"b\":1}}\n", "x".repeat(100));
        let got: Vec<_> = Splitter::new(input.as_bytes(), 50)
            .map(|c| c.parse().map(|(l, _)| l).map_err(|(l, _)| l))
            .collect();
        assert_eq!(got, vec![Err(1), Ok(2)]);
    }

    #[test]
    fn tiny_reader_buffer_gives_same_result() {
        let input = "[{\"a\":1},\n{\"a\":\"\u{4e2d}\"}]\n{\"c\":3";
        let small = std::io::BufReader::with_capacity(1, input.as_bytes());
        let a: Vec<_> = Splitter::new(small, 1 << 20)
            .map(|c| c.parse().is_ok())
            .collect();
        assert_eq!(a, vec![true, true, false]);
    }
}

//! The SMTP wire format, without I/O: command parsing, replies, and the DATA decoder
//! (dot-unstuffing and end-of-data detection over arbitrary chunks).

/// A command from the client (RFC 5321 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// `from` is empty for the null sender `<>` (bounces). `size` is the SIZE= parameter.
    Mail {
        from: String,
        size: Option<u64>,
    },
    Rcpt {
        to: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    StartTls,
}

/// A reply line: code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply {
            code,
            text: text.into(),
        }
    }

    /// The reply on the wire; `text` lines after the first become continuation lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{}{sep}{line}\r\n", self.code));
        }
        if lines.is_empty() {
            out.push_str(&format!("{}\r\n", self.code));
        }
        out.into_bytes()
    }
}

/// Parses one command line (without CRLF). `Err` is the reply to send back.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let line = std::str::from_utf8(line)
        .map_err(|_| Reply::new(500, "5.5.2 Command is not UTF-8"))?
        .trim_end();
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match verb.to_ascii_uppercase().as_str() {
        "HELO" if !rest.is_empty() => Ok(Command::Helo(rest.to_string())),
        "EHLO" if !rest.is_empty() => Ok(Command::Ehlo(rest.to_string())),
        "HELO" | "EHLO" => Err(Reply::new(501, "5.5.4 Domain required")),
        "MAIL" => parse_mail(rest),
        "RCPT" => {
            let (to, _) = parse_path(rest, "TO:")?;
            if to.is_empty() {
                return Err(Reply::new(501, "5.1.3 Empty recipient"));
            }
            Ok(Command::Rcpt { to })
        }
        "DATA" => Ok(Command::Data),
        "RSET" => Ok(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => Ok(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "STARTTLS" => Ok(Command::StartTls),
        _ => Err(Reply::new(500, "5.5.1 Command unrecognized")),
    }
}

fn parse_mail(rest: &str) -> Result<Command, Reply> {
    let (from, params) = parse_path(rest, "FROM:")?;
    let mut size = None;
    for p in params.split_whitespace() {
        if let Some(v) = p.strip_prefix("SIZE=").or_else(|| p.strip_prefix("size=")) {
            size = Some(v.parse().map_err(|_| Reply::new(501, "5.5.4 Bad SIZE"))?);
        }
    }
    Ok(Command::Mail { from, size })
}

/// `FROM:<a@b> PARAMS` → (`a@b`, `PARAMS`). Lenient about a space after the colon and a
/// missing pair of brackets, since real clients do both; drops RFC 5321 source routes.
fn parse_path<'a>(rest: &'a str, prefix: &str) -> Result<(String, &'a str), Reply> {
    let syntax = || Reply::new(501, format!("5.5.4 Syntax: {prefix}<address>"));
    let head = rest.get(..prefix.len()).ok_or_else(syntax)?;
    if !head.eq_ignore_ascii_case(prefix) {
        return Err(syntax());
    }
    let after = rest[prefix.len()..].trim_start();
    let (path, params) = if let Some(inner) = after.strip_prefix('<') {
        let end = inner.find('>').ok_or_else(syntax)?;
        (&inner[..end], &inner[end + 1..])
    } else {
        after.split_once(' ').unwrap_or((after, ""))
    };
    let path = path.rsplit_once(':').map_or(path, |(_, p)| p).trim();
    if path.len() > 320 || path.contains(char::is_whitespace) {
        return Err(syntax());
    }
    if !path.is_empty() && !path.contains('@') {
        return Err(Reply::new(501, "5.1.3 Bad address syntax"));
    }
    Ok((path.to_string(), params.trim()))
}

/// Decodes DATA: removes the leading dot of dot-stuffed lines and stops at `CRLF.CRLF`.
/// Fed any split of the stream into chunks, it gives the same output, so the server can
/// hand it whatever the socket returned and never buffer more than one chunk.
#[derive(Debug, Default)]
pub struct DotDecoder {
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (also the start of DATA).
    #[default]
    LineStart,
    Normal,
    /// Saw CR in the middle of a line; not yet written.
    Cr,
    /// Saw `.` at the start of a line.
    Dot,
    /// Saw `.` CR at the start of a line.
    DotCr,
    Done,
}

impl DotDecoder {
    /// Consumes bytes from `input`, appending decoded bytes to `out`. Returns how many
    /// bytes were consumed; fewer than `input.len()` only when the end marker was found,
    /// and the rest belongs to the next command.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        for (i, &b) in input.iter().enumerate() {
            self.state = self.step(b, out);
            if self.state == State::Done {
                return i + 1;
            }
        }
        input.len()
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&self, b: u8, out: &mut Vec<u8>) -> State {
        match self.state {
            State::LineStart => match b {
                b'.' => State::Dot,
                _ => Self::normal(b, out),
            },
            State::Normal => Self::normal(b, out),
            State::Cr => match b {
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    State::LineStart
                }
                b'\r' => {
                    out.push(b'\r');
                    State::Cr
                }
                _ => {
                    out.push(b'\r');
                    Self::normal(b, out)
                }
            },
            // The dot is either stuffing (dropped) or the start of the end marker.
            State::Dot => match b {
                b'\r' => State::DotCr,
                // Bare LF after the dot: accept as the end, as lenient servers do.
                b'\n' => State::Done,
                _ => Self::normal(b, out),
            },
            State::DotCr => match b {
                b'\n' => State::Done,
                b'\r' => {
                    out.push(b'\r');
                    State::Cr
                }
                _ => {
                    out.push(b'\r');
                    Self::normal(b, out)
                }
            },
            State::Done => State::Done,
        }
    }

    fn normal(b: u8, out: &mut Vec<u8>) -> State {
        match b {
            b'\r' => State::Cr,
            b'\n' => {
                // Bare LF: keep it and treat it as a line end.
                out.push(b'\n');
                State::LineStart
            }
            _ => {
                out.push(b);
                State::Normal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let ok = |s: &str| parse_command(s.as_bytes());
        let cases: Vec<(&str, Result<Command, u16>)> = vec![
            (
                "EHLO client.example",
                Ok(Command::Ehlo("client.example".into())),
            ),
            ("helo x", Ok(Command::Helo("x".into()))),
            ("EHLO", Err(501)),
            (
                "MAIL FROM:<a@b.cn>",
                Ok(Command::Mail {
                    from: "a@b.cn".into(),
                    size: None,
                }),
            ),
            (
                "mail from: <a@b.cn> SIZE=1000 BODY=8BITMIME",
                Ok(Command::Mail {
                    from: "a@b.cn".into(),
                    size: Some(1000),
                }),
            ),
            (
                "MAIL FROM:<>",
                Ok(Command::Mail {
                    from: String::new(),
                    size: None,
                }),
            ),
            (
                "MAIL FROM:a@b.cn",
                Ok(Command::Mail {
                    from: "a@b.cn".into(),
                    size: None,
                }),
            ),
            ("MAIL FROM:<a@b.cn> SIZE=x", Err(501)),
            ("MAIL TO:<a@b.cn>", Err(501)),
            ("MAIL", Err(501)),
            (
                "RCPT TO:<@relay:c@d.cn>",
                Ok(Command::Rcpt {
                    to: "c@d.cn".into(),
                }),
            ),
            ("RCPT TO:<>", Err(501)),
            ("RCPT TO:<nodomain>", Err(501)),
            ("RCPT TO:<a@b", Err(501)),
            ("DATA", Ok(Command::Data)),
            ("quit", Ok(Command::Quit)),
            ("FOO", Err(500)),
            ("", Err(500)),
        ];
        for (line, want) in cases {
            assert_eq!(ok(line).map_err(|r| r.code), want, "{line}");
        }
        assert_eq!(parse_command(b"\xff\xfe").map_err(|r| r.code), Err(500));
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::new(250, "a\nb").to_bytes(), b"250-a\r\n250 b\r\n");
        assert_eq!(Reply::new(221, "bye").to_bytes(), b"221 bye\r\n");
    }

    #[test]
    fn dot_decoding_is_split_independent() {
        let cases: [(&[u8], &[u8], usize); 6] = [
            (b"a\r\n.\r\nNEXT", b"a\r\n", 6),
            (b"..x\r\n.\r\n", b".x\r\n", 8),
            (b".\r\n", b"", 3),
            (b"a\rb\r\r\n.\r\n", b"a\rb\r\r\n", 9),
            (b"x\n.\n", b"x\n", 4),
            (b".a.\r\n..\r\n.\r\n", b"a.\r\n.\r\n", 12),
        ];
        for (input, want, consumed) in cases {
            for split in 0..=input.len() {
                let mut d = DotDecoder::default();
                let mut out = Vec::new();
                let first = d.feed(&input[..split], &mut out);
                let total = if d.is_done() {
                    first
                } else {
                    split + d.feed(&input[split..], &mut out)
                };
                assert!(d.is_done(), "{input:?} split {split}");
                assert_eq!(out, want, "{input:?} split {split}");
                assert_eq!(total, consumed, "{input:?} split {split}");
            }
        }
        let mut d = DotDecoder::default();
        let mut out = Vec::new();
        assert_eq!(d.feed(b"no end\r\n", &mut out), 8);
        assert!(!d.is_done());
    }
}

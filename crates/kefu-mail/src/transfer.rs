//! Content-Transfer-Encoding, decoded leniently and to bytes.
//!
//! mail-parser decodes transfer encoding and charset in one go and gives text, so the
//! bytes a part really holds are redone here for [`crate::charset`]. It also gives up on
//! a base64 body at the first bad character and hands back the *encoded* text; here
//! everything before the break is kept, which for a mail cut off or garbled half-way
//! is most of it.

/// Decodes a part body by its Content-Transfer-Encoding. `None` for an encoding not
/// handled here (left to mail-parser); otherwise the bytes and whether the body was
/// broken (decoding stopped early).
pub(crate) fn decode(body: &[u8], encoding: Option<&str>) -> Option<(Vec<u8>, bool)> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        Some("base64") => Some(base64(body)),
        Some("quoted-printable") => Some((quoted_printable(body), false)),
        None | Some("7bit" | "8bit" | "binary" | "") => Some((body.to_vec(), false)),
        Some(_) => None,
    }
}

fn sextet(b: u8) -> Option<u32> {
    let v = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Base64 that keeps what decoded before the first character outside the alphabet
/// (whitespace is skipped). `=` ends a group and decoding goes on after it, since some
/// senders concatenate padded chunks. Returns the bytes and whether it stopped early.
pub(crate) fn base64(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut n) = (0u32, 0u8);
    let flush = |acc: u32, n: u8, out: &mut Vec<u8>| {
        // 2 sextets make 1 byte, 3 make 2; a lone sextet makes none.
        let bytes = (acc << (6 * (4 - u32::from(n)))).to_be_bytes();
        let keep = match n {
            2 => 1,
            3 => 2,
            _ => 0,
        };
        out.extend_from_slice(&bytes[1..1 + keep]);
    };
    for &b in input {
        if let Some(v) = sextet(b) {
            acc = (acc << 6) | v;
            n += 1;
            if n == 4 {
                out.extend_from_slice(&acc.to_be_bytes()[1..]);
                (acc, n) = (0, 0);
            }
        } else if b == b'=' {
            flush(acc, n, &mut out);
            (acc, n) = (0, 0);
        } else if !b.is_ascii_whitespace() {
            flush(acc, n, &mut out);
            return (out, true);
        }
    }
    flush(acc, n, &mut out);
    (out, false)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Quoted-printable (RFC 2045 §6.7): `=XX`, soft line breaks (`=` before the line end,
/// trailing blanks allowed); a `=` that is neither stays as it is.
pub(crate) fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        i += 1;
        if b != b'=' {
            out.push(b);
            continue;
        }
        if let (Some(h), Some(l)) = (
            input.get(i).copied().and_then(hex),
            input.get(i + 1).copied().and_then(hex),
        ) {
            out.push(h << 4 | l);
            i += 2;
            continue;
        }
        let blanks = input[i..]
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        match &input[i + blanks..] {
            [b'\r', b'\n', ..] => i += blanks + 2,
            [b'\n', ..] => i += blanks + 1,
            [] => i += blanks,
            _ => out.push(b'='),
        }
    }
    out
}

/// The `Q` encoding of RFC 2047 encoded words: quoted-printable with `_` for space.
pub(crate) fn q_word(input: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = input
        .iter()
        .map(|&b| if b == b'_' { b' ' } else { b })
        .collect();
    quoted_printable(&spaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keeps_the_part_before_a_break() {
        let cases: [(&[u8], &[u8], bool); 7] = [
            (b"5L2g5aW9", "你好".as_bytes(), false),
            (b"5L2g\r\n5aW9\r\n", "你好".as_bytes(), false),
            (b"5L2g5aW9!!!@@@###", "你好".as_bytes(), true),
            (b"5L2g5a!W9", b"\xe4\xbd\xa0\xe5", true),
            (b"YQ==Yg==", b"ab", false),
            (b"YWI", b"ab", false),
            (b"", b"", false),
        ];
        for (input, want, broken) in cases {
            assert_eq!(base64(input), (want.to_vec(), broken), "{input:?}");
        }
    }

    #[test]
    fn quoted_printable_cases() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"caf=C3=A9", "café".as_bytes()),
            (b"long=\r\nline", b"longline"),
            (b"soft= \t\nbreak", b"softbreak"),
            (b"a=zz b", b"a=zz b"),
            (b"end=", b"end"),
            (b"=e4=BD=a0", "你".as_bytes()),
        ];
        for (input, want) in cases {
            assert_eq!(quoted_printable(input), want, "{input:?}");
        }
        assert_eq!(q_word(b"a_b=20c"), b"a b c");
    }

    #[test]
    fn transfer_encodings() {
        assert_eq!(
            decode(b"YQ==", Some(" Base64 ")),
            Some((b"a".to_vec(), false))
        );
        assert_eq!(decode(b"x", Some("8bit")), Some((b"x".to_vec(), false)));
        assert_eq!(decode(b"x", None), Some((b"x".to_vec(), false)));
        assert_eq!(decode(b"x", Some("x-uuencode")), None);
    }
}

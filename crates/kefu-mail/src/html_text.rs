//! HTML → plain text for messages that have no text part.
//!
//! mail-parser has its own converter, but it breaks lines only at `<br>` and `</p>`, so a
//! Gmail or QQ Mail quote header inside a `<div>` ran into the quoted text and quote
//! folding could not find it. Here every block element ends a line, and `<blockquote>`
//! content is prefixed with `> ` so [`crate::quote`] folds it like a plain-text quote.
//! This is a byte scanner, not a DOM: linear time, no allocation per tag beyond the name.

/// Converts HTML to text; never panics, whatever the input.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut quote_depth = 0usize;
    let mut skip_until: Option<&'static str> = None;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                push_text(&mut out, rest, quote_depth);
            }
            break;
        };
        if skip_until.is_none() {
            push_text(&mut out, &rest[..lt], quote_depth);
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        let (tag, after) = match rest.find('>') {
            Some(end) => (&rest[1..end], &rest[end + 1..]),
            None => (&rest[1..], ""),
        };
        rest = after;
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if let Some(until) = skip_until {
            if closing && name == until {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "script" | "style" | "head" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "script" => "script",
                    "style" => "style",
                    "head" => "head",
                    _ => "title",
                });
            }
            "blockquote" => {
                newline(&mut out, quote_depth);
                quote_depth = if closing {
                    quote_depth.saturating_sub(1)
                } else {
                    quote_depth + 1
                };
            }
            "br" => {
                out.push('\n');
                push_quote_prefix(&mut out, quote_depth);
            }
            "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "hr"
            | "table" | "ul" | "ol" | "pre" => newline(&mut out, quote_depth),
            "td" | "th" if closing => out.push('\t'),
            _ => {}
        }
    }
    tidy(&out)
}

fn push_quote_prefix(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("> ");
    }
}

/// Starts a new line unless we are already at the start of one.
fn newline(out: &mut String, depth: usize) {
    let at_line_start = out.is_empty()
        || out.ends_with('\n')
        || (depth > 0 && out.trim_end_matches("> ").ends_with('\n'));
    if !at_line_start {
        out.push('\n');
        push_quote_prefix(out, depth);
    } else if out.ends_with('\n') {
        push_quote_prefix(out, depth);
    }
}

/// Appends text with HTML whitespace collapsed and entities decoded.
fn push_text(out: &mut String, text: &str, depth: usize) {
    let decoded = decode_entities(text);
    let mut last_space = out.ends_with([' ', '\n']) || out.is_empty();
    for c in decoded.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            if out.ends_with('\n') {
                push_quote_prefix(out, depth);
            }
            out.push(if c == '\u{a0}' { ' ' } else { c });
            last_space = false;
        }
    }
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Byte search: slicing the str at a fixed length could split a character.
        let semi = rest.bytes().take(12).position(|b| b == b';');
        let decoded = semi.and_then(|s| entity(&rest[1..s]).map(|c| (c, s)));
        match decoded {
            Some((c, s)) => {
                out.push(c);
                rest = &rest[s + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "nbsp" => '\u{a0}',
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "copy" => '©',
        _ => return None,
    })
}

/// Trims trailing spaces on each line and collapses runs of blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.chars().all(|c| c == '>' || c == ' ') {
            blank += 1;
            if blank > 1 {
                continue;
            }
            out.push('\n');
            continue;
        }
        blank = 0;
        out.push_str(line.trim_start_matches(' '));
        out.push('\n');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts() {
        let cases = [
            ("<p>a</p><p>b</p>", "a\nb"),
            (
                "<div>On Mon, Li wrote:</div><blockquote>old<br>older</blockquote>",
                "On Mon, Li wrote:\n> old\n> older",
            ),
            ("x<script>alert(1)</script>y", "xy"),
            (
                "<head><title>t</title></head><body>hi &amp; bye&nbsp;&#20320;&#x597d;</body>",
                "hi & bye 你好",
            ),
            ("a &unknown; b &", "a &unknown; b &"),
            ("<<<>>>", ""),
            ("<", ""),
            ("<!-- c", ""),
            ("  lots   of\n\n space ", "lots of space"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(html_to_text(input), want, "{input}");
        }
    }
}

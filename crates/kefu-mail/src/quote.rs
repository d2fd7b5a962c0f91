//! Folding away the quoted history below a reply, so agents read only what is new.
//!
//! Mail clients quote in two ways: a header line that introduces the previous message
//! ("On … wrote:", "在 …写道：", Outlook's "-----Original Message-----" or "From:/Sent:"
//! block, QQ/Foxmail's "------------------ 原始邮件 ------------------", "发件人:"), and
//! `>`-prefixed lines. We cut at the first introducing line and drop `>` lines from what
//! is left, which also handles replies interleaved with quotes. The full text stays in
//! `ParsedEmail::text`; this is only a view, so a wrong cut loses nothing.

/// Returns `text` without the quoted history. Falls back to the whole text when folding
/// would leave nothing (a bare forward, or a reply that only quotes).
pub fn visible_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let cut = (0..lines.len())
        .find(|&i| starts_quote(&lines, i))
        .unwrap_or(lines.len());
    let kept: Vec<&str> = lines[..cut]
        .iter()
        .copied()
        .filter(|l| !l.trim_start().starts_with('>'))
        .collect();
    let visible = kept.join("\n").trim().to_string();
    if visible.is_empty() {
        text.trim().to_string()
    } else {
        visible
    }
}

/// Does a quoted message start at line `i`?
fn starts_quote(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    if line.is_empty() {
        return false;
    }
    let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
    is_separator(line)
        || is_wrote_line(line)
        // Gmail wraps a long "On …, Name <a@b>" before "wrote:".
        || (line.starts_with("On ") && next.ends_with("wrote:") && next.len() < 40)
        || is_header_block(lines, i)
}

/// "-----Original Message-----", "------------------ 原始邮件 ------------------",
/// "------------------ Original ------------------", "---------- Forwarded message ---------".
fn is_separator(line: &str) -> bool {
    if !line.starts_with("---") {
        return false;
    }
    let inner = line.trim_matches(|c: char| c == '-' || c.is_whitespace());
    let lower = inner.to_lowercase();
    [
        "original message",
        "original",
        "原始邮件",
        "回复的原邮件",
        "forwarded message",
    ]
    .iter()
    .any(|m| lower == *m)
}

/// "On Tue, 2 Jan 2024 at 10:00, Li <li@x.cn> wrote:" and "在 2024年1月2日 10:00，李 写道：".
fn is_wrote_line(line: &str) -> bool {
    // HTML converted to text may put the quoted text on the same line, so a line that
    // contains the marker counts too, when it also names an address.
    let en = line.starts_with("On ")
        && (line.ends_with("wrote:") || (line.contains(" wrote:") && line.contains('@')));
    let zh = line.starts_with('在')
        && ["写道：", "写道:", "寫道：", "寫道:"]
            .iter()
            .any(|m| line.contains(m));
    en || zh
}

/// Outlook's header block: "From: …" or "发件人: …" followed within three lines by
/// Sent/Date/To/Subject (or their Chinese names). Requiring the second field keeps a
/// sentence that merely begins with "From:" in the reply.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    const FIRST: [&str; 4] = ["from:", "发件人:", "发件人：", "寄件者："];
    const THEN: [&str; 12] = [
        "sent:",
        "date:",
        "to:",
        "subject:",
        "发送时间:",
        "发送时间：",
        "时间:",
        "时间：",
        "收件人:",
        "收件人：",
        "主题:",
        "主题：",
    ];
    let starts = |l: &str, set: &[&str]| {
        let l = l.trim().trim_start_matches('*').to_lowercase();
        set.iter().any(|p| l.starts_with(p))
    };
    starts(lines[i], &FIRST) && lines[i + 1..].iter().take(3).any(|l| starts(l, &THEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_quotes() {
        let cases = [
            (
                "Thanks!\n\nOn Mon, 1 Jan 2024, Li <li@x.cn> wrote:\n> hi",
                "Thanks!",
            ),
            (
                "Thanks!\nOn Mon, 1 Jan 2024 at 10:00, Li Wang <li@example.com>\nwrote:\n> hi",
                "Thanks!",
            ),
            (
                "好的\n\n在 2024年1月1日 10:00，李 <li@x.cn> 写道：\n> 你好",
                "好的",
            ),
            (
                "ok\n-----Original Message-----\nFrom: a\nSent: b\n\nold",
                "ok",
            ),
            (
                "收到\n\n------------------ 原始邮件 ------------------\n发件人: a",
                "收到",
            ),
            (
                "收到\n发件人: 客服 <s@x.cn>\n发送时间: 2024年1月1日\n主题: 退款\n旧内容",
                "收到",
            ),
            (
                "Yes\n\nFrom: A\nSent: Monday\nTo: B\nSubject: x\n\nold",
                "Yes",
            ),
            ("a\n> q1\nb\n> q2", "a\nb"),
            (
                "From: my colleague I learned this.\nThanks",
                "From: my colleague I learned this.\nThanks",
            ),
            ("> only quoted", "> only quoted"),
            ("", ""),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(visible_text(input), want, "input: {input:?}");
        }
    }
}

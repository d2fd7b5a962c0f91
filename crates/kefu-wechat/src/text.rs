//! Readable labels shared by the sources, so that an image reads `[图片]`
//! whether it came from 微信客服 or the session archive.

use crate::model::{MediaKind, MediaRef, SessionChange, SessionChangeKind};

/// `[图片]`, `[语音 5秒]`, `[视频 12秒]`, `[文件] 资料.docx`.
pub(crate) fn media_label(m: &MediaRef) -> String {
    let label = match m.kind {
        Some(MediaKind::Image) => "图片",
        Some(MediaKind::Voice) => "语音",
        Some(MediaKind::Video) => "视频",
        Some(MediaKind::Emotion) => "表情",
        Some(MediaKind::Thumb) => "缩略图",
        Some(MediaKind::File) | None => "文件",
    };
    let timed = matches!(m.kind, Some(MediaKind::Voice | MediaKind::Video));
    match (m.duration_secs, &m.filename) {
        (Some(d), _) if timed => format!("[{label} {d}秒]"),
        (_, Some(name)) if !name.trim().is_empty() => format!("[{label}] {name}"),
        _ => format!("[{label}]"),
    }
}

/// `[会话接入] zhangsan`, `[会话转接] a → b`, `[会话结束]`, `[会话重新接入]`.
pub(crate) fn session_label(c: &SessionChange) -> String {
    let old = c.old_servicer.as_deref().unwrap_or("?");
    let new = c.new_servicer.as_deref().unwrap_or("?");
    match c.kind {
        SessionChangeKind::Picked => format!("[会话接入] {new}"),
        SessionChangeKind::Transferred => format!("[会话转接] {old} → {new}"),
        SessionChangeKind::Ended => "[会话结束]".to_string(),
        SessionChangeKind::Reopened => format!("[会话重新接入] {new}"),
        SessionChangeKind::Other => "[会话状态变更]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_labels() {
        let m = |kind, d: Option<u64>, f: Option<&str>| MediaRef {
            kind: Some(kind),
            duration_secs: d,
            filename: f.map(str::to_string),
            ..MediaRef::default()
        };
        let cases = [
            (m(MediaKind::Image, None, None), "[图片]"),
            (m(MediaKind::Voice, Some(5), None), "[语音 5秒]"),
            (m(MediaKind::Video, Some(12), None), "[视频 12秒]"),
            (
                m(MediaKind::File, None, Some("资料.docx")),
                "[文件] 资料.docx",
            ),
            (m(MediaKind::Image, Some(3), None), "[图片]"),
            (m(MediaKind::Emotion, None, None), "[表情]"),
        ];
        for (input, want) in cases {
            assert_eq!(media_label(&input), want);
        }
    }
}

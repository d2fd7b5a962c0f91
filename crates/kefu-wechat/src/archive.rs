//! 会话内容存档 (WeCom session archive), decrypted messages, one per line.
//!
//! The archive has no notion of "customer": each message has a sender and a
//! recipient list. The customer is the party whose id looks external
//! (`wm…`/`wo…`); the internal side is the agent and also the account.

use crate::kf;
use crate::model::*;
use crate::value::*;
use serde_json::Value;

/// External contact ids start with `wm` (or `wo` for older ones).
pub fn is_external_id(id: &str) -> bool {
    id.starts_with("wm") || id.starts_with("wo")
}

pub(crate) fn convert(v: Value) -> Vec<Result<Record, String>> {
    vec![message(v).map(Record::Message)]
}

pub(crate) fn message(raw: Value) -> Result<MessageRecord, String> {
    if !raw.is_object() {
        return Err("expected a JSON object".into());
    }
    let msgid = str_of(&raw, "msgid").ok_or("missing msgid")?;
    let action = str_of(&raw, "action").unwrap_or_else(|| "send".into());
    if action == "switch" {
        return switch(msgid, raw);
    }
    let sent_at = int_of(&raw, "msgtime").ok_or("missing or invalid msgtime")?;
    let msgtype = str_of(&raw, "msgtype").unwrap_or_default();
    let from = str_of(&raw, "from").unwrap_or_default();
    let tolist = strs_of(&raw, "tolist");
    let (customer, agent, direction) = parties(&from, &tolist);
    let group = str_of(&raw, "roomid");
    let payload = raw
        .get(payload_key(&msgtype))
        .cloned()
        .unwrap_or(Value::Null);
    let mut rec = MessageRecord {
        source: MessageSource::Archive,
        msgid,
        customer: customer.map(|c| Identity::new(IdentityKind::WechatExternalUserid, c)),
        account: agent.clone(),
        agent,
        direction,
        sent_at,
        event: None,
        text: String::new(),
        media: Vec::new(),
        recall_of: None,
        session: None,
        group,
        msgtype,
        raw: Value::Null,
    };
    rec.text = content_text(&mut rec, &payload);
    if action == "recall" || rec.msgtype == "revoke" {
        rec.recall_of = str_of(&payload, "pre_msgid");
        rec.direction = Direction::System;
    }
    if matches!(rec.msgtype.as_str(), "agree" | "disagree") {
        // A consent record, not something the customer said: kept (it is the
        // proof of consent to archiving) but as a system item.
        rec.direction = Direction::System;
    }
    rec.raw = raw;
    Ok(rec)
}

/// `{msgid, action:"switch", time, user}`: a member switched the enterprise
/// they are logged into. No customer; the importer will usually skip it.
fn switch(msgid: String, raw: Value) -> Result<MessageRecord, String> {
    let sent_at = int_of(&raw, "time").ok_or("missing or invalid time")?;
    let user = str_of(&raw, "user");
    Ok(MessageRecord {
        source: MessageSource::Archive,
        msgid,
        customer: None,
        account: user.clone(),
        agent: user.clone(),
        direction: Direction::System,
        sent_at,
        msgtype: "switch".into(),
        event: Some("switch".into()),
        text: labelled("[切换企业]", [user.as_deref()]),
        media: Vec::new(),
        recall_of: None,
        session: None,
        group: None,
        raw,
    })
}

/// (customer, agent, direction). With no external party (an internal chat)
/// there is no customer; in a group, an agent's message has no single one.
fn parties(from: &str, tolist: &[String]) -> (Option<String>, Option<String>, Direction) {
    let internal_to = tolist.iter().find(|t| !is_external_id(t)).cloned();
    let external_to = tolist.iter().find(|t| is_external_id(t)).cloned();
    if is_external_id(from) {
        (Some(from.to_string()), internal_to, Direction::Incoming)
    } else {
        let agent = (!from.is_empty()).then(|| from.to_string());
        (external_to, agent, Direction::Outgoing)
    }
}

/// Where a type's payload sits, for the few whose key is not the msgtype.
fn payload_key(msgtype: &str) -> &str {
    match msgtype {
        "docmsg" => "doc",
        "markdown" | "news" => "info",
        "external_redpacket" => "redpacket",
        other => other,
    }
}

fn content_text(rec: &mut MessageRecord, p: &Value) -> String {
    let f = |k: &str| field(p, k);
    match rec.msgtype.as_str() {
        "image" | "voice" | "video" | "emotion" | "file" => {
            let m = media_ref(&rec.msgtype, p);
            let text = crate::text::media_label(&m);
            rec.media.push(m);
            text
        }
        "revoke" => "[撤回消息]".to_string(),
        "agree" => "[同意存档]".to_string(),
        "disagree" => "[拒绝存档]".to_string(),
        "card" => labelled("[名片]", [f("corpname"), f("userid")]),
        "location" => labelled("[位置]", [f("title"), f("address")]),
        "link" => labelled("[链接]", [f("title"), f("link_url")]),
        "weapp" => labelled("[小程序]", [f("title"), f("displayname")]),
        "chatrecord" => chatrecord_text(p),
        "mixed" => mixed_text(p),
        "meeting" => labelled("[会议]", [f("topic")]),
        "docmsg" => labelled("[在线文档]", [f("title"), f("link_url")]),
        "markdown" => f("content").unwrap_or("[Markdown]").to_string(),
        "news" => news_text(p),
        "redpacket" | "external_redpacket" => labelled("[红包]", [f("wish")]),
        "calendar" => labelled("[日程]", [f("title"), f("place")]),
        "collect" => labelled("[填表]", [f("title"), f("room_name")]),
        "sphfeed" => labelled("[视频号]", [f("sph_name"), f("feed_desc")]),
        "meeting_voice_call" => "[音频存档]".to_string(),
        "voip_doc_share" => labelled("[共享文档]", [f("filename")]),
        // Same shapes as 微信客服 for text and the rest.
        other => kf::content_text(other, p, &mut rec.media),
    }
}

fn media_ref(msgtype: &str, p: &Value) -> MediaRef {
    let kind = match msgtype {
        "image" => MediaKind::Image,
        "voice" => MediaKind::Voice,
        "video" => MediaKind::Video,
        "emotion" => MediaKind::Emotion,
        _ => MediaKind::File,
    };
    let size = int_of(p, "filesize")
        .or_else(|| int_of(p, "voice_size"))
        .or_else(|| int_of(p, "imagesize"));
    MediaRef {
        kind: Some(kind),
        media_id: None,
        sdkfileid: str_of(p, "sdkfileid"),
        md5sum: str_of(p, "md5sum"),
        filename: str_of(p, "filename"),
        size: size.and_then(|s| u64::try_from(s).ok()),
        duration_secs: int_of(p, "play_length").and_then(|s| u64::try_from(s).ok()),
    }
}

/// Items carry their content as a JSON string of the same message shapes.
fn chatrecord_text(p: &Value) -> String {
    let mut lines = vec![labelled("[聊天记录]", [field(p, "title")])];
    for item in array_of(p, "item") {
        lines.push(inner_item_text(item));
    }
    lines.join("\n")
}

fn mixed_text(p: &Value) -> String {
    array_of(p, "item")
        .iter()
        .map(inner_item_text)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An item `{type, content}` where content is a JSON string; `type` may be
/// `ChatRecordText` or `text`.
fn inner_item_text(item: &Value) -> String {
    let kind = field(item, "type").unwrap_or_default();
    let kind = kind
        .strip_prefix("ChatRecord")
        .unwrap_or(kind)
        .to_ascii_lowercase();
    let content: Value = field(item, "content")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let mut tmp = MessageRecord {
        source: MessageSource::Archive,
        msgid: String::new(),
        customer: None,
        account: None,
        agent: None,
        direction: Direction::System,
        sent_at: 0,
        msgtype: kind,
        event: None,
        text: String::new(),
        media: Vec::new(),
        recall_of: None,
        session: None,
        group: None,
        raw: Value::Null,
    };
    content_text(&mut tmp, &content)
}

fn news_text(p: &Value) -> String {
    let titles: Vec<&str> = array_of(p, "item")
        .iter()
        .filter_map(|i| field(i, "title"))
        .collect();
    labelled("[图文]", titles.into_iter().map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(msgtype: &str, key: &str, payload: Value) -> MessageRecord {
        message(
            json!({"msgid": "a1", "action": "send", "from": "kens", "tolist": ["wmX"], "roomid": "",
                       "msgtime": 1603875608214i64, "msgtype": msgtype, key: payload}),
        )
        .expect(msgtype)
    }

    #[test]
    fn readable_text_per_type() {
        let cases = [
            ("text", "text", json!({"content": "你好"}), "你好"),
            (
                "image",
                "image",
                json!({"md5sum": "m", "filesize": 3, "sdkfileid": "s"}),
                "[图片]",
            ),
            (
                "voice",
                "voice",
                json!({"md5sum": "m", "voice_size": 3, "play_length": 5, "sdkfileid": "s"}),
                "[语音 5秒]",
            ),
            (
                "video",
                "video",
                json!({"md5sum": "m", "filesize": 3, "play_length": 12, "sdkfileid": "s"}),
                "[视频 12秒]",
            ),
            (
                "emotion",
                "emotion",
                json!({"type": 1, "md5sum": "m", "sdkfileid": "s"}),
                "[表情]",
            ),
            (
                "file",
                "file",
                json!({"md5sum": "m", "filename": "资料.docx", "fileext": "docx", "sdkfileid": "s"}),
                "[文件] 资料.docx",
            ),
            (
                "agree",
                "agree",
                json!({"userid": "wmX", "agree_time": 1}),
                "[同意存档]",
            ),
            (
                "disagree",
                "disagree",
                json!({"userid": "wmX", "disagree_time": 1}),
                "[拒绝存档]",
            ),
            (
                "card",
                "card",
                json!({"corpname": "腾讯", "userid": "u"}),
                "[名片] 腾讯 u",
            ),
            (
                "location",
                "location",
                json!({"title": "公司", "address": "深圳"}),
                "[位置] 公司 深圳",
            ),
            (
                "link",
                "link",
                json!({"title": "文章", "link_url": "https://x"}),
                "[链接] 文章 https://x",
            ),
            (
                "weapp",
                "weapp",
                json!({"title": "小店", "displayname": "商城"}),
                "[小程序] 小店 商城",
            ),
            (
                "meeting",
                "meeting",
                json!({"topic": "周会"}),
                "[会议] 周会",
            ),
            (
                "docmsg",
                "doc",
                json!({"title": "文档", "link_url": "https://d"}),
                "[在线文档] 文档 https://d",
            ),
            ("markdown", "info", json!({"content": "**粗**"}), "**粗**"),
            (
                "news",
                "info",
                json!({"item": [{"title": "新闻"}]}),
                "[图文] 新闻",
            ),
            (
                "external_redpacket",
                "redpacket",
                json!({"wish": "恭喜"}),
                "[红包] 恭喜",
            ),
            (
                "calendar",
                "calendar",
                json!({"title": "面谈"}),
                "[日程] 面谈",
            ),
            (
                "sphfeed",
                "sphfeed",
                json!({"sph_name": "号", "feed_desc": "视频"}),
                "[视频号] 号 视频",
            ),
            (
                "meeting_voice_call",
                "meeting_voice_call",
                json!({}),
                "[音频存档]",
            ),
            (
                "chatrecord",
                "chatrecord",
                json!({"title": "群聊", "item": [{"type": "ChatRecordText", "msgtime": 1, "content": "{\"content\":\"早\"}"}]}),
                "[聊天记录] 群聊\n早",
            ),
            (
                "mixed",
                "mixed",
                json!({"item": [{"type": "text", "content": "{\"content\":\"看图\"}"}, {"type": "image", "content": "{\"md5sum\":\"x\"}"}]}),
                "看图\n[图片]",
            ),
            ("brand_new", "brand_new", json!({}), "[brand_new]"),
        ];
        for (t, key, p, want) in cases {
            assert_eq!(msg(t, key, p).text, want, "{t}");
        }
    }

    #[test]
    fn parties_table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                "kens",
                s(&["wmA"]),
                (Some("wmA"), Some("kens"), Direction::Outgoing),
            ),
            (
                "wmA",
                s(&["kens"]),
                (Some("wmA"), Some("kens"), Direction::Incoming),
            ),
            (
                "woB",
                s(&["kens"]),
                (Some("woB"), Some("kens"), Direction::Incoming),
            ),
            (
                "kens",
                s(&["lisi"]),
                (None, Some("kens"), Direction::Outgoing),
            ),
        ];
        for (from, to, (c, a, d)) in cases {
            let got = parties(from, &to);
            assert_eq!(
                (got.0.as_deref(), got.1.as_deref(), got.2),
                (c, a, d),
                "{from}"
            );
        }
    }

    #[test]
    fn recall_switch_and_group() {
        let m = message(json!({"msgid": "r", "action": "recall", "from": "kens", "tolist": ["wmX"], "roomid": "",
                               "msgtime": 5, "msgtype": "revoke", "revoke": {"pre_msgid": "a1"}}))
        .expect("recall");
        assert_eq!(m.recall_of.as_deref(), Some("a1"));
        assert_eq!(m.group, None);
        let m = message(json!({"msgid": "s", "action": "switch", "time": 7, "user": "kens"}))
            .expect("switch");
        assert_eq!(
            (m.sent_at, m.customer.is_none(), m.text.as_str()),
            (7, true, "[切换企业] kens")
        );
        let m = message(json!({"msgid": "g", "action": "send", "from": "wmX", "tolist": ["kens", "wmY"],
                               "roomid": "wrG", "msgtime": 9, "msgtype": "text", "text": {"content": "hi"}}))
        .expect("group");
        assert_eq!(m.group.as_deref(), Some("wrG"));
    }
}

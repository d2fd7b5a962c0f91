//! 公众号 (Official Account): customer-service records, user info and tags.

use crate::model::*;
use crate::value::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A `getmsglist` response (`recordlist`) or one record.
pub(crate) fn convert_records(v: Value) -> Vec<Result<Record, String>> {
    match v.get("recordlist").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                record(r.clone())
                    .map(Record::Message)
                    .map_err(|e| format!("recordlist[{i}]: {e}"))
            })
            .collect(),
        None if v.get("openid").is_none() && v.get("errcode").is_some() => Vec::new(),
        None => vec![record(v).map(Record::Message)],
    }
}

fn record(raw: Value) -> Result<MessageRecord, String> {
    let openid = str_of(&raw, "openid").ok_or("missing openid")?;
    let secs = int_of(&raw, "time").ok_or("missing or invalid time")?;
    let sent_at = secs_to_ms(secs).ok_or("time out of range")?;
    let opercode = int_of(&raw, "opercode").unwrap_or(0);
    let worker = str_of(&raw, "worker");
    let text = str_of(&raw, "text").unwrap_or_default();
    let (direction, session) = opercode_meaning(opercode, worker.as_deref());
    Ok(MessageRecord {
        source: MessageSource::Oa,
        msgid: synthetic_msgid(&openid, secs, opercode, worker.as_deref(), &text),
        customer: Some(Identity::new(IdentityKind::WechatOpenid, openid)),
        // `worker` is "name@account": the part after @ is the OA's account.
        account: worker
            .as_deref()
            .and_then(|w| w.split_once('@'))
            .map(|(_, a)| a.to_string()),
        agent: worker,
        direction,
        sent_at,
        msgtype: "text".into(),
        event: (direction == Direction::System).then(|| format!("opercode_{opercode}")),
        text: readable(&text, opercode),
        media: Vec::new(),
        recall_of: None,
        session,
        group: None,
        raw,
    })
}

/// 2002 agent sent, 2003 customer sent. ◐ The session codes (1000–1005) come
/// from the older `getrecord` API; 1004 (closed) lets the sessionizer split.
fn opercode_meaning(code: i64, worker: Option<&str>) -> (Direction, Option<SessionChange>) {
    let change = |kind| {
        Some(SessionChange {
            kind,
            old_servicer: None,
            new_servicer: worker.map(str::to_string),
        })
    };
    match code {
        2002 => (Direction::Outgoing, None),
        2001 | 2003 => (Direction::Incoming, None),
        1001 | 1002 | 1005 => (Direction::System, change(SessionChangeKind::Picked)),
        1003 => (Direction::System, change(SessionChangeKind::Transferred)),
        1004 => (Direction::System, change(SessionChangeKind::Ended)),
        _ => (Direction::System, None),
    }
}

/// Media appear only as the literal texts `[image]`, `[voice]`, `[video]`.
fn readable(text: &str, opercode: i64) -> String {
    match text.trim() {
        "[image]" => "[图片]".into(),
        "[voice]" => "[语音]".into(),
        "[video]" => "[视频]".into(),
        "" if opercode != 2002 && opercode != 2003 => format!("[客服会话事件 {opercode}]"),
        _ => text.to_string(),
    }
}

/// OA records have no id: hash the fields so a second import of the same
/// file finds the same keys. Two identical texts in the same second from the
/// same person collapse into one, an accepted loss.
fn synthetic_msgid(
    openid: &str,
    secs: i64,
    opercode: i64,
    worker: Option<&str>,
    text: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        openid,
        &secs.to_string(),
        &opercode.to_string(),
        worker.unwrap_or(""),
        text,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("oa:{}", hex::encode(&h.finalize()[..12]))
}

/// `user/info`, or `user/info/batchget` (`user_info_list`).
pub(crate) fn convert_users(v: Value) -> Vec<Result<Record, String>> {
    match v.get("user_info_list").and_then(Value::as_array) {
        Some(list) => list.iter().map(user).collect(),
        None if v.get("openid").is_none() && v.get("errcode").is_some() => Vec::new(),
        None => vec![user(&v)],
    }
}

const USER_FIELDS: &[&str] = &[
    "openid",
    "unionid",
    "nickname",
    "headimgurl",
    "sex",
    "remark",
    "subscribe_time",
    "tagid_list",
];

fn user(u: &Value) -> Result<Record, String> {
    let openid = str_of(u, "openid").ok_or("missing openid")?;
    let mut rec = ContactRecord::new(ContactSource::OaUser);
    rec.add_identity(IdentityKind::WechatOpenid, &openid);
    if let Some(id) = str_of(u, "unionid") {
        rec.add_identity(IdentityKind::WechatUnionid, &id);
    }
    rec.nickname = str_of(u, "nickname");
    rec.avatar_url = str_of(u, "headimgurl");
    rec.gender = int_of(u, "sex").map(Gender::from_code);
    rec.remark = str_of(u, "remark");
    rec.added_at = int_of(u, "subscribe_time").and_then(secs_to_ms);
    for id in strs_of(u, "tagid_list") {
        rec.add_tag(TagRef {
            kind: TagKind::OfficialAccount,
            group: None,
            name: None,
            id: Some(id),
        });
    }
    if let Some(obj) = u.as_object() {
        for (k, val) in obj
            .iter()
            .filter(|(k, _)| !USER_FIELDS.contains(&k.as_str()))
        {
            rec.attributes.insert(k.clone(), val.clone());
        }
    }
    Ok(Record::Contact(rec))
}

/// `tags/get` → one group holding every OA tag.
pub(crate) fn convert_tags(v: Value) -> Vec<Result<Record, String>> {
    let Some(list) = v.get("tags").and_then(Value::as_array) else {
        return vec![Err("missing tags list".into())];
    };
    let tags = list
        .iter()
        .filter_map(|t| {
            Some(TagDef {
                id: str_of(t, "id")?,
                name: str_of(t, "name")?,
                created_at: None,
                order: None,
                deleted: false,
                count: int_of(t, "count"),
            })
        })
        .collect();
    vec![Ok(Record::TagGroup(TagGroupRecord {
        kind: TagKind::OfficialAccount,
        group_id: None,
        name: None,
        created_at: None,
        order: None,
        deleted: false,
        tags,
    }))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_table() {
        let cases = [
            (2003, "你好", Direction::Incoming, "你好"),
            (2002, "您好，请问", Direction::Outgoing, "您好，请问"),
            (2003, "[image]", Direction::Incoming, "[图片]"),
            (2003, "[voice]", Direction::Incoming, "[语音]"),
            (1004, "", Direction::System, "[客服会话事件 1004]"),
        ];
        for (code, text, dir, want) in cases {
            let r = record(json!({"openid": "oX", "opercode": code, "text": text, "time": 100, "worker": "kf2001@gh_abc"}))
                .expect("record");
            assert_eq!((r.direction, r.text.as_str()), (dir, want), "{code}");
            assert_eq!(r.account.as_deref(), Some("gh_abc"));
            assert!(r.msgid.starts_with("oa:"));
            assert_eq!(r.sent_at, 100_000);
        }
    }

    #[test]
    fn synthetic_ids_are_stable_and_distinct() {
        let a = synthetic_msgid("o", 1, 2003, None, "x");
        assert_eq!(a, synthetic_msgid("o", 1, 2003, None, "x"));
        assert_ne!(a, synthetic_msgid("o", 1, 2003, None, "y"));
        assert_ne!(a, synthetic_msgid("o", 2, 2003, None, "x"));
    }

    #[test]
    fn users_and_tags() {
        let out = convert_users(json!({"user_info_list": [
            {"subscribe": 1, "openid": "o1", "unionid": "u1", "subscribe_time": 1382694957, "remark": "老客户",
             "tagid_list": [128, 2], "subscribe_scene": "ADD_SCENE_QR_CODE"},
            {"subscribe": 0}
        ]}));
        assert_eq!(out.len(), 2);
        let Ok(Record::Contact(c)) = &out[0] else {
            panic!("contact")
        };
        assert_eq!(c.identities.len(), 2);
        assert_eq!(c.tags.len(), 2);
        assert_eq!(c.added_at, Some(1_382_694_957_000));
        assert!(c.attributes.contains_key("subscribe_scene"));
        assert!(out[1].is_err());
        let tags = convert_tags(
            json!({"tags": [{"id": 2, "name": "星标组", "count": 0}, {"id": 127, "name": "广东", "count": 5}]}),
        );
        let Ok(Record::TagGroup(g)) = &tags[0] else {
            panic!("group")
        };
        assert_eq!(g.tags[1].id, "127");
        assert_eq!(g.tags[1].count, Some(5));
    }
}

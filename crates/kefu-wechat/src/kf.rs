//! 微信客服 (WeCom customer service): `kf/sync_msg` pages and items, and
//! `kf/customer/batchget` customers.
//!
//! Start at [`convert_sync`]: it accepts a whole response (`msg_list`) or a
//! bare item, so NDJSON of items and saved pages go through the same code.

use crate::model::*;
use crate::value::*;
use serde_json::Value;

/// A sync page or a single message item → messages (one result per item).
pub(crate) fn convert_sync(v: Value) -> Vec<Result<Record, String>> {
    if let Some(list) = v.get("msg_list").and_then(Value::as_array) {
        return list
            .iter()
            .enumerate()
            .map(|(i, item)| {
                message(item.clone())
                    .map(Record::Message)
                    .map_err(|e| format!("msg_list[{i}]: {e}"))
            })
            .collect();
    }
    if v.get("errcode").is_some() && v.get("msgid").is_none() {
        // An error response or an empty page: nothing to import.
        return Vec::new();
    }
    vec![message(v).map(Record::Message)]
}

/// One `msg_list` item.
pub(crate) fn message(raw: Value) -> Result<MessageRecord, String> {
    if !raw.is_object() {
        return Err("expected a JSON object".into());
    }
    let msgid = str_of(&raw, "msgid").ok_or("missing msgid")?;
    let secs = int_of(&raw, "send_time").ok_or("missing or invalid send_time")?;
    let sent_at = secs_to_ms(secs).ok_or("send_time out of range")?;
    let msgtype = str_of(&raw, "msgtype").unwrap_or_default();
    let payload = raw.get(&msgtype).cloned().unwrap_or(Value::Null);
    let event = (msgtype == "event").then_some(&payload);

    // Events may carry the ids inside `event` instead of at the top.
    let pick = |key: &str| str_of(&raw, key).or_else(|| event.and_then(|e| str_of(e, key)));
    let customer =
        pick("external_userid").map(|id| Identity::new(IdentityKind::WechatExternalUserid, id));
    let direction = match (int_of(&raw, "origin"), event.is_some()) {
        (_, true) | (Some(4), _) => Direction::System,
        (Some(5), _) => Direction::Outgoing,
        (Some(3), _) => Direction::Incoming,
        _ => Direction::System,
    };
    let mut rec = MessageRecord {
        source: MessageSource::Kf,
        msgid,
        customer,
        account: pick("open_kfid"),
        agent: pick("servicer_userid"),
        direction,
        sent_at,
        event: event.and_then(|e| str_of(e, "event_type")),
        text: String::new(),
        media: Vec::new(),
        recall_of: None,
        session: None,
        group: None,
        msgtype,
        raw: Value::Null,
    };
    if let Some(e) = event {
        apply_event(&mut rec, e);
    } else {
        rec.text = content_text(&rec.msgtype, &payload, &mut rec.media);
    }
    rec.raw = raw;
    Ok(rec)
}

/// Readable text of a non-event payload; collects its media references.
pub(crate) fn content_text(msgtype: &str, p: &Value, media: &mut Vec<MediaRef>) -> String {
    let f = |k: &str| field(p, k);
    match msgtype {
        "text" => f("content").unwrap_or_default().to_string(),
        "image" | "voice" | "video" | "file" => {
            let m = media_ref(msgtype, p);
            let text = crate::text::media_label(&m);
            media.push(m);
            text
        }
        "location" => labelled("[位置]", [f("name"), f("address")]),
        "link" => labelled("[链接]", [f("title"), f("url")]),
        "business_card" => labelled("[名片]", [f("userid")]),
        "miniprogram" => {
            if let Some(thumb) = str_of(p, "thumb_media_id") {
                media.push(MediaRef {
                    kind: Some(MediaKind::Thumb),
                    media_id: Some(thumb),
                    ..MediaRef::default()
                });
            }
            labelled("[小程序]", [f("title")])
        }
        "msgmenu" => menu_text(p),
        "merged_msg" => merged_text(p),
        "channels_shop_product" => labelled("[视频号商品]", [f("title"), f("sales_price")]),
        "channels_shop_order" => labelled(
            "[视频号订单]",
            [f("product_titles"), f("order_id"), f("price_wording")],
        ),
        "channels" => labelled("[视频号]", [f("nickname"), f("title")]),
        other => format!("[{other}]"),
    }
}

fn media_ref(msgtype: &str, p: &Value) -> MediaRef {
    let kind = match msgtype {
        "image" => MediaKind::Image,
        "voice" => MediaKind::Voice,
        "video" => MediaKind::Video,
        _ => MediaKind::File,
    };
    MediaRef {
        kind: Some(kind),
        media_id: str_of(p, "media_id"),
        filename: str_of(p, "filename").or_else(|| str_of(p, "file_name")),
        size: int_of(p, "filesize").and_then(|s| u64::try_from(s).ok()),
        duration_secs: int_of(p, "play_length")
            .or_else(|| int_of(p, "duration"))
            .and_then(|s| u64::try_from(s).ok()),
        ..MediaRef::default()
    }
}

fn menu_text(p: &Value) -> String {
    let mut lines = vec![labelled("[菜单]", [field(p, "head_content")])];
    for item in array_of(p, "list") {
        let kind = field(item, "type").unwrap_or_default();
        let body = item.get(kind).unwrap_or(&Value::Null);
        let line = field(body, "content")
            .or_else(|| field(body, "url"))
            .unwrap_or_default();
        if !line.is_empty() {
            lines.push(format!("- {line}"));
        }
    }
    if let Some(tail) = field(p, "tail_content").filter(|t| !t.trim().is_empty()) {
        lines.push(tail.to_string());
    }
    lines.join("\n")
}

/// `merged_msg` items keep their content as a JSON string; show its `content`
/// when it has one, the item type label otherwise.
fn merged_text(p: &Value) -> String {
    let mut lines = vec![labelled("[合并消息]", [field(p, "title")])];
    for item in array_of(p, "item") {
        let sender = field(item, "sender_name").unwrap_or("");
        let inner: Option<Value> =
            field(item, "msg_content").and_then(|s| serde_json::from_str(s).ok());
        let body = inner
            .as_ref()
            .and_then(|v| {
                let t = str_of(v, "msgtype")?;
                Some(content_text(
                    &t,
                    v.get(&t).unwrap_or(&Value::Null),
                    &mut Vec::new(),
                ))
            })
            .or_else(|| field(item, "msg_content").map(str::to_string))
            .unwrap_or_default();
        lines.push(format!("{sender}: {body}"));
    }
    lines.join("\n")
}

fn apply_event(rec: &mut MessageRecord, e: &Value) {
    let kind = field(e, "event_type").unwrap_or_default();
    rec.text = match kind {
        "enter_session" => labelled("[进入会话]", [field(e, "scene"), field(e, "scene_param")]),
        "session_status_change" => {
            let change = SessionChange {
                kind: SessionChangeKind::from_code(int_of(e, "change_type").unwrap_or(0)),
                old_servicer: str_of(e, "old_servicer_userid"),
                new_servicer: str_of(e, "new_servicer_userid"),
            };
            let text = crate::text::session_label(&change);
            if rec.agent.is_none() {
                rec.agent = change
                    .new_servicer
                    .clone()
                    .or_else(|| change.old_servicer.clone());
            }
            rec.session = Some(change);
            text
        }
        "msg_send_fail" => labelled("[消息发送失败]", [field(e, "fail_msgid")]),
        "servicer_status_change" => {
            let status = int_of(e, "status").map(|s| if s == 1 { "接待中" } else { "停止接待" });
            labelled("[接待人员状态变更]", [field(e, "servicer_userid"), status])
        }
        "user_recall_msg" => {
            rec.recall_of = str_of(e, "recall_msgid");
            "[客户撤回了一条消息]".to_string()
        }
        "servicer_recall_msg" => {
            rec.recall_of = str_of(e, "recall_msgid");
            "[客服撤回了一条消息]".to_string()
        }
        other => format!("[事件 {other}]"),
    };
}

/// A `batchget` response (`customer_list`) or one customer object.
pub(crate) fn convert_customers(v: Value) -> Vec<Result<Record, String>> {
    match v.get("customer_list").and_then(Value::as_array) {
        Some(list) => list.iter().map(customer).collect(),
        None if v.get("errcode").is_some() && v.get("external_userid").is_none() => Vec::new(),
        None => vec![customer(&v)],
    }
}

fn customer(c: &Value) -> Result<Record, String> {
    let id = str_of(c, "external_userid").ok_or("missing external_userid")?;
    let mut rec = ContactRecord::new(ContactSource::KfCustomer);
    rec.add_identity(IdentityKind::WechatExternalUserid, &id);
    if let Some(u) = str_of(c, "unionid") {
        rec.add_identity(IdentityKind::WechatUnionid, &u);
    }
    rec.nickname = str_of(c, "nickname");
    rec.avatar_url = str_of(c, "avatar");
    rec.gender = int_of(c, "gender").map(Gender::from_code);
    if let Some(obj) = c.as_object() {
        for (k, val) in obj {
            if !matches!(
                k.as_str(),
                "external_userid" | "unionid" | "nickname" | "avatar" | "gender"
            ) {
                rec.attributes.insert(k.clone(), val.clone());
            }
        }
    }
    Ok(Record::Contact(rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(msgtype: &str, payload: Value) -> Value {
        json!({"msgid": "m1", "open_kfid": "wk1", "external_userid": "wm1", "send_time": 1615478585,
               "origin": 3, "msgtype": msgtype, msgtype: payload})
    }

    #[test]
    fn readable_text_per_type() {
        let cases = [
            (
                "text",
                json!({"content": "订单什么时候发货？", "menu_id": "101"}),
                "订单什么时候发货？",
            ),
            ("image", json!({"media_id": "MI"}), "[图片]"),
            ("voice", json!({"media_id": "MV"}), "[语音]"),
            ("video", json!({"media_id": "MV"}), "[视频]"),
            ("file", json!({"media_id": "MF"}), "[文件]"),
            (
                "location",
                json!({"name": "故宫", "address": "北京市东城区"}),
                "[位置] 故宫 北京市东城区",
            ),
            (
                "link",
                json!({"title": "说明", "url": "https://a.cn"}),
                "[链接] 说明 https://a.cn",
            ),
            (
                "business_card",
                json!({"userid": "zhangsan"}),
                "[名片] zhangsan",
            ),
            (
                "miniprogram",
                json!({"title": "商城", "thumb_media_id": "T"}),
                "[小程序] 商城",
            ),
            (
                "msgmenu",
                json!({"head_content": "请选择", "list": [{"type": "click", "click": {"id": "1", "content": "满意"}}], "tail_content": "谢谢"}),
                "[菜单] 请选择\n- 满意\n谢谢",
            ),
            (
                "merged_msg",
                json!({"title": "聊天记录", "item": [{"send_time": 1, "msgtype": 0, "sender_name": "张三", "msg_content": "{\"msgtype\":\"text\",\"text\":{\"content\":\"你好\"}}"}]}),
                "[合并消息] 聊天记录\n张三: 你好",
            ),
            (
                "channels_shop_product",
                json!({"title": "毛衣", "sales_price": "99"}),
                "[视频号商品] 毛衣 99",
            ),
            (
                "channels_shop_order",
                json!({"order_id": "O1", "product_titles": "毛衣"}),
                "[视频号订单] 毛衣 O1",
            ),
            (
                "channels",
                json!({"sub_type": 1, "nickname": "号", "title": "直播"}),
                "[视频号] 号 直播",
            ),
            ("unknown_future", json!({}), "[unknown_future]"),
        ];
        for (t, p, want) in cases {
            let m = message(item(t, p)).expect(t);
            assert_eq!(m.text, want, "{t}");
            assert_eq!(m.direction, Direction::Incoming);
            assert_eq!(m.sent_at, 1_615_478_585_000);
        }
    }

    #[test]
    fn events() {
        let ev = |e: Value| {
            message(
                json!({"msgid": "e", "send_time": 10, "origin": 4, "msgtype": "event", "event": e}),
            )
            .expect("event")
        };
        let m = ev(
            json!({"event_type": "session_status_change", "open_kfid": "wk", "external_userid": "wm",
                          "change_type": 3, "old_servicer_userid": "zs"}),
        );
        assert_eq!(
            m.session.as_ref().map(|s| s.kind),
            Some(SessionChangeKind::Ended)
        );
        assert_eq!(m.customer.as_ref().map(|c| c.id.as_str()), Some("wm"));
        assert_eq!(m.account.as_deref(), Some("wk"));
        assert_eq!(m.direction, Direction::System);
        let m = ev(json!({"event_type": "user_recall_msg", "recall_msgid": "old"}));
        assert_eq!(m.recall_of.as_deref(), Some("old"));
        let m = ev(
            json!({"event_type": "session_status_change", "change_type": 2,
                          "old_servicer_userid": "a", "new_servicer_userid": "b"}),
        );
        assert_eq!(m.text, "[会话转接] a → b");
    }

    #[test]
    fn rejects() {
        let cases = [
            (json!({"send_time": 1}), "missing msgid"),
            (json!({"msgid": "x"}), "missing or invalid send_time"),
            (
                json!({"msgid": "x", "send_time": i64::MAX}),
                "send_time out of range",
            ),
            (json!([1]), "expected a JSON object"),
        ];
        for (v, want) in cases {
            assert_eq!(message(v).err().as_deref(), Some(want));
        }
    }
}

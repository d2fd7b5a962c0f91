//! End-to-end reading of every source from files the tests write themselves
//! into a temporary directory: detection, streaming, rejection with line
//! numbers, and the normalized records.

use kefu_wechat::*;
use serde_json::{Value, json};
use std::path::PathBuf;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

fn ndjson(items: &[Value]) -> String {
    items.iter().map(|v| v.to_string() + "\n").collect()
}

/// Opens with detection, checks the detected format, splits the items.
fn read(path: &std::path::Path, want: Format) -> (Vec<Record>, Vec<Rejected>) {
    let (format, items) = open(path, None, SheetOptions::default()).expect("open");
    assert_eq!(format, want, "{}", path.display());
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for item in items {
        match item {
            Ok(r) => ok.push(r),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

fn messages(records: &[Record]) -> Vec<&MessageRecord> {
    records.iter().filter_map(Record::as_message).collect()
}

fn kf_item(msgid: &str, t: i64, origin: i64, msgtype: &str, payload: Value) -> Value {
    json!({"msgid": msgid, "open_kfid": "wkAJ2GCAAASSm4", "external_userid": "wmAJ2GCAAAme1X", "send_time": t,
           "origin": origin, "servicer_userid": "zhangsan", "msgtype": msgtype, msgtype: payload})
}

fn kf_event(msgid: &str, t: i64, event: Value) -> Value {
    json!({"msgid": msgid, "send_time": t, "origin": 4, "msgtype": "event", "event": event})
}

fn all_kf_items() -> Vec<Value> {
    let ev = |typ: &str, extra: Value| {
        let mut e = json!({"event_type": typ, "open_kfid": "wkAJ2GCAAASSm4", "external_userid": "wmAJ2GCAAAme1X"});
        if let (Some(o), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        e
    };
    vec![
        kf_item(
            "m01",
            1615478585,
            3,
            "text",
            json!({"content": "订单什么时候发货？", "menu_id": "101"}),
        ),
        kf_item(
            "m02",
            1615478586,
            3,
            "image",
            json!({"media_id": "IMG_MEDIA"}),
        ),
        kf_item(
            "m03",
            1615478587,
            3,
            "voice",
            json!({"media_id": "VOICE_MEDIA"}),
        ),
        kf_item(
            "m04",
            1615478588,
            3,
            "video",
            json!({"media_id": "VIDEO_MEDIA"}),
        ),
        kf_item(
            "m05",
            1615478589,
            3,
            "file",
            json!({"media_id": "FILE_MEDIA"}),
        ),
        kf_item(
            "m06",
            1615478590,
            3,
            "location",
            json!({"latitude": 39.9, "longitude": 116.4, "name": "天安门", "address": "北京市东城区"}),
        ),
        kf_item(
            "m07",
            1615478591,
            5,
            "link",
            json!({"title": "发货说明", "desc": "d", "url": "https://example.cn/a", "pic_url": "p"}),
        ),
        kf_item(
            "m08",
            1615478592,
            5,
            "business_card",
            json!({"userid": "lisi"}),
        ),
        kf_item(
            "m09",
            1615478593,
            5,
            "miniprogram",
            json!({"appid": "wx1", "title": "官方商城", "thumb_media_id": "THUMB", "pagepath": "p"}),
        ),
        kf_item(
            "m10",
            1615478594,
            5,
            "msgmenu",
            json!({"head_content": "您对本次服务是否满意？", "list": [
            {"type": "click", "click": {"id": "101", "content": "满意"}},
            {"type": "view", "view": {"url": "https://example.cn", "content": "查看详情"}},
            {"type": "miniprogram", "miniprogram": {"appid": "wx1", "pagepath": "p", "content": "打开小程序"}}
        ], "tail_content": "欢迎再次光临"}),
        ),
        kf_item(
            "m11",
            1615478595,
            3,
            "merged_msg",
            json!({"title": "群聊的聊天记录", "item": [
                {"send_time": 1615478000, "msgtype": 1, "sender_name": "张三", "msg_content": "{\"msgtype\":\"text\",\"text\":{\"content\":\"在吗\"}}"}
            ]}),
        ),
        kf_item(
            "m12",
            1615478596,
            3,
            "channels_shop_product",
            json!({"product_id": "p1", "title": "羊毛衫", "sales_price": "199"}),
        ),
        kf_item(
            "m13",
            1615478597,
            3,
            "channels_shop_order",
            json!({"order_id": "o1", "product_titles": "羊毛衫", "price_wording": "199元"}),
        ),
        kf_item(
            "m14",
            1615478598,
            3,
            "channels",
            json!({"sub_type": 1, "nickname": "好物推荐", "title": "新品"}),
        ),
        kf_event(
            "e01",
            1615478500,
            ev(
                "enter_session",
                json!({"scene": "123", "scene_param": "abc", "welcome_code": "w"}),
            ),
        ),
        kf_event(
            "e02",
            1615478599,
            ev(
                "session_status_change",
                json!({"change_type": 1, "new_servicer_userid": "zhangsan"}),
            ),
        ),
        kf_event(
            "e03",
            1615478600,
            ev(
                "session_status_change",
                json!({"change_type": 2, "old_servicer_userid": "zhangsan", "new_servicer_userid": "lisi"}),
            ),
        ),
        kf_event(
            "e04",
            1615478601,
            ev(
                "msg_send_fail",
                json!({"fail_msgid": "m08", "fail_type": 4}),
            ),
        ),
        kf_event(
            "e05",
            1615478602,
            json!({"event_type": "servicer_status_change", "servicer_userid": "lisi", "status": 2}),
        ),
        kf_event(
            "e06",
            1615478603,
            ev("user_recall_msg", json!({"recall_msgid": "m01"})),
        ),
        kf_event(
            "e07",
            1615478604,
            ev(
                "servicer_recall_msg",
                json!({"recall_msgid": "m07", "servicer_userid": "lisi"}),
            ),
        ),
        kf_event(
            "e08",
            1615478605,
            ev(
                "session_status_change",
                json!({"change_type": 3, "old_servicer_userid": "lisi"}),
            ),
        ),
        kf_event(
            "e09",
            1615478606,
            ev(
                "session_status_change",
                json!({"change_type": 4, "new_servicer_userid": "lisi"}),
            ),
        ),
    ]
}

#[test]
fn kf_sync_pages_every_type_and_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let items = all_kf_items();
    let page = |list: &[Value], more: i64| json!({"errcode": 0, "errmsg": "ok", "next_cursor": "c", "has_more": more, "msg_list": list});
    // Two pretty-printed pages concatenated, then an array holding a third page.
    let (a, b) = items.split_at(10);
    let (b, c) = b.split_at(6);
    let mut text = serde_json::to_string_pretty(&page(a, 1)).expect("json");
    text += "\n";
    text += &serde_json::to_string_pretty(&page(b, 1)).expect("json");
    text += &json!([page(c, 0)]).to_string();
    let path = write(&dir, "sync.json", text.as_bytes());
    let (records, rejected) = read(&path, Format::KfSync);
    assert!(rejected.is_empty(), "{rejected:?}");
    let msgs = messages(&records);
    assert_eq!(msgs.len(), items.len());
    let by_id = |id: &str| msgs.iter().find(|m| m.msgid == id).copied().expect(id);
    let texts = [
        ("m01", "订单什么时候发货？"),
        ("m02", "[图片]"),
        ("m03", "[语音]"),
        ("m06", "[位置] 天安门 北京市东城区"),
        ("m07", "[链接] 发货说明 https://example.cn/a"),
        ("m08", "[名片] lisi"),
        ("m09", "[小程序] 官方商城"),
        (
            "m10",
            "[菜单] 您对本次服务是否满意？\n- 满意\n- 查看详情\n- 打开小程序\n欢迎再次光临",
        ),
        ("m11", "[合并消息] 群聊的聊天记录\n张三: 在吗"),
        ("m12", "[视频号商品] 羊毛衫 199"),
        ("m14", "[视频号] 好物推荐 新品"),
        ("e01", "[进入会话] 123 abc"),
        ("e02", "[会话接入] zhangsan"),
        ("e03", "[会话转接] zhangsan → lisi"),
        ("e04", "[消息发送失败] m08"),
        ("e05", "[接待人员状态变更] lisi 停止接待"),
        ("e06", "[客户撤回了一条消息]"),
        ("e08", "[会话结束]"),
        ("e09", "[会话重新接入] lisi"),
    ];
    for (id, want) in texts {
        assert_eq!(by_id(id).text, want, "{id}");
    }
    let m = by_id("m01");
    assert_eq!(
        m.customer,
        Some(Identity::new(
            IdentityKind::WechatExternalUserid,
            "wmAJ2GCAAAme1X"
        ))
    );
    assert_eq!(
        (m.account.as_deref(), m.agent.as_deref()),
        (Some("wkAJ2GCAAASSm4"), Some("zhangsan"))
    );
    assert_eq!(
        (m.direction, m.sent_at),
        (Direction::Incoming, 1_615_478_585_000)
    );
    assert_eq!(m.raw["text"]["menu_id"], "101");
    assert_eq!(by_id("m07").direction, Direction::Outgoing);
    assert_eq!(by_id("m02").media[0].media_id.as_deref(), Some("IMG_MEDIA"));
    assert_eq!(by_id("m09").media[0].kind, Some(MediaKind::Thumb));
    // Events: ids from inside `event`, session markers, recalls.
    let e = by_id("e03");
    assert_eq!(e.direction, Direction::System);
    assert_eq!(
        e.customer.as_ref().map(|c| c.id.as_str()),
        Some("wmAJ2GCAAAme1X")
    );
    assert_eq!(e.account.as_deref(), Some("wkAJ2GCAAASSm4"));
    assert_eq!(e.event.as_deref(), Some("session_status_change"));
    let s = e.session.as_ref().expect("session");
    assert_eq!(
        (s.kind, s.old_servicer.as_deref(), s.new_servicer.as_deref()),
        (
            SessionChangeKind::Transferred,
            Some("zhangsan"),
            Some("lisi")
        )
    );
    assert_eq!(
        by_id("e08").session.as_ref().map(|s| s.kind),
        Some(SessionChangeKind::Ended)
    );
    assert_eq!(
        by_id("e09").session.as_ref().map(|s| s.kind),
        Some(SessionChangeKind::Reopened)
    );
    assert_eq!(by_id("e06").recall_of.as_deref(), Some("m01"));
    assert_eq!(by_id("e07").recall_of.as_deref(), Some("m07"));
    assert_eq!(by_id("e05").customer, None);
}

#[test]
fn kf_ndjson_broken_lines_duplicates_and_disorder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = |id: &str, t| kf_item(id, t, 3, "text", json!({"content": id}));
    let mut text = String::new();
    text += &good("a", 300).to_string(); // line 1
    text += "\n{\"msgid\":\"cut\",\"send_time\":1,\"orig\n"; // line 2: truncated
    text += &good("b", 100).to_string(); // line 3: earlier than a
    text += "\nnot json at all\n"; // line 4
    text += &good("a", 300).to_string(); // line 5: duplicate of a
    text += "\n{\"msgid\":\"x\",\"open_kfid\":\"wk\",\"origin\":3}\n"; // line 6: no send_time
    text += "\n\n"; // blank lines 7-8
    text += "[1,2]\n"; // line 9: not objects
    text += &good("c", 200).to_string(); // line 10
    text +=
        "\n{\"msgid\":\"t\",\"send_time\":1,\"msgtype\":\"text\",\"text\":{\"content\":\"tail cut"; // line 11, EOF
    let path = write(&dir, "kf.ndjson", text.as_bytes());
    let (records, rejected) = read(&path, Format::KfMessages);
    let ids: Vec<_> = messages(&records).iter().map(|m| m.msgid.clone()).collect();
    assert_eq!(
        ids,
        ["a", "b", "a", "c"],
        "duplicates and disorder are passed through"
    );
    let lines: Vec<u64> = rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4, 6, 9, 9, 11], "{rejected:?}");
    assert!(
        rejected[2].reason.contains("send_time"),
        "{}",
        rejected[2].reason
    );
}

/// Two broken NDJSON lines next to each other are two rejections, each
/// named by its line: a text whose line break was written raw (the record
/// is split over two lines) and a record that lost its closing brace
/// followed by the tail of another.
#[test]
fn kf_ndjson_adjacent_broken_lines_each_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = |id: &str, t| kf_item(id, t, 3, "text", json!({"content": id}));
    let split = good("split", 200)
        .to_string()
        .replace("\"content\":\"split\"", "\"content\":\"第一行\n第二行\"");
    let unclosed = good("unclosed", 300).to_string();
    let unclosed = &unclosed[..unclosed.len() - 1];
    let mut text = String::new();
    text += &good("a", 100).to_string(); // line 1
    text += "\n";
    text += &split; // lines 2 and 3
    text += "\n";
    text += unclosed; // line 4
    text += "\n\"origin\":3,\"msgtype\":\"text\"}\n"; // line 5: a record's tail
    text += &good("b", 400).to_string(); // line 6
    text += "\n";
    let path = write(&dir, "kf.ndjson", text.as_bytes());
    let (records, rejected) = read(&path, Format::KfMessages);
    let ids: Vec<_> = messages(&records).iter().map(|m| m.msgid.clone()).collect();
    assert_eq!(ids, ["a", "b"]);
    let lines: Vec<u64> = rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 5], "{rejected:?}");
    assert!(
        rejected[0].reason.contains("line ends inside a string"),
        "{}",
        rejected[0].reason
    );
    assert!(
        rejected[2].reason.contains("unterminated"),
        "{}",
        rejected[2].reason
    );
}

#[test]
fn kf_customers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = json!({"errcode": 0, "errmsg": "ok", "customer_list": [
        {"external_userid": "wmA", "nickname": "张三", "avatar": "http://a/1.png", "gender": 1, "unionid": "oUA",
         "enter_session_context": {"scene": "123", "scene_param": "abc"}},
        {"nickname": "没有id"}
    ], "invalid_external_userid": ["wmZ"]});
    let path = write(&dir, "customers.json", body.to_string().as_bytes());
    let (records, rejected) = read(&path, Format::KfCustomers);
    assert_eq!(rejected.len(), 1);
    let c = records[0].as_contact().expect("contact");
    assert_eq!(c.source, ContactSource::KfCustomer);
    assert_eq!(
        c.identities[1],
        Identity::new(IdentityKind::WechatUnionid, "oUA")
    );
    assert_eq!(
        (c.nickname.as_deref(), c.gender),
        (Some("张三"), Some(Gender::Male))
    );
    assert_eq!(c.attributes["enter_session_context"]["scene"], "123");
}

fn archive_item(
    msgid: &str,
    from: &str,
    to: &str,
    t: i64,
    msgtype: &str,
    key: &str,
    payload: Value,
) -> Value {
    json!({"msgid": msgid, "action": "send", "from": from, "tolist": [to], "roomid": "", "msgtime": t,
           "msgtype": msgtype, key: payload})
}

#[test]
fn archive_every_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = "wmErxtDgAArDlFIhf76O6w4GxU81al8w";
    let t = 1603875608214i64;
    let items = vec![
        archive_item(
            "a01",
            c,
            "kens",
            t,
            "text",
            "text",
            json!({"content": "你好，我想退款"}),
        ),
        archive_item(
            "a02",
            "kens",
            c,
            t + 1,
            "file",
            "file",
            json!({"md5sum": "18e93fc2ea884df23b3d2d3b8667b9f0", "filename": "资料.docx", "fileext": "docx", "filesize": 18181, "sdkfileid": "E4ODRk"}),
        ),
        archive_item(
            "a03",
            c,
            "kens",
            t + 2,
            "image",
            "image",
            json!({"md5sum": "img5", "filesize": 10, "sdkfileid": "SDKIMG"}),
        ),
        archive_item(
            "a04",
            c,
            "kens",
            t + 3,
            "voice",
            "voice",
            json!({"md5sum": "v5", "voice_size": 4000, "play_length": 5, "sdkfileid": "SDKVOICE"}),
        ),
        archive_item(
            "a05",
            c,
            "kens",
            t + 4,
            "video",
            "video",
            json!({"md5sum": "vid", "filesize": 9, "play_length": 12, "sdkfileid": "SDKVIDEO"}),
        ),
        archive_item(
            "a06",
            c,
            "kens",
            t + 5,
            "emotion",
            "emotion",
            json!({"type": 1, "width": 1, "height": 1, "imagesize": 3, "md5sum": "emo", "sdkfileid": "SDKEMO"}),
        ),
        json!({"msgid": "a07", "action": "recall", "from": "kens", "tolist": [c], "roomid": "", "msgtime": t + 6, "msgtype": "revoke", "revoke": {"pre_msgid": "a02"}}),
        archive_item(
            "a08",
            c,
            "kens",
            t + 7,
            "agree",
            "agree",
            json!({"userid": c, "agree_time": t}),
        ),
        archive_item(
            "a09",
            c,
            "kens",
            t + 8,
            "disagree",
            "disagree",
            json!({"userid": c, "disagree_time": t}),
        ),
        archive_item(
            "a10",
            "kens",
            c,
            t + 9,
            "card",
            "card",
            json!({"corpname": "某公司", "userid": "lisi"}),
        ),
        archive_item(
            "a11",
            c,
            "kens",
            t + 10,
            "location",
            "location",
            json!({"longitude": 1.0, "latitude": 2.0, "address": "深圳市南山区", "title": "科技园", "zoom": 15}),
        ),
        archive_item(
            "a12",
            "kens",
            c,
            t + 11,
            "link",
            "link",
            json!({"title": "退款流程", "description": "d", "link_url": "https://example.cn/r", "image_url": "i"}),
        ),
        archive_item(
            "a13",
            "kens",
            c,
            t + 12,
            "weapp",
            "weapp",
            json!({"title": "商城", "description": "d", "username": "gh_1", "displayname": "官方商城"}),
        ),
        archive_item(
            "a14",
            c,
            "kens",
            t + 13,
            "chatrecord",
            "chatrecord",
            json!({"title": "聊天记录", "item": [{"type": "ChatRecordText", "msgtime": 1603875600, "content": "{\"content\":\"第一条\"}", "from_chatroom": false}]}),
        ),
        archive_item(
            "a15",
            c,
            "kens",
            t + 14,
            "mixed",
            "mixed",
            json!({"item": [{"type": "text", "content": "{\"content\":\"看这个\"}"}, {"type": "image", "content": "{\"md5sum\":\"m\",\"sdkfileid\":\"s\"}"}]}),
        ),
        archive_item(
            "a16",
            "kens",
            c,
            t + 15,
            "meeting",
            "meeting",
            json!({"topic": "售后沟通", "starttime": 1, "endtime": 2, "address": "", "remarks": "", "meetingtype": 102, "meetingid": 1, "status": 1}),
        ),
        archive_item(
            "a17",
            "kens",
            c,
            t + 16,
            "docmsg",
            "doc",
            json!({"title": "报价单", "link_url": "https://doc.example.cn/1", "doc_creator": "kens"}),
        ),
        archive_item(
            "a18",
            "kens",
            c,
            t + 17,
            "markdown",
            "info",
            json!({"content": "**已处理**"}),
        ),
        archive_item(
            "a19",
            "kens",
            c,
            t + 18,
            "news",
            "info",
            json!({"item": [{"title": "新品上市", "description": "d", "url": "u", "picurl": "p"}]}),
        ),
        archive_item(
            "a20",
            "kens",
            c,
            t + 19,
            "external_redpacket",
            "redpacket",
            json!({"type": 1, "wish": "恭喜发财", "totalcnt": 1, "totalamount": 100}),
        ),
        archive_item(
            "a21",
            "kens",
            c,
            t + 20,
            "calendar",
            "calendar",
            json!({"title": "回访", "creatorname": "kens", "attendeename": [], "starttime": 1, "endtime": 2, "place": "线上", "remarks": ""}),
        ),
        archive_item(
            "a22",
            "kens",
            c,
            t + 21,
            "sphfeed",
            "sphfeed",
            json!({"feed_type": 4, "sph_name": "品牌号", "feed_desc": "开箱"}),
        ),
        archive_item(
            "a23",
            "kens",
            c,
            t + 22,
            "future_type",
            "future_type",
            json!({"x": 1}),
        ),
        json!({"msgid": "a24", "action": "switch", "time": t + 23, "user": "kens"}),
        json!({"msgid": "a25", "action": "send", "from": c, "tolist": ["kens", "wmOther"], "roomid": "wrGroup1", "msgtime": t + 24, "msgtype": "text", "text": {"content": "群里问一下"}}),
    ];
    let path = write(&dir, "archive.jsonl", ndjson(&items).as_bytes());
    let (records, rejected) = read(&path, Format::Archive);
    assert!(rejected.is_empty(), "{rejected:?}");
    let msgs = messages(&records);
    assert_eq!(msgs.len(), items.len());
    let by_id = |id: &str| msgs.iter().find(|m| m.msgid == id).copied().expect(id);
    let texts = [
        ("a01", "你好，我想退款"),
        ("a02", "[文件] 资料.docx"),
        ("a03", "[图片]"),
        ("a04", "[语音 5秒]"),
        ("a05", "[视频 12秒]"),
        ("a06", "[表情]"),
        ("a07", "[撤回消息]"),
        ("a08", "[同意存档]"),
        ("a09", "[拒绝存档]"),
        ("a10", "[名片] 某公司 lisi"),
        ("a11", "[位置] 科技园 深圳市南山区"),
        ("a12", "[链接] 退款流程 https://example.cn/r"),
        ("a13", "[小程序] 商城 官方商城"),
        ("a14", "[聊天记录] 聊天记录\n第一条"),
        ("a15", "看这个\n[图片]"),
        ("a16", "[会议] 售后沟通"),
        ("a17", "[在线文档] 报价单 https://doc.example.cn/1"),
        ("a18", "**已处理**"),
        ("a19", "[图文] 新品上市"),
        ("a20", "[红包] 恭喜发财"),
        ("a21", "[日程] 回访 线上"),
        ("a22", "[视频号] 品牌号 开箱"),
        ("a23", "[future_type]"),
        ("a24", "[切换企业] kens"),
    ];
    for (id, want) in texts {
        assert_eq!(by_id(id).text, want, "{id}");
    }
    let a1 = by_id("a01");
    assert_eq!(
        (a1.direction, a1.sent_at, a1.agent.as_deref()),
        (Direction::Incoming, t, Some("kens"))
    );
    assert_eq!(a1.customer.as_ref().map(|c| c.id.as_str()), Some(c));
    let a2 = by_id("a02");
    assert_eq!(a2.direction, Direction::Outgoing);
    let m = &a2.media[0];
    assert_eq!(
        (m.sdkfileid.as_deref(), m.md5sum.as_deref(), m.size),
        (
            Some("E4ODRk"),
            Some("18e93fc2ea884df23b3d2d3b8667b9f0"),
            Some(18181)
        )
    );
    assert_eq!(by_id("a04").media[0].duration_secs, Some(5));
    assert_eq!(by_id("a07").recall_of.as_deref(), Some("a02"));
    assert_eq!(by_id("a08").raw["agree"]["agree_time"], t);
    assert_eq!(by_id("a08").direction, Direction::System);
    assert_eq!(by_id("a25").group.as_deref(), Some("wrGroup1"));
    assert_eq!(by_id("a24").customer, None);
}

#[test]
fn official_account_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = json!({"recordlist": [
        {"openid": "oDF3iY9WMaswOPWjCIp_f3Bnpljk", "opercode": 2003, "text": "你好，在吗", "time": 1400563710, "worker": "test1@test"},
        {"openid": "oDF3iY9WMaswOPWjCIp_f3Bnpljk", "opercode": 2002, "text": "在的", "time": 1400563731, "worker": "test1@test"},
        {"openid": "oDF3iY9WMaswOPWjCIp_f3Bnpljk", "opercode": 2003, "text": "[image]", "time": 1400563740, "worker": "test1@test"},
        {"opercode": 2003, "text": "无openid", "time": 1}
    ], "number": 4, "msgid": 20165267});
    let path = write(&dir, "oa_records.json", records.to_string().as_bytes());
    let (recs, rejected) = read(&path, Format::OaRecords);
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].reason.contains("recordlist[3]"));
    let msgs = messages(&recs);
    assert_eq!(
        msgs.iter().map(|m| m.direction).collect::<Vec<_>>(),
        [
            Direction::Incoming,
            Direction::Outgoing,
            Direction::Incoming
        ]
    );
    assert_eq!(msgs[2].text, "[图片]");
    assert_eq!(
        msgs[0].customer.as_ref().map(|c| c.kind),
        Some(IdentityKind::WechatOpenid)
    );
    assert_eq!(
        (msgs[0].agent.as_deref(), msgs[0].account.as_deref()),
        (Some("test1@test"), Some("test"))
    );
    assert_eq!(msgs[0].sent_at, 1_400_563_710_000);
    assert_ne!(msgs[0].msgid, msgs[2].msgid);

    let users = json!({"user_info_list": [
        {"subscribe": 1, "openid": "otvxTs4dckWG7imySrJd6jSi0CWE", "language": "zh_CN", "subscribe_time": 1434093047,
         "unionid": "oR5GjjgEhCMJFyzaVZdrxZ2zRRF4", "remark": "", "groupid": 0, "tagid_list": [128, 2],
         "subscribe_scene": "ADD_SCENE_QR_CODE", "qr_scene": 98765, "qr_scene_str": ""}
    ]});
    let path = write(&dir, "oa_users.json", users.to_string().as_bytes());
    let (recs, rejected) = read(&path, Format::OaUsers);
    assert!(rejected.is_empty());
    let u = recs[0].as_contact().expect("user");
    assert_eq!(
        u.tags
            .iter()
            .filter_map(|t| t.id.as_deref())
            .collect::<Vec<_>>(),
        ["128", "2"]
    );
    assert_eq!(u.added_at, Some(1_434_093_047_000));
    assert_eq!(u.remark, None);

    let tags = json!({"tags": [{"id": 1, "name": "每天一罐可乐星人", "count": 0}, {"id": 128, "name": "广东", "count": 5}]});
    let path = write(&dir, "oa_tags.json", tags.to_string().as_bytes());
    let (recs, _) = read(&path, Format::OaTags);
    let g = recs[0].as_tag_group().expect("tags");
    assert_eq!(
        (g.kind, g.tags.len(), g.tags[1].name.as_str()),
        (TagKind::OfficialAccount, 2, "广东")
    );
}

#[test]
fn external_contacts_and_corp_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let get = json!({"errcode": 0, "errmsg": "ok",
        "external_contact": {"external_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", "name": "李雷", "position": "Manager",
            "avatar": "http://p.qlogo.cn/1/0", "corp_name": "腾讯", "corp_full_name": "腾讯科技有限公司", "type": 2, "gender": 1,
            "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA"},
        "follow_user": [{"userid": "rocky", "remark": "李部长", "description": "对接采购事务", "createtime": 1525779812,
            "tags": [{"group_name": "标签分组名称", "tag_name": "标签名称", "tag_id": "etAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", "type": 1},
                     {"group_name": "", "tag_name": "个人标签", "type": 2}],
            "remark_corp_name": "腾讯科技", "remark_mobiles": ["13800000001", "13000000002"], "oper_userid": "rocky",
            "add_way": 10, "state": "外联二维码1"}]});
    let batch = json!({"errcode": 0, "external_contact_list": [
        {"external_contact": {"external_userid": "wmB", "name": "韩梅梅", "type": 1},
         "follow_info": {"userid": "rocky", "remark": "韩", "createtime": 1525881637, "tag_id": ["etX"], "remark_mobiles": []}}
    ], "next_cursor": ""});
    let text = format!("{}\n{}\n", get, batch);
    let path = write(&dir, "contacts.json", text.as_bytes());
    let (recs, rejected) = read(&path, Format::Contacts);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(recs.len(), 2);
    let c = recs[0].as_contact().expect("contact");
    assert_eq!(
        (c.name.as_deref(), c.remark.as_deref(), c.owner.as_deref()),
        (Some("李雷"), Some("李部长"), Some("rocky"))
    );
    assert_eq!(c.description.as_deref(), Some("对接采购事务"));
    assert_eq!(c.added_at, Some(1_525_779_812_000));
    assert_eq!(c.phones, ["13800000001", "13000000002"]);
    assert_eq!(c.follows[0].add_way, Some(10));
    let personal = c
        .tags
        .iter()
        .find(|t| t.kind == TagKind::Personal)
        .expect("personal tag");
    assert_eq!(
        (personal.id.as_deref(), personal.name.as_deref()),
        (None, Some("个人标签"))
    );
    let kinds: Vec<_> = c.identities.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [
            IdentityKind::WechatExternalUserid,
            IdentityKind::WechatUnionid,
            IdentityKind::Phone,
            IdentityKind::Phone
        ]
    );

    let tags = json!({"errcode": 0, "errmsg": "ok", "tag_group": [
        {"group_id": "TAG_GROUPID1", "group_name": "GOURP_NAME", "create_time": 1557838797, "order": 1, "deleted": false,
         "tag": [{"id": "TAG_ID1", "name": "NAME1", "create_time": 1557838797, "order": 1, "deleted": false},
                 {"id": "TAG_ID2", "name": "NAME2", "create_time": 1557838797, "order": 2, "deleted": true}]}]});
    let path = write(&dir, "corp_tags.json", tags.to_string().as_bytes());
    let (recs, _) = read(&path, Format::CorpTags);
    let g = recs[0].as_tag_group().expect("group");
    assert_eq!(
        (g.group_id.as_deref(), g.created_at, g.tags[1].deleted),
        (Some("TAG_GROUPID1"), Some(1_557_838_797_000), true)
    );
}

#[test]
fn huge_array_and_ndjson_are_streamed() {
    // A generated reader: the file never exists in memory as a whole.
    struct Gen {
        n: usize,
        i: usize,
        pending: Vec<u8>,
    }
    impl std::io::Read for Gen {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                if self.i > self.n {
                    return Ok(0);
                }
                self.pending = match self.i {
                    0 => b"[".to_vec(),
                    i if i == self.n => b"]".to_vec(),
                    i => format!("{}{{\"msgid\":\"m{i}\",\"send_time\":{i},\"origin\":3,\"msgtype\":\"text\",\"text\":{{\"content\":\"x\"}}}}\n", if i > 1 { "," } else { "" }).into_bytes(),
                };
                self.i += 1;
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }
    let n = 20_000;
    let reader = std::io::BufReader::new(Gen {
        n,
        i: 0,
        pending: Vec::new(),
    });
    let mut count = 0;
    for item in JsonRecords::new(Format::KfMessages, reader) {
        assert!(item.is_ok(), "{item:?}");
        count += 1;
    }
    assert_eq!(count, n - 1);
}

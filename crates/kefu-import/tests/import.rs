//! `kefu_import::run` end to end on a real SQLite file and, when
//! `KEFU_TEST_POSTGRES_URL` is set, a real PostgreSQL database: every WeChat
//! source at once, contacts merged by unionid, conversations split, agents
//! mapped, recalls, media found and missing, re-runs adding nothing, dry
//! runs writing nothing.

use kefu_core::Message;
use kefu_import::{Options, Report};
use kefu_store::blobs::Blobs;
use kefu_store::{ConversationFilter, Store, Visibility};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

struct Db {
    store: Store,
    url: String,
    dir: tempfile::TempDir,
}

async fn open(postgres: bool) -> Option<Db> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = kefu_testdb::url(postgres, dir.path()).await?;
    Some(Db {
        store: Store::open(&url).await.expect("open store"),
        url,
        dir,
    })
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(db) = super::open(false).await { super::$name(db).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::open(true).await { super::$name(db).await }
            }
        }
    )*};
}

on_both!(
    imports_every_source_once,
    dry_run_writes_nothing,
    clean_input_exits_zero,
    csv_encoding_detected_or_given,
    spreadsheet_joins_wecom_contacts_by_mobile,
    whole_live_tag_list,
    export_folder_with_media_inside,
);

/// Rows of a table, through the database's own driver (the store has no
/// generic count, and the test must see what it did not mean to write).
async fn count(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    if db.url.starts_with("postgres") {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
            .await
            .expect("connect");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut c)
            .await
            .expect("count")
    } else {
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
            .await
            .expect("connect");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut c)
            .await
            .expect("count")
    }
}

const T0: i64 = 1_700_000_000; // seconds
const ID_NUMBER: &str = "110105199001011232";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, text).expect("write fixture");
    path
}

fn lines(values: &[serde_json::Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

fn kf(
    msgid: &str,
    at: i64,
    origin: i64,
    servicer: Option<&str>,
    payload: serde_json::Value,
) -> serde_json::Value {
    let msgtype = payload
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default();
    let mut v = json!({"msgid": msgid, "open_kfid": "wk-1", "external_userid": "wm-1",
        "send_time": T0 + at, "origin": origin, "msgtype": msgtype});
    if let Some(s) = servicer {
        v["servicer_userid"] = json!(s);
    }
    for (k, p) in payload.as_object().expect("object") {
        v[k] = p.clone();
    }
    v
}

/// Every kind of file a leaving company holds, in one directory tree (and
/// a media directory beside it). Returns (input dir, media dir).
fn fixtures(root: &Path, bad_line: bool) -> (PathBuf, PathBuf) {
    let input = root.join("export");
    let day = 24 * 3600;
    let msgs = vec![
        kf(
            "m1",
            0,
            3,
            None,
            json!({"text": {"content": "订单什么时候发货？"}}),
        ),
        kf(
            "m2",
            60,
            5,
            Some("zhangsan"),
            json!({"text": {"content": "明天发货"}}),
        ),
        kf(
            "m3",
            120,
            4,
            None,
            json!({"event": {"event_type": "session_status_change",
            "open_kfid": "wk-1", "external_userid": "wm-1", "change_type": 3,
            "old_servicer_userid": "zhangsan"}}),
        ),
        kf("m4", 600, 3, None, json!({"image": {"media_id": "MEDIA1"}})),
        kf("m5", 700, 3, None, json!({"voice": {"media_id": "MEDIA2"}})),
        kf(
            "m6",
            800,
            3,
            None,
            json!({"text": {"content": format!("身份证 {ID_NUMBER}")}}),
        ),
        kf(
            "m7",
            900,
            4,
            None,
            json!({"event": {"event_type": "user_recall_msg",
            "open_kfid": "wk-1", "external_userid": "wm-1", "recall_msgid": "m6"}}),
        ),
        kf(
            "m8",
            3 * day,
            3,
            None,
            json!({"text": {"content": "还在吗"}}),
        ),
        kf(
            "m9",
            3 * day + 60,
            5,
            Some("lisi"),
            json!({"text": {"content": "在的"}}),
        ),
    ];
    let page =
        json!({"errcode": 0, "errmsg": "ok", "next_cursor": "c", "has_more": 0, "msg_list": msgs});
    write(&input, "kf/sync_1.json", &page.to_string());
    write(
        &input,
        "kf/customers.json",
        &json!({"errcode": 0, "customer_list": [
        {"external_userid": "wm-1", "nickname": "李雷", "avatar": "https://wx.example/a.png",
         "gender": 1, "unionid": "u-1"}]})
        .to_string(),
    );
    write(&input, "contacts/external.json", &json!({"external_contact": {
        "external_userid": "wm-1", "name": "李雷", "unionid": "u-1", "corp_name": "ACME", "type": 1, "gender": 1},
        "follow_user": [{"userid": "zhangsan", "remark": "老李", "description": "大客户", "createtime": T0,
            "tags": [{"group_name": "等级", "tag_name": "VIP", "tag_id": "t1", "type": 1},
                     {"group_name": "等级", "tag_name": "旧", "tag_id": "t2", "type": 1}]}]}).to_string());
    write(
        &input,
        "contacts/corp_tags.json",
        &json!({"errcode": 0, "tag_group": [
        {"group_id": "g1", "group_name": "等级", "deleted": false, "tag": [
            {"id": "t1", "name": "VIP"}, {"id": "t2", "name": "旧", "deleted": true}]}]})
        .to_string(),
    );
    write(
        &input,
        "oa/tags.json",
        &json!({"tags": [{"id": 100, "name": "老客户", "count": 1}]}).to_string(),
    );
    write(
        &input,
        "oa/users.json",
        &json!({"subscribe": 1, "openid": "o-1", "unionid": "u-1",
        "subscribe_time": T0, "tagid_list": [100]})
        .to_string(),
    );
    write(&input, "oa/records.json", &json!({"recordlist": [
        {"openid": "o-1", "opercode": 2003, "text": "公众号留言", "time": T0 + 100},
        {"openid": "o-1", "opercode": 2002, "text": "您好", "time": T0 + 200, "worker": "kf2001@gh_test"}]}).to_string());
    let ms = T0 * 1000;
    let mut archive = lines(&[
        json!({"msgid": "a1", "action": "send", "from": "wm-1", "tolist": ["zhangsan"], "roomid": "",
            "msgtime": ms + 1000, "msgtype": "text", "text": {"content": "存档消息"}}),
        json!({"msgid": "a2", "action": "send", "from": "zhangsan", "tolist": ["wm-1"], "roomid": "",
            "msgtime": ms + 2000, "msgtype": "file", "file": {"md5sum": "abc123", "filename": "报价.pdf",
            "fileext": "pdf", "filesize": 9, "sdkfileid": "SDK1"}}),
        json!({"msgid": "a3", "action": "send", "from": "wm-2", "tolist": ["zhangsan", "wm-1"], "roomid": "wr-1",
            "msgtime": ms + 3000, "msgtype": "text", "text": {"content": "群消息"}}),
    ]);
    if bad_line {
        archive.push_str("{\"msgid\": \"broken\n");
        archive.push_str(&lines(&[json!({"msgid": "a4", "action": "send", "from": "wm-1",
            "tolist": ["zhangsan"], "roomid": "", "msgtime": ms + 4000, "msgtype": "text", "text": {"content": "坏行之后"}})]));
    }
    write(&input, "archive/2024.ndjson", &archive);
    let media = root.join("media");
    write(&media, "MEDIA1.jpg", "\u{FFFD}JPEGDATA");
    write(&media, "abc123.pdf", "%PDF-1.4 x");
    (input, media)
}

fn options(root: &Path, input: PathBuf, media: PathBuf) -> Options {
    let map = write(
        root,
        "agents.csv",
        "userid,email\nkf2001@gh_test,kf2001@example.com\n",
    );
    let mut o = Options::new(vec![input]);
    o.media_dir = Some(media);
    o.agent_map = Some(map);
    o.batch = 3;
    o.actor = "test".into();
    o
}

async fn agent(store: &Store, email: &str, name: &str) -> Uuid {
    let new = kefu_core::NewAgent {
        email: email.into(),
        name: name.into(),
        role: kefu_core::Role::Agent,
        password: None,
    };
    store.create_agent(&new, None).await.expect("agent").id
}

/// Every message of a contact by its key, and the conversations.
async fn history(
    store: &Store,
    contact: Uuid,
) -> (Vec<kefu_core::Conversation>, HashMap<String, Message>) {
    let filter = ConversationFilter {
        contact_id: Some(contact),
        limit: 100,
        ..Default::default()
    };
    let convs = store
        .list_conversations(Visibility::All, &filter)
        .await
        .expect("list")
        .items;
    let mut by_key = HashMap::new();
    for c in &convs {
        for m in store
            .list_messages(c.id, 0, 1000, true)
            .await
            .expect("messages")
        {
            by_key.insert(m.external_id.clone().expect("key"), m);
        }
    }
    (convs, by_key)
}

async fn imports_every_source_once(db: Db) {
    let store = &db.store;
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let zhangsan = agent(store, "zhangsan@example.com", "张三").await;
    let kf2001 = agent(store, "kf2001@example.com", "客服2001").await;
    let (input, media) = fixtures(db.dir.path(), true);
    let opts = options(db.dir.path(), input, media);
    let report = kefu_import::run(store, &blobs, &opts).await.expect("run");
    print!("{report}");

    // One person across kf, WeCom contacts, the OA and the archive.
    let lilei = store
        .contact_by_identity("wechat_unionid", "u-1")
        .await
        .expect("contact");
    let kinds: Vec<&str> = lilei.identities.iter().map(|i| i.kind.as_str()).collect();
    for k in ["wechat_unionid", "wechat_external_userid", "wechat_openid"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    assert_eq!(lilei.name.as_deref(), Some("李雷"));
    assert_eq!(
        lilei.avatar_url.as_deref(),
        Some("https://wx.example/a.png")
    );
    assert_eq!(lilei.attributes["company"], "ACME");
    let mut tags = lilei.tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        vec!["等级/VIP".to_string(), "老客户".to_string()],
        "deleted tag left out"
    );

    let (convs, msgs) = history(store, lilei.id).await;
    // kf: ended after m3, gap before m8; archive: one; OA: one.
    let summary: Vec<(i64, Vec<&String>)> = convs
        .iter()
        .map(|c| {
            (
                c.number,
                msgs.iter()
                    .filter(|(_, m)| m.conversation_id == c.id)
                    .map(|(k, _)| k)
                    .collect(),
            )
        })
        .collect();
    assert_eq!(convs.len(), 5, "{summary:?}");
    assert!(
        convs
            .iter()
            .all(|c| c.status == kefu_core::ConversationStatus::Resolved)
    );
    assert!(
        convs
            .iter()
            .all(|c| c.tags.contains(&"imported".to_string()))
    );
    assert_eq!(
        convs
            .iter()
            .filter(|c| c.tags.contains(&"微信客服".to_string()))
            .count(),
        3
    );
    assert_eq!(
        convs
            .iter()
            .filter(|c| c.tags.contains(&"会话存档".to_string()))
            .count(),
        1
    );
    assert_eq!(
        convs
            .iter()
            .filter(|c| c.tags.contains(&"公众号".to_string()))
            .count(),
        1
    );
    let conv_of = |k: &str| msgs[k].conversation_id;
    assert_eq!(conv_of("kf:m1"), conv_of("kf:m3"));
    assert_ne!(conv_of("kf:m3"), conv_of("kf:m4"), "split on session end");
    assert_ne!(conv_of("kf:m7"), conv_of("kf:m8"), "split on the gap");
    assert_eq!(msgs["kf:m1"].metadata["msgid"], "m1");
    assert_eq!(msgs["kf:m1"].metadata["source"], "kf");
    assert_eq!(msgs["kf:m1"].metadata["msgtype"], "text");
    // A plain text item keeps what the message does not hold itself
    // instead of its whole raw JSON; anything else keeps the raw JSON.
    assert_eq!(msgs["kf:m1"].metadata["open_kfid"], "wk-1");
    assert_eq!(msgs["kf:m1"].metadata["origin"], 3);
    assert!(msgs["kf:m1"].metadata.get("raw").is_none());
    assert_eq!(msgs["kf:m2"].metadata["servicer_userid"], "zhangsan");
    assert_eq!(msgs["kf:m4"].metadata["raw"]["msgtype"], "image");

    // Agents: existing by userid, mapped by file, placeholders inactive.
    assert_eq!(msgs["kf:m2"].sender_id, Some(zhangsan));
    assert_eq!(msgs["archive:a2"].sender_id, Some(zhangsan));
    let oa_reply = msgs.values().find(|m| m.text == "您好").expect("oa reply");
    assert_eq!(oa_reply.sender_id, Some(kf2001));
    let lisi = store
        .agent_by_email("lisi@wechat-import.invalid")
        .await
        .expect("placeholder");
    assert!(!lisi.active);
    assert_eq!(msgs["kf:m9"].sender_id, Some(lisi.id));
    assert_eq!(report.agents_created, 1);

    // Recall, PII, media.
    assert_eq!(msgs["kf:m6"].metadata["recalled"], true);
    assert!(
        !msgs["kf:m6"].text.contains(ID_NUMBER),
        "{}",
        msgs["kf:m6"].text
    );
    assert!(
        !msgs["kf:m6"].metadata["raw"]
            .to_string()
            .contains(ID_NUMBER)
    );
    assert_eq!(report.pii.resident_id.masked, 1);
    assert_eq!(msgs["kf:m4"].attachments.len(), 1);
    assert_eq!(msgs["archive:a2"].attachments.len(), 1);
    assert_eq!(msgs["archive:a2"].attachments[0].filename, "报价.pdf");
    assert!(msgs["kf:m5"].metadata["media_missing"].is_array());
    assert_eq!((report.media_found, report.media_missing), (2, 1));

    // Groups skipped, the bad line rejected with its number, the rest read.
    assert!(!msgs.contains_key("archive:a3"));
    assert_eq!(report.skipped_group_messages, 1);
    assert!(
        msgs.contains_key("archive:a4"),
        "reading went on after the bad line"
    );
    assert_eq!(report.rejected, 1);
    assert_eq!(report.rejected_lines[0].line, 4);
    assert!(report.rejected_lines[0].file.ends_with("2024.ndjson"));
    assert_eq!(report.exit_code(), 2);
    assert_eq!(report.messages, report.messages_placed);
    let runs = store.list_import_runs(10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "finished_with_rejections");
    assert_eq!(runs[0].actor, "test");
    assert_eq!(runs[0].report["messages"], json!(report.messages));

    // Again: nothing new anywhere.
    let tables = [
        "contacts",
        "contact_identities",
        "conversations",
        "messages",
        "attachments",
        "agents",
        "inboxes",
        "tags",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(&db, t).await);
    }
    let again = kefu_import::run(store, &blobs, &opts).await.expect("rerun");
    assert_eq!(
        (again.messages, again.conversations, again.contacts_created),
        (0, 0, 0)
    );
    assert!(
        again
            .files
            .iter()
            .filter(|f| f.status != "read")
            .all(|f| f.status == "already_done"),
        "{:?}",
        again.files
    );
    for (t, n) in tables.iter().zip(before) {
        assert_eq!(count(&db, t).await, n, "{t}");
    }
    assert_eq!(store.list_import_runs(10).await.expect("runs").len(), 2);
}

async fn dry_run_writes_nothing(db: Db) {
    let store = &db.store;
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let (input, media) = fixtures(db.dir.path(), true);
    let mut opts = options(db.dir.path(), input, media);
    opts.dry_run = true;
    let tables = [
        "contacts",
        "conversations",
        "messages",
        "attachments",
        "agents",
        "inboxes",
        "tags",
        "import_files",
        "import_keys",
        "import_sort_runs",
        "import_runs",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(&db, t).await);
    }
    let report: Report = kefu_import::run(store, &blobs, &opts)
        .await
        .expect("dry run");
    print!("{report}");
    for (t, n) in tables.iter().zip(before) {
        assert_eq!(count(&db, t).await, n, "{t} unchanged");
    }
    assert!(
        !db.dir.path().join("attachments").exists(),
        "no blobs written"
    );
    assert!(report.dry_run);
    assert_eq!(report.contacts_created, 1, "one person across sources");
    assert_eq!(report.messages, 14);
    assert_eq!(report.conversations, 5);
    assert_eq!((report.media_found, report.media_missing), (2, 1));
    assert_eq!(report.rejected, 1);
    assert_eq!(report.rejected_lines[0].line, 4);
    assert_eq!(report.exit_code(), 2);
    assert!(report.to_string().contains("2024.ndjson:4"), "{report}");
}

async fn clean_input_exits_zero(db: Db) {
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let (input, media) = fixtures(db.dir.path(), false);
    let report = kefu_import::run(&db.store, &blobs, &options(db.dir.path(), input, media))
        .await
        .expect("run");
    assert_eq!((report.rejected, report.exit_code()), (0, 0));
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["rejected"], 0);
    assert_eq!(
        db.store.list_import_runs(1).await.expect("runs")[0].status,
        "finished"
    );
}

/// A Big5 customer list as Excel on Traditional Chinese Windows saves it
/// (no BOM, CRLF) is detected as Big5, not read as GB18030 mojibake; the
/// report names the encoding; `encoding` (`--encoding`) overrides detection.
async fn csv_encoding_detected_or_given(db: Db) {
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let text = "客戶名稱,手機,電子郵件,公司,備註\r\n\
                陳大文,0912345678,tai.man@example.com.tw,台灣積體電路製造股份有限公司,老客戶\r\n\
                林美玲,0987654321,mei@example.com.hk,鴻海精密工業股份有限公司,\r\n";
    let (big5, _, unmappable) = kefu_import::encoding_for_label("big5")
        .expect("big5")
        .encode(text);
    assert!(!unmappable);
    let input = db.dir.path().join("export");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("客戶名單.csv"), &big5).expect("write");
    let mut opts = Options::new(vec![input.clone()]);
    opts.actor = "test".into();
    let report = kefu_import::run(&db.store, &blobs, &opts)
        .await
        .expect("run");
    print!("{report}");
    assert_eq!(report.rejected, 0, "{:?}", report.rejected_lines);
    assert_eq!(report.files[0].encoding.as_deref(), Some("Big5"));
    assert!(report.to_string().contains("(Big5)"), "{report}");
    let chen = db
        .store
        .contact_by_identity("email", "tai.man@example.com.tw")
        .await
        .expect("contact");
    assert_eq!(chen.name.as_deref(), Some("陳大文"));
    assert_eq!(chen.attributes["company"], "台灣積體電路製造股份有限公司");
    assert_eq!(chen.attributes["description"], "老客戶");

    // Told otherwise, the importer reads the bytes as told (a dry run, so
    // the names it would make are not checked against the database).
    let mut told = opts.clone();
    told.dry_run = true;
    told.encoding = Some(kefu_import::encoding_for_label("gbk").expect("gbk"));
    let report = kefu_import::run(&db.store, &blobs, &told)
        .await
        .expect("dry run");
    assert_eq!(report.files[0].encoding.as_deref(), Some("gb18030"));
}

/// A WeCom external contact as `externalcontact/get` returns it, with the
/// mobiles its follower noted.
fn wecom_contact(id: &str, name: &str, mobiles: &[&str]) -> serde_json::Value {
    json!({"errcode": 0, "errmsg": "ok",
        "external_contact": {"external_userid": id, "name": name, "type": 1, "gender": 1},
        "follow_user": [{"userid": "zhangsan", "remark": name, "createtime": T0,
            "remark_mobiles": mobiles, "add_way": 1}]})
}

/// The customer list of the WeCom contacts above, as Excel on Chinese
/// Windows saves it (GBK without BOM, CRLF), the mobiles written every way
/// people write them, is joined to those contacts by mobile (and to an
/// existing customer by email) instead of making a second contact each;
/// two WeCom contacts sharing a mobile stay two, and both the merges and
/// the conflict are in the report.
async fn spreadsheet_joins_wecom_contacts_by_mobile(db: Db) {
    let store = &db.store;
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    // A customer who wrote in by email before the move.
    let zhao = store
        .create_contact(&kefu_core::NewContact {
            name: Some("赵磊".into()),
            email: Some("zhao.lei@example.com".into()),
            identities: vec![kefu_core::Identity {
                kind: "email".into(),
                value: "zhao.lei@example.com".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("contact");
    let input = db.dir.path().join("export");
    let contacts = [
        wecom_contact("wmZW", "张伟", &["13800138000"]),
        wecom_contact("wmLN", "李娜", &["139-0013-9000"]),
        wecom_contact("wmWF", "王芳", &["+86 137 0013 7000"]),
        wecom_contact("wmLY", "刘洋", &["13600136000"]),
        // 刘洋's wife: the same home number, another WeCom contact.
        wecom_contact("wmCJ", "陈静", &["136 0013 6000"]),
    ];
    write(&input, "contacts/external.ndjson", &lines(&contacts));
    let csv = "客户名称,手机,邮箱,企业,标签\r\n\
               张伟,138 0013 8000,,上海某某贸易有限公司,VIP\r\n\
               李娜,+86-139-0013-9000,,,\r\n\
               王芳,８６１３７００１３７０００,,,\r\n\
               刘洋,(0086) 136-0013-6000,,,\r\n\
               孙丽,13500135000,,,\r\n\
               赵磊,,Zhao.Lei＠Example.com,,\r\n";
    let (gbk, _, unmappable) = kefu_import::encoding_for_label("gbk")
        .expect("gbk")
        .encode(csv);
    assert!(!unmappable);
    assert!(!gbk.starts_with(b"\xEF\xBB\xBF") && std::str::from_utf8(&gbk).is_err());
    std::fs::write(input.join("客户列表.csv"), &gbk).expect("write");
    let mut opts = Options::new(vec![input]);
    opts.actor = "test".into();
    let before = count(&db, "contacts").await;
    let report = kefu_import::run(store, &blobs, &opts).await.expect("run");
    print!("{report}");
    assert_eq!(report.rejected, 0, "{:?}", report.rejected_lines);
    assert_eq!(report.files[1].encoding.as_deref(), Some("gb18030"));

    // 5 WeCom contacts and 孙丽; the other 5 rows joined someone.
    assert_eq!(count(&db, "contacts").await - before, 6);
    assert_eq!(report.contacts_created, 6);
    assert_eq!(report.contacts_merged, 5, "{:?}", report.merges);
    let by = |k: &str, v: &str| (k.to_string(), v.to_string());
    for (wm, phone) in [
        ("wmZW", "13800138000"),
        ("wmLN", "13900139000"),
        ("wmWF", "13700137000"),
        ("wmLY", "13600136000"),
    ] {
        let c = store
            .contact_by_identity("wechat_external_userid", wm)
            .await
            .expect("wecom contact");
        let ids: Vec<_> = c
            .identities
            .iter()
            .map(|i| (i.kind.clone(), i.value.clone()))
            .collect();
        assert!(ids.contains(&by("phone", phone)), "{wm}: {ids:?}");
        let merge = report
            .merges
            .iter()
            .find(|m| m.merge.contact_id == c.id)
            .expect("merge listed");
        assert_eq!(merge.merge.by.value, phone);
        assert!(merge.file.ends_with("客户列表.csv"), "{}", merge.file);
    }
    let zw = store
        .contact_by_identity("phone", "13800138000")
        .await
        .expect("张伟");
    assert_eq!(zw.name.as_deref(), Some("张伟"));
    assert_eq!(zw.tags, ["VIP"]);
    assert_eq!(zw.attributes["company"], "上海某某贸易有限公司");
    // The customer known by email got the spreadsheet's row.
    let merged_zhao = store
        .contact_by_identity("email", "zhao.lei@example.com")
        .await
        .expect("赵磊");
    assert_eq!(merged_zhao.id, zhao.id);
    assert!(report.merges.iter().any(|m| m.merge.contact_id == zhao.id));

    // Two WeCom ids sharing a mobile stay two people; the number stays
    // with the first, the conflict is reported.
    let cj = store
        .contact_by_identity("wechat_external_userid", "wmCJ")
        .await
        .expect("陈静");
    let ly = store
        .contact_by_identity("phone", "13600136000")
        .await
        .expect("刘洋");
    assert_ne!(cj.id, ly.id);
    assert_eq!(ly.name.as_deref(), Some("刘洋"));
    assert_eq!(report.contact_conflicts, 1);
    let conflict = &report.conflicts[0].conflict;
    assert_eq!(conflict.shared.value, "13600136000");
    assert_eq!((conflict.existing, conflict.created), (ly.id, cj.id));
    assert_eq!(conflict.existing_ids[0].value, "wmLY");
    assert_eq!(conflict.record[0].value, "wmCJ");
    assert!(report.to_string().contains("kept apart"), "{report}");

    // A dry run counts the people in its input (赵磊 is one: it does not
    // look at the database) joined and kept apart by the same rule.
    let mut dry = opts.clone();
    dry.dry_run = true;
    let dry = kefu_import::run(store, &blobs, &dry).await.expect("dry");
    assert_eq!(
        (
            dry.contacts_created,
            dry.contacts_merged,
            dry.contact_conflicts
        ),
        (7, 4, 1)
    );

    // Again: nothing new.
    let again = kefu_import::run(store, &blobs, &opts).await.expect("rerun");
    assert_eq!(again.contacts_created, 0);
    assert_eq!(count(&db, "contacts").await - before, 6);
}

/// The corp tag list comes across whole: tags nobody carries yet (and
/// groups whose tags nobody carries) become kefu tags agents can use;
/// deleted tags and deleted groups stay out.
async fn whole_live_tag_list(db: Db) {
    let store = &db.store;
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let input = db.dir.path().join("export");
    write(&input, "contacts/corp_tags.json", &json!({"errcode": 0, "errmsg": "ok", "tag_group": [
        {"group_id": "etG1", "group_name": "客户等级", "create_time": T0, "order": 1, "deleted": false, "tag": [
            {"id": "etT1", "name": "VIP", "create_time": T0, "order": 1, "deleted": false},
            {"id": "etT2", "name": "普通", "create_time": T0, "order": 2, "deleted": false},
            {"id": "etT3", "name": "流失", "create_time": T0, "order": 3, "deleted": true}]},
        {"group_id": "etG2", "group_name": "所在地区", "create_time": T0, "order": 2, "deleted": false, "tag": [
            {"id": "etT4", "name": "华东", "create_time": T0, "order": 1, "deleted": false},
            {"id": "etT5", "name": "华南", "create_time": T0, "order": 2, "deleted": false}]},
        {"group_id": "etG3", "group_name": "2022活动", "create_time": T0, "order": 3, "deleted": true, "tag": [
            {"id": "etT6", "name": "双十一", "create_time": T0, "order": 1, "deleted": false}]}]}).to_string());
    let mut contact = wecom_contact("wmZW", "张伟", &[]);
    contact["follow_user"][0]["tags"] =
        json!([{"group_name": "客户等级", "tag_name": "VIP", "tag_id": "etT1", "type": 1}]);
    write(&input, "contacts/external.json", &contact.to_string());
    let mut opts = Options::new(vec![input]);
    opts.actor = "test".into();
    let report = kefu_import::run(store, &blobs, &opts).await.expect("run");
    print!("{report}");
    let names: Vec<String> = store
        .list_tags()
        .await
        .expect("tags")
        .into_iter()
        .map(|t| t.name)
        .collect();
    for live in [
        "客户等级/VIP",
        "客户等级/普通",
        "所在地区/华东",
        "所在地区/华南",
    ] {
        assert!(names.contains(&live.to_string()), "{live} in {names:?}");
    }
    for gone in ["客户等级/流失", "2022活动/双十一"] {
        assert!(!names.contains(&gone.to_string()), "{gone} in {names:?}");
    }
    assert_eq!((report.tag_list, report.tags_created), (4, 4));
    let zw = store
        .contact_by_identity("wechat_external_userid", "wmZW")
        .await
        .expect("contact");
    assert_eq!(zw.tags, ["客户等级/VIP"]);

    // A dry run writes no tag; a re-run creates none.
    let mut dry = opts.clone();
    dry.dry_run = true;
    let before = count(&db, "tags").await;
    let d = kefu_import::run(store, &blobs, &dry).await.expect("dry");
    assert_eq!((d.tag_list, d.tags_created), (4, 0));
    let again = kefu_import::run(store, &blobs, &opts).await.expect("rerun");
    assert_eq!((again.tag_list, again.tags_created), (4, 0));
    assert_eq!(count(&db, "tags").await, before);
}

/// An export folder as the README lays it out, with `media/` inside and
/// `--media` naming it, plus the binaries people leave in such a folder
/// (a screenshot named .json, a voice file without extension, a zipped
/// backup, a .DS_Store): the media folder and the binaries are skipped and
/// counted, not rejected, and the import exits 0.
async fn export_folder_with_media_inside(db: Db) {
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let (input, media) = fixtures(db.dir.path(), false);
    let inside = input.join("media");
    std::fs::rename(&media, &inside).expect("move media into the export");
    std::fs::write(inside.join("MEDIA9"), b"#!AMR\n\x3c\x91\x17").expect("write");
    let jpeg = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01";
    write(&input, "oa/Media/qr.jpg", "");
    std::fs::write(input.join("oa/Media/qr.jpg"), jpeg).expect("write");
    std::fs::write(input.join("kf/截图.json"), jpeg).expect("write");
    std::fs::write(input.join("archive/voice_0001"), b"#!SILK_V3\x0c\x00\x01").expect("write");
    std::fs::write(
        input.join("聊天备份.bak"),
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00media/MEDIA1.jpg",
    )
    .expect("write");
    std::fs::write(
        input.join(".DS_Store"),
        b"\x00\x00\x00\x01Bud1\x00\x00\x10\x00",
    )
    .expect("write");
    let opts = options(db.dir.path(), input, inside);
    let report = kefu_import::run(&db.store, &blobs, &opts)
        .await
        .expect("run");
    print!("{report}");
    assert_eq!(report.rejected, 0, "{:?}", report.rejected_lines);
    assert_eq!(report.exit_code(), 0);
    // media/: MEDIA1.jpg, abc123.pdf, MEDIA9; oa/Media/: qr.jpg.
    assert_eq!(report.skipped_media_files, 4);
    assert_eq!(report.skipped_binary_files, 4);
    assert!(
        report.files.iter().all(|f| !f.path.contains("media")
            && !f.path.contains("Media")
            && !f.path.contains("截图")),
        "{:?}",
        report.files
    );
    assert!(
        report.to_string().contains("media folder files skipped"),
        "{report}"
    );
    // The media folder is still where attachments come from.
    assert_eq!((report.media_found, report.media_missing), (2, 1));
    assert_eq!(report.messages, report.messages_placed);
    assert!(report.messages > 0);
}

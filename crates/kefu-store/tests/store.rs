//! The store's promises under concurrency, on a real SQLite file and a real
//! PostgreSQL database: gap-free sequence numbers, idempotent resends, events
//! only after commit, contacts recognised by identity, snoozes that wake.

use kefu_core::{
    ConversationPatch, ConversationStatus, Direction, Event, Identity, InboxKind, NewContact,
    NewConversation, NewInbox, NewMessage, Priority, SlaPolicy,
};
use kefu_store::blobs::Blobs;
use kefu_store::{
    ConversationFilter, EncodedMessage, FileProgress, ImportContact, NewAttachment, PlaceCounts,
    PlaceOptions, StagedBody, StagedMessage, Store, StoreError, Swept, Visibility,
};
use std::collections::HashSet;
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
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                if let Some(db) = super::open(false).await { super::$name(db).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = super::open(true).await { super::$name(db).await }
            }
        }
    )*};
}

on_both!(
    concurrent_appends_are_gap_free,
    concurrent_resends_add_one_message,
    failed_writes_undo_only_themselves,
    imports_place_history_once,
    import_work_adopts_what_an_older_version_staged,
    imports_merge_many_runs_in_order,
    placing_waits_for_its_source_and_sees_later_runs,
    events_follow_commits,
    contacts_are_recognised_by_identity,
    a_long_history_shows_its_newest_conversations,
    snoozed_conversations_wake,
    unsent_uploads_expire_and_sent_ones_stay,
    migrations_are_idempotent,
    outbox_claims_are_exclusive_and_expire,
    held_mail_is_taken_by_one_node
);

async fn inbox(store: &Store, sla: SlaPolicy) -> Uuid {
    let new = NewInbox {
        kind: InboxKind::Api,
        name: "网站客服".into(),
        sla,
        settings: serde_json::json!({}),
        member_ids: vec![],
    };
    store.create_inbox(&new).await.expect("inbox").id
}

fn new_conversation(inbox_id: Uuid, wechat_openid: &str) -> NewConversation {
    let mut contact = NewContact {
        name: Some("王小明".into()),
        identities: vec![Identity {
            kind: "wechat_openid".into(),
            value: wechat_openid.into(),
        }],
        ..Default::default()
    };
    contact.validate().expect("valid contact");
    NewConversation {
        inbox_id,
        contact_id: None,
        contact: Some(contact),
        subject: Some("退款".into()),
        priority: Priority::Medium,
        assignee_id: None,
        team_id: None,
        tags: vec![],
        message: Some(NewMessage::text(Direction::Incoming, "你好，我想申请退款")),
    }
}

async fn concurrent_appends_are_gap_free(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let (c, _) = store
        .create_conversation(&new_conversation(inbox, "o-gap"), None)
        .await
        .expect("create");
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let m = NewMessage::text(Direction::Incoming, format!("消息 {t}-{i}"));
                    store.append_message(c.id, &m, None).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let messages = store.list_messages(c.id, 0, 500, true).await.expect("list");
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=201).collect::<Vec<_>>(), "gap-free and ordered");
    assert_eq!(store.conversation(c.id).await.expect("get").last_seq, 201);
    let after = store
        .list_messages(c.id, 190, 500, true)
        .await
        .expect("resume");
    assert_eq!(after.first().map(|m| m.seq), Some(191));
    assert_eq!(after.len(), 11);
}

/// Writes that run together (SQLite commits queued writes as one batch)
/// succeed or fail one by one: a refused append leaves nothing behind, and
/// those beside it stay.
async fn failed_writes_undo_only_themselves(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let create = |openid: &'static str| {
        let store = store.clone();
        async move {
            let (c, _) = store
                .create_conversation(&new_conversation(inbox, openid), None)
                .await
                .expect("create");
            c
        }
    };
    let (live, gone, target) = (
        create("o-live").await,
        create("o-gone").await,
        create("o-target").await,
    );
    store
        .merge_conversations(gone.id, target.id, None)
        .await
        .expect("merge");
    let target_seq = store
        .conversation(target.id)
        .await
        .expect("target")
        .last_seq;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let store = store.clone();
            let to = if i % 2 == 0 { live.id } else { gone.id };
            tokio::spawn(async move {
                let m = NewMessage::text(Direction::Incoming, format!("并发 {i}"));
                store.append_message(to, &m, None).await
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(a) => {
                assert_eq!(a.conversation.id, live.id);
                ok += 1;
            }
            Err(StoreError::Invalid(reason)) => {
                assert!(reason.contains(&target.id.to_string()), "{reason}");
                refused += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, refused), (30, 30));
    let seqs: Vec<i64> = store
        .list_messages(live.id, 0, 100, true)
        .await
        .expect("live")
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=31).collect::<Vec<_>>(),
        "every accepted append, gap-free"
    );
    let gone_now = store.conversation(gone.id).await.expect("gone");
    assert_eq!(
        gone_now.last_seq, gone.last_seq,
        "refused appends bumped nothing"
    );
    assert_eq!(
        store
            .conversation(target.id)
            .await
            .expect("target")
            .last_seq,
        target_seq
    );
    // A create that fails (unknown inbox) beside ones that succeed.
    let mut bad = new_conversation(Uuid::now_v7(), "o-bad");
    bad.subject = Some("无此收件箱".into());
    let good = new_conversation(inbox, "o-good");
    let (good, bad) = tokio::join!(
        store.create_conversation(&good, None),
        store.create_conversation(&bad, None)
    );
    good.expect("good create");
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}

async fn concurrent_resends_add_one_message(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let (c, _) = store
        .create_conversation(&new_conversation(inbox, "o-dup"), None)
        .await
        .expect("create");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut m = NewMessage::text(Direction::Incoming, "重复发送");
                m.external_id = Some("client-42".into());
                store.append_message(c.id, &m, None).await.expect("append")
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let a = t.await.expect("task");
        ids.insert(a.message.id);
        created += usize::from(a.created);
    }
    assert_eq!(ids.len(), 1, "every resend answers with the same message");
    assert_eq!(created, 1, "exactly one insert");
    let messages = store.list_messages(c.id, 0, 100, true).await.expect("list");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].seq, 2, "a dropped resend leaves no gap");
    assert_eq!(store.conversation(c.id).await.expect("get").last_seq, 2);
}

async fn events_follow_commits(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(
        &store,
        SlaPolicy {
            first_response_minutes: Some(30),
            resolution_minutes: Some(24 * 60),
        },
    )
    .await;
    let mut events = store.subscribe();
    let (c, m) = store
        .create_conversation(&new_conversation(inbox, "o-ev"), None)
        .await
        .expect("create");
    match events.recv().await.expect("event") {
        Event::ConversationCreated { conversation } => assert_eq!(conversation.id, c.id),
        other => panic!("expected ConversationCreated, got {other:?}"),
    }
    match events.recv().await.expect("event") {
        Event::MessageCreated {
            message, inbox_id, ..
        } => {
            assert_eq!(Some(message.id), m.map(|m| m.id));
            assert_eq!(inbox_id, inbox);
        }
        other => panic!("expected MessageCreated, got {other:?}"),
    }
    let due = c.first_response_due_at.expect("SLA due");
    assert_eq!((due - c.created_at).num_minutes(), 30);

    // A write that fails rolls back and announces nothing.
    let mut bad = NewMessage::text(Direction::Outgoing, "附件");
    bad.attachment_ids = vec![Uuid::now_v7()];
    let err = store
        .append_message(c.id, &bad, None)
        .await
        .expect_err("an unknown attachment");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(
        events.try_recv().is_err(),
        "no event for a rolled-back write"
    );
    assert_eq!(
        store.conversation(c.id).await.expect("get").last_seq,
        1,
        "the seq bump rolled back too"
    );

    let reply = store
        .append_message(
            c.id,
            &NewMessage::text(Direction::Outgoing, "已为您处理"),
            None,
        )
        .await
        .expect("reply");
    assert!(matches!(
        events.recv().await.expect("event"),
        Event::MessageCreated { .. }
    ));
    assert_eq!(
        reply.conversation.first_response_at,
        Some(reply.message.created_at)
    );
}

async fn contacts_are_recognised_by_identity(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let (a, _) = store
        .create_conversation(&new_conversation(inbox, "o-same"), None)
        .await
        .expect("first");
    let (b, _) = store
        .create_conversation(&new_conversation(inbox, "o-same"), None)
        .await
        .expect("second");
    assert_eq!(
        a.contact_id, b.contact_id,
        "the returning customer is the same contact"
    );
    assert!(b.number > a.number);
    let found = store
        .contact_by_identity("wechat_openid", "o-same")
        .await
        .expect("lookup");
    assert_eq!(found.id, a.contact_id);
    let mut other = NewContact {
        identities: vec![Identity {
            kind: "wechat_openid".into(),
            value: "o-same".into(),
        }],
        ..Default::default()
    };
    other.validate().expect("valid");
    let err = store
        .create_contact(&other)
        .await
        .expect_err("a taken identity");
    assert!(
        err.is_conflict_on("contact_identities_kind_value_key"),
        "{err:?}"
    );

    // Found by one identity, the contact gains the others it came with;
    // one that belongs to someone else stays theirs.
    let (someone, _) = store
        .create_conversation(&new_conversation(inbox, "o-someone"), None)
        .await
        .expect("someone else");
    let mut returning = new_conversation(inbox, "o-same");
    let contact = returning.contact.as_mut().expect("contact");
    for (kind, value) in [("wechat_unionid", "u-same"), ("wechat_openid", "o-someone")] {
        contact.identities.push(Identity {
            kind: kind.into(),
            value: value.into(),
        });
    }
    let (c, _) = store
        .create_conversation(&returning, None)
        .await
        .expect("third");
    assert_eq!(c.contact_id, a.contact_id);
    let by_union = store
        .contact_by_identity("wechat_unionid", "u-same")
        .await
        .expect("the new identity was kept");
    assert_eq!(by_union.id, a.contact_id);
    let still = store
        .contact_by_identity("wechat_openid", "o-someone")
        .await
        .expect("lookup");
    assert_eq!(still.id, someone.contact_id);
}

/// SQLite: the WAL is checkpointed beside the writer and then starts over
/// (its header's checkpoint sequence moves on) even while messages keep
/// coming, so it stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_wal_starts_over_after_checkpoints() {
    let db = open(false).await.expect("sqlite");
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let (c, _) = store
        .create_conversation(&new_conversation(inbox, "o-wal"), None)
        .await
        .expect("create");
    let wal = format!("{}-wal", db.url.trim_start_matches("sqlite://"));
    // Bytes 12..16 of the WAL header: how many times it started over.
    let restarts = || {
        let header = std::fs::read(&wal).expect("the WAL");
        u32::from_be_bytes(header[12..16].try_into().expect("a WAL header"))
    };
    // Messages keep coming; checkpoints run every second beside them (and
    // the writer finishes one every 4 s when writes never pause).
    store
        .append_message(c.id, &NewMessage::text(Direction::Incoming, "第一条"), None)
        .await
        .expect("append");
    let before = restarts();
    // Within about 4 s; a loaded machine gets more time.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut i = 0;
    while restarts() == before {
        assert!(
            std::time::Instant::now() < until,
            "the WAL did not start over within 30 s of writes"
        );
        for _ in 0..50 {
            let m = NewMessage::text(Direction::Incoming, format!("消息 {i}"));
            store.append_message(c.id, &m, None).await.expect("append");
            i += 1;
        }
    }
}

async fn a_long_history_shows_its_newest_conversations(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let mut numbers = Vec::new();
    for _ in 0..205 {
        let (c, _) = store
            .create_conversation(&new_conversation(inbox, "o-long"), None)
            .await
            .expect("create");
        numbers.push(c.number);
    }
    let contact = store
        .contact_by_identity("wechat_openid", "o-long")
        .await
        .expect("contact");
    let shown: Vec<i64> = store
        .contact_conversations(contact.id)
        .await
        .expect("history")
        .iter()
        .map(|c| c.number)
        .collect();
    assert_eq!(shown, numbers[5..], "the newest 200, oldest first");
}

async fn snoozed_conversations_wake(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let (c, _) = store
        .create_conversation(&new_conversation(inbox, "o-snooze"), None)
        .await
        .expect("create");
    let until = kefu_core::time::now() + chrono::Duration::minutes(5);
    let patch = ConversationPatch {
        status: Some(ConversationStatus::Snoozed),
        snoozed_until: Some(until),
        ..Default::default()
    };
    let snoozed = store
        .update_conversation(c.id, &patch)
        .await
        .expect("snooze");
    assert_eq!(snoozed.status, ConversationStatus::Snoozed);
    assert_eq!(
        store
            .wake_snoozed(kefu_core::time::now())
            .await
            .expect("early"),
        0
    );
    assert_eq!(
        store
            .wake_snoozed(until + chrono::Duration::seconds(1))
            .await
            .expect("due"),
        1
    );
    let woke = store.conversation(c.id).await.expect("get");
    assert_eq!(woke.status, ConversationStatus::Open);
    assert_eq!(woke.snoozed_until, None);
}

async fn upload(store: &Store, blobs: &Blobs, bytes: &[u8], by: Uuid) -> kefu_core::Attachment {
    let sha256 = blobs.put(bytes).await.expect("blob");
    store
        .create_attachment(NewAttachment {
            sha256: &sha256,
            filename: "截图.png",
            content_type: "image/png",
            size: bytes.len() as i64,
            uploaded_by: Some(by),
        })
        .await
        .expect("attachment")
}

fn with_files(text: &str, ids: &[Uuid]) -> NewMessage {
    let mut m = NewMessage::text(Direction::Incoming, text);
    m.attachment_ids = ids.to_vec();
    m
}

/// Issue #12: uploads never sent expire with their files, judged at an
/// injected "now"; sent ones (and bytes a sent one shares) stay; a
/// customer's file goes only into that customer's conversation.
async fn unsent_uploads_expire_and_sent_ones_stay(db: Db) {
    let store = db.store.clone();
    let blobs = Blobs::new(db.dir.path().join("attachments"));
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let (mine, _) = store
        .create_conversation(&new_conversation(inbox, "o-files"), None)
        .await
        .expect("create");
    let (theirs, _) = store
        .create_conversation(&new_conversation(inbox, "o-other"), None)
        .await
        .expect("create");
    let receipt = "付款截图 ¥128".as_bytes();
    let sent = upload(&store, &blobs, receipt, mine.contact_id).await;
    store
        .append_message(mine.id, &with_files("见截图", &[sent.id]), None)
        .await
        .expect("send");
    // The same bytes again, and other bytes, both left unsent.
    let twin = upload(&store, &blobs, receipt, mine.contact_id).await;
    let lone = upload(&store, &blobs, "订单 2026-001".as_bytes(), mine.contact_id).await;
    // A file the server stored itself (an import's, staged until placed).
    let sha256 = blobs.put("导入的图片".as_bytes()).await.expect("blob");
    let staged = store
        .create_attachment(NewAttachment {
            sha256: &sha256,
            filename: "导入.jpg",
            content_type: "image/jpeg",
            size: 15,
            uploaded_by: None,
        })
        .await
        .expect("attachment");
    let lone_file = blobs.path(&lone.sha256).expect("path");
    let shared_file = blobs.path(&sent.sha256).expect("path");

    let refused = store
        .append_message(theirs.id, &with_files("偷图", &[lone.id]), None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let pending = (receipt.len() + "订单 2026-001".len()) as i64;
    assert_eq!(
        store.pending_uploads(mine.contact_id).await.expect("count"),
        (2, pending)
    );
    assert_eq!(
        store
            .pending_uploads(theirs.contact_id)
            .await
            .expect("count"),
        (0, 0)
    );

    let day = std::time::Duration::from_secs(24 * 3600);
    let now = kefu_core::time::now();
    let early = store
        .sweep_pending_uploads(&blobs, now + chrono::Duration::hours(23), day)
        .await
        .expect("sweep");
    assert_eq!(early, Swept::default());
    assert!(lone_file.exists() && shared_file.exists());

    let late = store
        .sweep_pending_uploads(&blobs, now + chrono::Duration::hours(25), day)
        .await
        .expect("sweep");
    assert_eq!(
        late,
        Swept {
            uploads: 2,
            files: 1
        }
    );
    assert!(!lone_file.exists(), "an unsent upload's file goes with it");
    assert!(shared_file.exists(), "bytes a sent attachment uses stay");
    assert!(store.attachment(sent.id).await.is_ok());
    assert!(
        store.attachment(staged.id).await.is_ok(),
        "no uploader: not swept"
    );
    assert!(blobs.path(&staged.sha256).expect("path").exists());
    for gone in [twin.id, lone.id] {
        assert!(matches!(
            store.attachment(gone).await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(
        store.pending_uploads(mine.contact_id).await.expect("count"),
        (0, 0)
    );
    let expired = store
        .append_message(mine.id, &with_files("晚了", &[lone.id]), None)
        .await;
    assert!(
        matches!(expired, Err(StoreError::Invalid(_))),
        "{expired:?}"
    );
    let messages = store
        .list_messages(mine.id, 0, 10, true)
        .await
        .expect("messages");
    assert_eq!(
        messages.iter().map(|m| m.attachments.len()).sum::<usize>(),
        1
    );
    let again = store
        .sweep_pending_uploads(&blobs, now + chrono::Duration::days(30), day)
        .await
        .expect("sweep");
    assert_eq!(again, Swept::default());
    assert!(shared_file.exists());
}

async fn migrations_are_idempotent(db: Db) {
    let store = db.store.clone();
    // Opening the same database again applies nothing twice and keeps the data.
    let inbox = inbox(&store, SlaPolicy::default()).await;
    store.close().await;
    let again = Store::open(&db.url).await.expect("reopen");
    assert!(again.ping().await);
    assert_eq!(again.inbox(inbox).await.expect("inbox").name, "网站客服");
}

fn staged(key: &str, who: &str, at_min: i64, direction: Direction, text: &str) -> StagedMessage {
    StagedMessage {
        key: format!("kf:{key}"),
        customer: Identity {
            kind: "wechat_external_userid".into(),
            value: who.into(),
        },
        account: "wk-service".into(),
        sent_at: 1_700_000_000_000 + at_min * 60_000,
        agent_ref: (direction == Direction::Outgoing).then(|| "zhangsan".into()),
        body: StagedBody {
            direction,
            text: text.into(),
            metadata: serde_json::json!({ "msgid": key }),
            recall_of: None,
            ends_session: false,
            attachment_ids: vec![],
        },
    }
}

/// Staging twice and placing in batches smaller than a conversation gives
/// one copy of everything: sessions split on "ended" and on long gaps,
/// recalls mark their message, and a later run continues the last session.
async fn imports_place_history_once(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let agent = store
        .create_agent(
            &kefu_core::NewAgent {
                email: "zhangsan@example.com".into(),
                name: "张三".into(),
                role: kefu_core::Role::Agent,
                password: None,
            },
            None,
        )
        .await
        .expect("agent");
    let contact = ImportContact {
        identities: vec![
            Identity {
                kind: "wechat_unionid".into(),
                value: "u-1".into(),
            },
            Identity {
                kind: "wechat_external_userid".into(),
                value: "wm-1".into(),
            },
        ],
        name: Some("李雷".into()),
        tags: vec!["VIP".into()],
        ..Default::default()
    };
    let mut ended = staged("3", "wm-1", 2, Direction::System, "[会话结束]");
    ended.body.ends_session = true;
    let mut recall = staged(
        "6",
        "wm-1",
        60 * 48 + 2,
        Direction::System,
        "[撤回了一条消息]",
    );
    recall.body.recall_of = Some("kf:5".into());
    let messages = vec![
        staged("1", "wm-1", 0, Direction::Incoming, "订单什么时候发货？"),
        staged("2", "wm-1", 1, Direction::Outgoing, "明天发货"),
        ended,
        staged("4", "wm-1", 10, Direction::Incoming, "收到了吗"),
        // Two days later: a new conversation.
        staged("5", "wm-1", 60 * 48, Direction::Incoming, "我要退货"),
        recall,
        staged("7", "wm-2", 5, Direction::Incoming, "你好"),
    ];
    let progress = FileProgress {
        fingerprint: "f1".into(),
        path: "sync.ndjson".into(),
        format: "kf_sync_msg".into(),
        byte_offset: 100,
        line: 7,
        done: true,
    };
    let work = store
        .import_work(&db.dir.path().join("import"))
        .await
        .expect("work dir");
    let encode = |m: &[StagedMessage]| -> Vec<EncodedMessage> {
        m.iter()
            .map(|m| m.clone().encode().expect("encode"))
            .collect()
    };
    let first = store
        .import_stage(
            &work,
            "",
            std::slice::from_ref(&contact),
            encode(&messages),
            &progress,
        )
        .await
        .expect("stage");
    assert_eq!((first.contacts_created, first.messages_staged), (1, 7));
    let again = store
        .import_stage(&work, "", &[contact], encode(&messages), &progress)
        .await
        .expect("restage");
    assert_eq!(
        (
            again.contacts_updated,
            again.messages_staged,
            again.messages_already_staged
        ),
        (1, 0, 7)
    );
    assert_eq!(
        store.import_progress("f1").await.expect("progress"),
        Some(progress)
    );
    let opts = PlaceOptions {
        agents: [("zhangsan".to_string(), agent.id)].into(),
        ..place_options(inbox)
    };
    let mut total = PlaceCounts::default();
    while let Some(c) = store.import_place(&work, &opts, 3).await.expect("place") {
        total.conversations += c.conversations;
        total.messages += c.messages;
        total.contacts_created += c.contacts_created;
        total.recalls_marked += c.recalls_marked;
    }
    assert_eq!(
        (
            total.conversations,
            total.messages,
            total.contacts_created,
            total.recalls_marked
        ),
        (4, 7, 1, 1)
    );
    let lilei = store
        .contact_by_identity("wechat_unionid", "u-1")
        .await
        .expect("contact");
    assert_eq!(lilei.tags, vec!["VIP".to_string()]);
    let filter = ConversationFilter {
        contact_id: Some(lilei.id),
        limit: 10,
        ..Default::default()
    };
    let mut convs = store
        .list_conversations(Visibility::All, &filter)
        .await
        .expect("list")
        .items;
    convs.sort_by_key(|c| c.created_at);
    assert_eq!(convs.len(), 3);
    let texts = |id| {
        let store = store.clone();
        async move {
            store
                .list_messages(id, 0, 50, true)
                .await
                .expect("messages")
        }
    };
    let one = texts(convs[0].id).await;
    assert_eq!(one.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(one[1].sender_id, Some(agent.id));
    assert_eq!(one[0].external_id.as_deref(), Some("kf:1"));
    assert_eq!(convs[0].status, ConversationStatus::Resolved);
    assert!(convs[0].tags.contains(&"imported".to_string()));
    assert!(convs[0].first_response_at.is_some());
    assert_eq!(texts(convs[1].id).await.len(), 1, "after the ended session");
    let last = texts(convs[2].id).await;
    assert_eq!(last[0].metadata["recalled"], serde_json::json!(true));
    assert_eq!(last[1].text, "[撤回了一条消息]");
    // A later run: a message an hour after the last continues that conversation.
    let later = vec![staged(
        "8",
        "wm-1",
        62 * 24 + 60,
        Direction::Incoming,
        "还在吗",
    )];
    let p2 = FileProgress {
        fingerprint: "f2".into(),
        ..store.import_progress("f1").await.expect("p").expect("f1")
    };
    // With a message staged before (a re-run over a grown export): only
    // the new one is staged.
    let mut grown = later.clone();
    grown.push(messages[0].clone());
    let counts = store
        .import_stage(&work, "", &[], encode(&grown), &p2)
        .await
        .expect("stage later");
    assert_eq!(
        (counts.messages_staged, counts.messages_already_staged),
        (1, 1)
    );
    store
        .import_place(&work, &opts, 100)
        .await
        .expect("place later");
    assert_eq!(
        store
            .import_place(&work, &opts, 100)
            .await
            .expect("nothing left"),
        None
    );
    let files: Vec<_> = std::fs::read_dir(work.dir())
        .expect("work dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files, vec!["lock"], "placed runs are removed");
    let last = texts(convs[2].id).await;
    assert_eq!(
        last.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

/// Placing into `inbox` with the importer's defaults: a 24 h gap, tagged
/// `imported`, no agents, any source.
fn place_options(inbox: Uuid) -> PlaceOptions {
    PlaceOptions {
        inboxes: Default::default(),
        default_inbox: inbox,
        agents: Default::default(),
        gap_ms: 24 * 3_600_000,
        tags: vec!["imported".into()],
        source: None,
    }
}

/// How far file `name` has been read: `line` records, one byte each.
fn file_progress(name: &str, line: u64, done: bool) -> FileProgress {
    FileProgress {
        fingerprint: name.into(),
        path: format!("{name}.ndjson"),
        format: "kf_sync_msg".into(),
        byte_offset: line,
        line,
        done,
    }
}

/// The conversations of the contact with WeChat external userid `who`.
async fn imported_conversations(store: &Store, who: &str) -> Vec<kefu_core::Conversation> {
    let contact = store
        .contact_by_identity("wechat_external_userid", who)
        .await
        .expect("contact");
    let filter = ConversationFilter {
        contact_id: Some(contact.id),
        limit: 10,
        ..Default::default()
    };
    store
        .list_conversations(Visibility::All, &filter)
        .await
        .expect("list")
        .items
}

/// Runs a statement outside the store, as another program (or an older
/// kefu) would.
async fn raw(url: &str, sql: String) {
    use sqlx::Connection;
    let q = sqlx::AssertSqlSafe(sql);
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query(q).execute(&mut c).await.expect("raw sql");
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query(q).execute(&mut c).await.expect("raw sql");
    }
}

/// The import work directory: one import at a time, a run file that no
/// transaction recorded is removed, and a message an older version staged
/// in `import_staged` (and did not place) becomes a run and is placed once.
async fn import_work_adopts_what_an_older_version_staged(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let body = r#"{"direction":"incoming","text":"旧版本暂存的消息","metadata":{"msgid":"old"}}"#;
    raw(
        &db.url,
        format!(
            "INSERT INTO import_staged (pass, key, customer_kind, customer_value, account, sent_at, body)
             VALUES (1, 'kf:old', 'wechat_external_userid', 'wm-old', 'wk-service', 1700000000000, '{body}')"
        ),
    )
    .await;
    raw(
        &db.url,
        "INSERT INTO import_keys (key) VALUES ('kf:old')".into(),
    )
    .await;
    let dir = db.dir.path().join("import");
    let own = store.import_work(&dir).await.expect("work dir");
    let orphan = own.dir().join(format!("{}.run", Uuid::now_v7()));
    drop(own);
    std::fs::write(&orphan, "[\"half written\"").expect("orphan");
    let work = store.import_work(&dir).await.expect("work dir");
    assert!(!orphan.exists(), "an unrecorded run file is removed");
    let second = store.import_work(&dir).await;
    assert!(
        matches!(&second, Err(StoreError::Invalid(m)) if m.contains("another import")),
        "one import at a time per directory"
    );
    assert!(store.import_has_pending().await.expect("pending"));
    let again = store
        .import_stage(
            &work,
            "",
            &[],
            vec![
                staged("old", "wm-old", 0, Direction::Incoming, "又一次")
                    .encode()
                    .expect("encode"),
            ],
            &file_progress("f", 1, true),
        )
        .await
        .expect("stage");
    assert_eq!(
        (again.messages_staged, again.messages_already_staged),
        (0, 1)
    );
    let opts = place_options(inbox);
    let placed = store.import_place(&work, &opts, 10).await.expect("place");
    assert_eq!(placed.map(|c| c.messages), Some(1));
    assert_eq!(
        store.import_place(&work, &opts, 10).await.expect("done"),
        None
    );
    assert!(!store.import_has_pending().await.expect("pending"));
    let convs = imported_conversations(&store, "wm-old").await;
    assert_eq!(convs.len(), 1);
    let messages = store
        .list_messages(convs[0].id, 0, 10, true)
        .await
        .expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "旧版本暂存的消息");
    assert_eq!(messages[0].external_id.as_deref(), Some("kf:old"));
}

/// More runs than are merged at once (64) are first merged in groups;
/// placing still takes every message once, in time order.
async fn imports_merge_many_runs_in_order(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let work = store
        .import_work(&db.dir.path().join("import"))
        .await
        .expect("work dir");
    // 65 runs of one message each, the newest staged first.
    for i in (0..65).rev() {
        let m = staged(&format!("m{i}"), "wm-many", i, Direction::Incoming, "消息");
        let progress = file_progress("many", 65 - i as u64, i == 0);
        store
            .import_stage(&work, "", &[], vec![m.encode().expect("encode")], &progress)
            .await
            .expect("stage");
    }
    let run_files = || {
        std::fs::read_dir(work.dir())
            .expect("work dir")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".run")
            })
            .count()
    };
    assert_eq!(run_files(), 65);
    let opts = place_options(inbox);
    let mut placed = 0;
    while let Some(c) = store.import_place(&work, &opts, 10).await.expect("place") {
        if placed == 0 {
            assert_eq!(run_files(), 2, "64 runs merged into one");
        }
        placed += c.messages;
    }
    assert_eq!(placed, 65);
    assert_eq!(run_files(), 0);
    let convs = imported_conversations(&store, "wm-many").await;
    assert_eq!(convs.len(), 1);
    let messages = store
        .list_messages(convs[0].id, 0, 100, true)
        .await
        .expect("messages");
    let keys: Vec<String> = messages
        .iter()
        .map(|m| m.external_id.clone().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (0..65).map(|i| format!("kf:m{i}")).collect();
    assert_eq!(keys, expected, "one conversation, in time order");
}

/// A source's placing step places its own runs only, even when it finds
/// nothing first, and tags their conversations with the runs' source.
async fn placing_waits_for_its_source_and_sees_later_runs(db: Db) {
    let store = db.store.clone();
    let inbox = inbox(&store, SlaPolicy::default()).await;
    let work = store
        .import_work(&db.dir.path().join("import"))
        .await
        .expect("work dir");
    let opts = |source: &str| PlaceOptions {
        source: Some(source.into()),
        ..place_options(inbox)
    };
    assert_eq!(
        store
            .import_place(&work, &opts("kf"), 10)
            .await
            .expect("empty"),
        None
    );
    let m = staged("a1", "wm-src", 0, Direction::Incoming, "存档消息");
    let progress = file_progress("archive", 1, false);
    store
        .import_stage(
            &work,
            "archive",
            &[],
            vec![m.encode().expect("encode")],
            &progress,
        )
        .await
        .expect("stage");
    assert_eq!(
        store
            .import_place(&work, &opts("kf"), 10)
            .await
            .expect("kf"),
        None,
        "another source's pass waits for its own step"
    );
    assert!(store.import_has_pending().await.expect("pending"));
    let placed = store
        .import_place(&work, &opts("archive"), 10)
        .await
        .expect("archive");
    assert_eq!(placed.map(|c| c.messages), Some(1));
    let convs = imported_conversations(&store, "wm-src").await;
    assert_eq!(convs.len(), 1);
    let mut tags = convs[0].tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["archive".to_string(), "imported".to_string()]);
}

/// Queued mail is claimed by one node at a time: while one holds it (many
/// claiming at once), no other gets it; a node that died mid-send leaves it
/// to the next claimer once the lease has run out, and the dead node's late
/// outcome is then not recorded over the live one's. A reply queued twice
/// (two nodes building it at once) is kept once.
async fn outbox_claims_are_exclusive_and_expire(db: Db) {
    let store = db.store.clone();
    let inbox_id = inbox(&store, SlaPolicy::default()).await;
    let (c, first) = store
        .create_conversation(&new_conversation(inbox_id, "o_claims"), None)
        .await
        .expect("conversation");
    let first = first.expect("first message");
    let recipients = vec!["wang@customer.example".to_string()];
    let mail = |header_id: &'static str| kefu_store::NewOutboxEmail {
        inbox_id,
        conversation_id: c.id,
        message_id: Some(first.id),
        header_id,
        envelope_from: "support@shop.example",
        recipients: &recipients,
        sha256: "00",
    };
    let queued = store
        .enqueue_email(mail("a@shop.example"))
        .await
        .expect("queue");
    assert!(queued.is_some());
    let again = store
        .enqueue_email(mail("b@shop.example"))
        .await
        .expect("queue again");
    assert_eq!(again, None, "a second copy of the same reply was queued");

    // Ten claimers at once (the second node's own store among them): one wins.
    let other = Store::open(&db.url).await.expect("a second node");
    let now = chrono::Utc::now().timestamp_millis();
    const LEASE: i64 = 600_000;
    let mut claims = tokio::task::JoinSet::new();
    for n in 0..10 {
        let s = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        claims.spawn(async move { s.claim_due_email(&[inbox_id], now, LEASE).await });
    }
    let mut won = Vec::new();
    while let Some(r) = claims.join_next().await {
        if let Some(m) = r.expect("join").expect("claim") {
            won.push(m);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let dead = won.remove(0);
    assert_eq!(Some(dead.id), queued);
    assert_eq!(dead.header_id, "a@shop.example");
    assert!(dead.claim.is_some());

    // Not before the lease runs out, nor for an inbox not asked about.
    let later = now + LEASE - 1;
    assert!(
        store
            .claim_due_email(&[inbox_id], later, LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    let elsewhere = Uuid::now_v7();
    let expired = now + LEASE;
    assert!(
        store
            .claim_due_email(&[elsewhere], expired, LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    // The claimer died: once the lease is over another node takes it.
    let live = other
        .claim_due_email(&[inbox_id], expired, LEASE)
        .await
        .expect("claim")
        .expect("the mail is not stranded");
    assert_eq!(live.id, dead.id);
    assert_ne!(live.claim, dead.claim);
    // The dead node's late outcome does not count; the live one's does,
    // and releases the row.
    let late = store
        .record_email_attempt(
            dead.id,
            dead.claim.expect("claim"),
            "queued",
            Some("timeout"),
            Some(now),
        )
        .await
        .expect("record");
    assert!(!late);
    let recorded = other
        .record_email_attempt(live.id, live.claim.expect("claim"), "sent", None, None)
        .await
        .expect("record");
    assert!(recorded);
    let sent = store
        .outbox_email_by_header("a@shop.example")
        .await
        .expect("row")
        .expect("the mail");
    assert_eq!(
        (sent.status.as_str(), sent.attempts, sent.claim),
        ("sent", 1, None)
    );
    // Sent mail is never claimed again.
    let much_later = expired + 10 * LEASE;
    assert!(
        store
            .claim_due_email(&[inbox_id], much_later, LEASE)
            .await
            .expect("claim")
            .is_none()
    );
}

/// Mail held for flooding is swept by every node: one takes each message
/// (many trying at once), and one a node took and never finished (it died)
/// is offered again once its filing is stale.
async fn held_mail_is_taken_by_one_node(db: Db) {
    let store = db.store.clone();
    let inbox_id = inbox(&store, SlaPolicy::default()).await;
    let id = store
        .record_inbound_email(kefu_store::NewInbound {
            inbox_id,
            sha256: "00",
            size: 2,
            header_id: Some("flood-31@customer.example"),
            sender: Some("wang@customer.example"),
            status: "received",
        })
        .await
        .expect("record")
        .expect("new");
    store
        .finish_inbound_email(id, "held", Some("sender over the rate limit"), None)
        .await
        .expect("hold");
    let now = chrono::Utc::now().timestamp_millis() + 1_000;
    const STALE: i64 = 600_000;
    let held = store
        .held_inbound_emails(now, now - STALE, 50)
        .await
        .expect("held");
    assert_eq!(held.iter().map(|h| h.0).collect::<Vec<_>>(), [id]);

    let other = Store::open(&db.url).await.expect("a second node");
    let mut takers = tokio::task::JoinSet::new();
    for n in 0..10 {
        let s = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        takers.spawn(async move { s.claim_held_inbound_email(id, now, now - STALE).await });
    }
    let mut took = 0;
    while let Some(r) = takers.join_next().await {
        took += usize::from(r.expect("join").expect("claim"));
    }
    assert_eq!(took, 1);
    // Being filed: not offered again, until the filing is stale.
    let soon = now + STALE - 1;
    assert!(
        store
            .held_inbound_emails(soon, soon - STALE, 50)
            .await
            .expect("held")
            .is_empty()
    );
    assert!(
        !store
            .claim_held_inbound_email(id, soon, soon - STALE)
            .await
            .expect("claim")
    );
    let later = now + STALE;
    let again = store
        .held_inbound_emails(later, later - STALE, 50)
        .await
        .expect("held");
    assert_eq!(again.len(), 1);
    assert!(
        other
            .claim_held_inbound_email(id, later, later - STALE)
            .await
            .expect("claim")
    );
    // Filed: never offered again.
    store
        .finish_inbound_email(id, "filed", None, None)
        .await
        .expect("file");
    let much_later = later + 10 * STALE;
    assert!(
        store
            .held_inbound_emails(much_later, much_later - STALE, 50)
            .await
            .expect("held")
            .is_empty()
    );
}

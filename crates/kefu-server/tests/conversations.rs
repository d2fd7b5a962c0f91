//! Conversations over HTTP: who sees what (inbox membership), creation with
//! a contact and a first message, filters and cursor pages, messages and
//! their sequence numbers, status, assignment, tags, merging, and the events
//! the store publishes after each commit.

#[macro_use]
mod common;

use common::*;
use kefu_core::{Event, Role};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

both_backends!(
    agents_outside_an_inbox_get_404_by_id_and_by_filter,
    conversations_are_created_with_contact_first_message_and_sla,
    conversations_are_filtered,
    view_counts_follow_status_assignment_and_membership,
    conversations_page_by_cursor_newest_activity_first,
    messages_are_gap_free_idempotent_and_reopen_the_conversation,
    status_assignment_and_tags_change,
    merging_moves_messages_and_closes_the_source,
    concurrent_writes_keep_numbers_and_sequences_gap_free,
    events_are_published_after_commit,
);

fn conv_path(c: &Value) -> String {
    format!("/api/v1/conversations/{}", id(c))
}

async fn list_ids(c: &Client, query: &str) -> Vec<String> {
    let res = c.get(&format!("/api/v1/conversations{query}")).await;
    ids(res.ok(200))
}

async fn agents_outside_an_inbox_get_404_by_id_and_by_filter(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let x = create_inbox(&admin, "售前", &[]).await;
    let y = create_inbox(&admin, "售后", &[agent.agent_id()]).await;
    let cx = create_conversation(&admin, id(&x), "你好，我想申请退款").await;
    let cy = create_conversation(&admin, id(&y), "发票开错了").await;
    let (px, py) = (conv_path(&cx), conv_path(&cy));

    // By id: every route answers 404, as for a conversation that does not exist.
    agent.get(&px).await.assert_error(404, "not_found");
    agent
        .patch(&px, json!({ "priority": "urgent" }))
        .await
        .assert_error(404, "not_found");
    agent
        .get(&format!("{px}/messages"))
        .await
        .assert_error(404, "not_found");
    agent
        .post(
            &format!("{px}/messages"),
            json!({ "direction": "note", "text": "偷看" }),
        )
        .await
        .assert_error(404, "not_found");
    agent
        .post(&format!("{px}/status"), json!({ "status": "resolved" }))
        .await
        .assert_error(404, "not_found");
    agent
        .post(
            &format!("{px}/assign"),
            json!({ "assignee_id": agent.agent_id() }),
        )
        .await
        .assert_error(404, "not_found");
    agent
        .post(&format!("{px}/tags"), json!({ "tags": ["偷看"] }))
        .await
        .assert_error(404, "not_found");
    agent
        .delete(&format!("{px}/tags/VIP"))
        .await
        .assert_error(404, "not_found");
    agent
        .post(&format!("{px}/merge"), json!({ "into_id": id(&cy) }))
        .await
        .assert_error(404, "not_found");
    agent
        .post(&format!("{py}/merge"), json!({ "into_id": id(&cx) }))
        .await
        .assert_error(404, "not_found");
    let unchanged = admin.get(&px).await;
    let unchanged = unchanged.ok(200);
    assert_eq!(unchanged["priority"], "medium");
    assert_eq!(unchanged["status"], "open");
    assert_eq!(unchanged["last_seq"], 1);
    assert!(unchanged["assignee_id"].is_null() && unchanged["merged_into_id"].is_null());
    assert_eq!(unchanged["tags"], json!([]));
    assert_eq!(
        admin
            .get(&format!("{py}/messages"))
            .await
            .ok(200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // By list and filter: it is not there.
    assert_eq!(list_ids(&agent, "").await, [id(&cy)]);
    assert!(
        list_ids(&agent, &format!("?inbox_id={}", id(&x)))
            .await
            .is_empty()
    );
    assert!(list_ids(&agent, "?q=退款").await.is_empty());
    let contact = cx["contact_id"].as_str().expect("contact");
    assert!(
        list_ids(&agent, &format!("?contact_id={contact}"))
            .await
            .is_empty()
    );
    // Nor is its customer: contacts follow inbox membership too.
    agent
        .get(&format!("/api/v1/contacts/{contact}/conversations"))
        .await
        .assert_error(404, "not_found");
    agent
        .get(&format!("/api/v1/contacts/{contact}"))
        .await
        .assert_error(404, "not_found");
    assert_eq!(ids(agent.get("/api/v1/inboxes").await.ok(200)), [id(&y)]);
    agent
        .get(&format!("/api/v1/inboxes/{}", id(&x)))
        .await
        .assert_error(404, "not_found");
    agent
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&x), "contact": { "name": "张三" } }),
        )
        .await
        .assert_error(422, "validation_failed");

    // Admins see everything.
    let all: HashSet<String> = list_ids(&admin, "").await.into_iter().collect();
    assert_eq!(
        all,
        HashSet::from([id(&cx).to_string(), id(&cy).to_string()])
    );
    assert_eq!(
        list_ids(&admin, &format!("?inbox_id={}", id(&x))).await,
        [id(&cx)]
    );

    // A member sees it, by id and by filter.
    let res = admin
        .patch(
            &format!("/api/v1/inboxes/{}", id(&x)),
            json!({ "member_ids": [agent.agent_id()] }),
        )
        .await;
    assert_eq!(res.ok(200)["member_ids"], json!([agent.agent_id()]));
    assert_eq!(agent.get(&px).await.ok(200)["id"], id(&cx));
    assert_eq!(
        list_ids(&agent, &format!("?inbox_id={}", id(&x))).await,
        [id(&cx)]
    );
    assert_eq!(list_ids(&agent, "?q=退款").await, [id(&cx)]);
    assert_eq!(list_ids(&agent, "").await.len(), 2);

    // And no longer once removed.
    admin
        .patch(
            &format!("/api/v1/inboxes/{}", id(&x)),
            json!({ "member_ids": [] }),
        )
        .await
        .ok(200);
    agent.get(&px).await.assert_error(404, "not_found");
}

async fn conversations_are_created_with_contact_first_message_and_sla(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let inbox = admin
        .post(
            "/api/v1/inboxes",
            json!({
                "kind": "widget",
                "name": "网站客服",
                "sla": { "first_response_minutes": 30, "resolution_minutes": 1440 },
                "member_ids": [agent.agent_id()],
            }),
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(inbox["sla"]["first_response_minutes"], 30);

    let res = agent
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": id(&inbox),
                "contact": {
                    "name": "王小明",
                    "email": "Wang@Example.cn",
                    "identities": [{ "kind": "wechat_openid", "value": "o6_abc123" }],
                },
                "subject": "退款申请",
                "priority": "high",
                "tags": ["退款"],
                "message": { "direction": "incoming", "text": "你好，我想申请退款", "external_id": "wx-1" },
            }),
        )
        .await;
    let v = res.ok(201).clone();
    let c = &v["conversation"];
    let m = &v["message"];
    let number = c["number"].as_i64().expect("number");
    assert!(number >= 1001, "{number}");
    assert_eq!(c["last_seq"], 1);
    assert_eq!(c["status"], "open");
    assert_eq!(c["priority"], "high");
    assert_eq!(c["subject"], "退款申请");
    assert_eq!(c["tags"], json!(["退款"]));
    assert!(c["assignee_id"].is_null() && c["first_response_at"].is_null());
    let created = ts(&c["created_at"]);
    assert_eq!(ts(&c["last_activity_at"]), created);
    assert_eq!(
        ts(&c["first_response_due_at"]) - created,
        chrono::Duration::minutes(30)
    );
    assert_eq!(
        ts(&c["resolution_due_at"]) - created,
        chrono::Duration::minutes(1440)
    );
    assert_eq!(m["seq"], 1);
    assert_eq!(m["conversation_id"], c["id"]);
    assert_eq!(m["direction"], "incoming");
    assert_eq!(m["sender_kind"], "contact");
    assert_eq!(m["sender_id"], c["contact_id"]);
    assert_eq!(m["text"], "你好，我想申请退款");
    assert_eq!(m["external_id"], "wx-1");

    // Persisted as answered.
    let got = agent.get(&conv_path(c)).await;
    assert_eq!(got.ok(200), c);
    let contact = agent
        .get(&format!(
            "/api/v1/contacts/{}",
            c["contact_id"].as_str().expect("id")
        ))
        .await;
    let contact = contact.ok(200);
    assert_eq!(contact["name"], "王小明");
    assert_eq!(contact["email"], "wang@example.cn");
    assert_eq!(
        contact["identities"],
        json!([
            { "kind": "email", "value": "wang@example.cn" },
            { "kind": "wechat_openid", "value": "o6_abc123" },
        ])
    );

    // A returning customer (same identity) is the same contact; numbers grow.
    let again = agent
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": id(&inbox),
                "contact": { "name": "小明", "identities": [{ "kind": "wechat_openid", "value": "o6_abc123" }] },
                "message": { "direction": "incoming", "text": "还在吗？" },
            }),
        )
        .await;
    let c2 = again.ok(201)["conversation"].clone();
    assert_eq!(c2["contact_id"], c["contact_id"]);
    assert_eq!(c2["number"], number + 1);

    // No SLA, an existing contact, an outgoing first message from the agent.
    let plain = create_inbox(&admin, "邮件", &[agent.agent_id()]).await;
    let res = agent
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": id(&plain),
                "contact_id": c["contact_id"],
                "message": { "direction": "outgoing", "text": "您好，您的退款已处理。" },
            }),
        )
        .await;
    let v3 = res.ok(201).clone();
    assert_eq!(v3["conversation"]["number"], number + 2);
    assert!(v3["conversation"]["first_response_due_at"].is_null());
    assert!(v3["conversation"]["resolution_due_at"].is_null());
    assert!(v3["conversation"]["first_response_at"].is_string());
    assert_eq!(v3["message"]["sender_kind"], "agent");
    assert_eq!(v3["message"]["sender_id"], agent.agent_id());
    // Without a message: last_seq 0 and no message in the answer.
    let res = agent
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&plain), "contact_id": c["contact_id"], "subject": "回访" }),
        )
        .await;
    let v4 = res.ok(201).clone();
    assert_eq!(v4["conversation"]["last_seq"], 0);
    assert!(v4["message"].is_null());

    // Refused, and nothing is created.
    let before = list_ids(&admin, "?limit=100").await.len();
    let bad = |body: Value| {
        let admin = admin.clone();
        async move { admin.post("/api/v1/conversations", body).await }
    };
    let res = bad(json!({ "inbox_id": id(&plain), "contact_id": c["contact_id"], "contact": { "name": "x" } })).await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "contact");
    let res = bad(json!({ "inbox_id": id(&plain) })).await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "contact_id");
    bad(json!({ "inbox_id": uuid::Uuid::now_v7(), "contact": { "name": "x" } }))
        .await
        .assert_error(422, "validation_failed");
    bad(json!({ "inbox_id": id(&plain), "contact_id": uuid::Uuid::now_v7() }))
        .await
        .assert_error(422, "validation_failed");
    bad(json!({ "inbox_id": id(&plain), "contact": { "name": "x" }, "team_id": uuid::Uuid::now_v7() }))
        .await
        .assert_error(422, "validation_failed");
    let outsider = s.create_agent("wang@kefu.test", "小王", Role::Agent).await;
    let res = bad(
        json!({ "inbox_id": id(&plain), "contact": { "name": "x" }, "assignee_id": id(&outsider) }),
    )
    .await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("not a member"), "{}", res.body);
    bad(json!({ "inbox_id": id(&plain), "contact": { "name": "x" }, "priority": "critical" }))
        .await
        .assert_error(422, "validation_failed");
    bad(json!({ "inbox_id": id(&plain), "contact": { "email": "not-an-email" } }))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(list_ids(&admin, "?limit=100").await.len(), before);
}

/// The console's sidebar badges: conversations per view, of one status or
/// of all, limited to the inboxes the caller is a member of.
async fn view_counts_follow_status_assignment_and_membership(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let mine_inbox = create_inbox(&admin, "售前", &[li.agent_id()]).await;
    let other = create_inbox(&admin, "内部", &[]).await;
    let counts = |c: &Client, q: &'static str| {
        let c = c.clone();
        async move {
            c.get(&format!("/api/v1/conversations/counts{q}"))
                .await
                .ok(200)
                .clone()
        }
    };
    let empty = counts(&li, "?status=open").await;
    assert_eq!(
        (
            empty["mine"].as_i64(),
            empty["unassigned"].as_i64(),
            empty["all"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(empty["statuses"]["open"], 0);

    let c1 = create_conversation(&li, id(&mine_inbox), "你好，我想申请退款").await;
    let c2 = create_conversation(&li, id(&mine_inbox), "快递还没到").await;
    let c3 = create_conversation(&li, id(&mine_inbox), "发票开错了").await;
    create_conversation(&admin, id(&other), "别人的收件箱").await;
    li.post(
        &format!("{}/assign", conv_path(&c1)),
        json!({ "assignee_id": li.agent_id() }),
    )
    .await
    .ok(200);
    li.post(
        &format!("{}/tags", conv_path(&c2)),
        json!({ "tags": ["VIP"] }),
    )
    .await
    .ok(200);
    li.post(
        &format!("{}/tags", conv_path(&c3)),
        json!({ "tags": ["VIP"] }),
    )
    .await
    .ok(200);
    li.post(
        &format!("{}/status", conv_path(&c3)),
        json!({ "status": "resolved" }),
    )
    .await
    .ok(200);

    // Open ones only: c1 (mine) and c2 (unassigned, VIP); c3 is resolved,
    // and the fourth is in an inbox Li is not a member of.
    let open = counts(&li, "?status=open").await;
    assert_eq!(open["mine"], 1);
    assert_eq!(open["unassigned"], 1);
    assert_eq!(open["all"], 2);
    assert_eq!(open["inboxes"][id(&mine_inbox)], 2);
    assert!(open["inboxes"].get(id(&other)).is_none());
    assert_eq!(open["tags"]["VIP"], 1);
    // The waiting statuses are always counted; resolved ones only when asked.
    assert_eq!(open["statuses"]["open"], 2);
    assert_eq!(open["statuses"]["pending"], 0);
    assert_eq!(open["statuses"]["snoozed"], 0);
    assert!(open["statuses"].get("resolved").is_none());
    let resolved = counts(&li, "?status=resolved").await;
    assert_eq!(
        (resolved["all"].as_i64(), resolved["unassigned"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(resolved["statuses"]["resolved"], 1);
    assert_eq!(resolved["statuses"]["open"], 2);
    assert_eq!(resolved["tags"]["VIP"], 1);

    let any = counts(&li, "").await;
    assert_eq!(
        (any["all"].as_i64(), any["unassigned"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(any["tags"]["VIP"], 2);
    assert_eq!(any["statuses"]["resolved"], 1);
    assert_eq!(any["statuses"]["closed"], 0);

    // An admin sees every inbox; Li's assignment is not the admin's "mine".
    let all = counts(&admin, "?status=open").await;
    assert_eq!(
        (
            all["all"].as_i64(),
            all["mine"].as_i64(),
            all["unassigned"].as_i64()
        ),
        (Some(3), Some(0), Some(2))
    );
    assert_eq!(all["inboxes"][id(&other)], 1);

    li.get("/api/v1/conversations/counts?status=done")
        .await
        .assert_error(400, "bad_request");
}

async fn conversations_are_filtered(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let a = create_inbox(&admin, "售前", &[li.agent_id()]).await;
    let b_inbox = create_inbox(&admin, "售后", &[li.agent_id()]).await;
    let team = admin
        .post("/api/v1/teams", json!({ "name": "售后组" }))
        .await
        .ok(201)
        .clone();
    let c1 = create_conversation(&li, id(&a), "你好，我想申请退款").await;
    let c2 = create_conversation(&li, id(&a), "My order has not ARRIVED yet (100%)").await;
    let c3 = create_conversation(&li, id(&b_inbox), "发票开错了").await;
    li.post(
        &format!("{}/assign", conv_path(&c1)),
        json!({ "assignee_id": li.agent_id() }),
    )
    .await
    .ok(200);
    li.patch(
        &conv_path(&c2),
        json!({ "team_id": id(&team), "subject": "Shipping delay" }),
    )
    .await
    .ok(200);
    li.post(
        &format!("{}/tags", conv_path(&c3)),
        json!({ "tags": ["VIP"] }),
    )
    .await
    .ok(200);
    li.post(
        &format!("{}/status", conv_path(&c3)),
        json!({ "status": "resolved" }),
    )
    .await
    .ok(200);

    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<_>>();
    let of = |cs: &[&Value]| cs.iter().map(|c| id(c).to_string()).collect::<HashSet<_>>();
    assert_eq!(list_ids(&li, "?status=resolved").await, [id(&c3)]);
    assert_eq!(set(list_ids(&li, "?status=open").await), of(&[&c1, &c2]));
    assert!(list_ids(&li, "?status=snoozed").await.is_empty());
    assert_eq!(
        list_ids(&li, &format!("?assignee_id={}", li.agent_id())).await,
        [id(&c1)]
    );
    assert_eq!(
        set(list_ids(&li, "?assignee_id=none").await),
        of(&[&c2, &c3])
    );
    assert_eq!(
        list_ids(&li, &format!("?inbox_id={}", id(&b_inbox))).await,
        [id(&c3)]
    );
    assert_eq!(
        list_ids(&li, &format!("?team_id={}", id(&team))).await,
        [id(&c2)]
    );
    assert_eq!(list_ids(&li, "?tag=VIP").await, [id(&c3)]);
    assert!(list_ids(&li, "?tag=vip-not").await.is_empty());
    let contact = c1["contact_id"].as_str().expect("contact");
    assert_eq!(
        list_ids(&li, &format!("?contact_id={contact}")).await,
        [id(&c1)]
    );
    // Text inside a message or the subject: Chinese, and ASCII in any case.
    assert_eq!(list_ids(&li, "?q=申请退款").await, [id(&c1)]);
    assert_eq!(list_ids(&li, "?q=arrived").await, [id(&c2)]);
    assert_eq!(list_ids(&li, "?q=ORDER%20HAS").await, [id(&c2)]);
    assert_eq!(list_ids(&li, "?q=shipping").await, [id(&c2)]);
    assert_eq!(list_ids(&li, "?q=100%25").await, [id(&c2)]);
    assert!(
        list_ids(&li, "?q=10_%25").await.is_empty(),
        "wildcards are literal"
    );
    assert!(list_ids(&li, "?q=不存在的词").await.is_empty());
    assert_eq!(
        list_ids(&li, "?q=%20%20").await.len(),
        3,
        "blank q is no filter"
    );
    // Filters combine.
    assert_eq!(
        list_ids(&li, &format!("?inbox_id={}&assignee_id=none", id(&a))).await,
        [id(&c2)]
    );
    assert!(
        list_ids(&li, &format!("?inbox_id={}&status=resolved", id(&a)))
            .await
            .is_empty()
    );

    li.get("/api/v1/conversations?assignee_id=somebody")
        .await
        .assert_error(400, "bad_request");
    li.get("/api/v1/conversations?status=done")
        .await
        .assert_error(400, "bad_request");
    li.get("/api/v1/conversations?inbox_id=not-a-uuid")
        .await
        .assert_error(400, "bad_request");
    li.get("/api/v1/conversations?limit=many")
        .await
        .assert_error(400, "bad_request");
}

async fn conversations_page_by_cursor_newest_activity_first(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = create_inbox(&admin, "售前", &[]).await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(create_conversation(&admin, id(&inbox), &format!("第{i}个问题")).await);
    }
    let base = format!("/api/v1/conversations?inbox_id={}&limit=3", id(&inbox));

    let pages = |admin: Client, base: String| async move {
        let mut pages: Vec<Vec<Value>> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("{base}&cursor={c}"),
                None => base.clone(),
            };
            let res = admin.get(&path).await;
            let page = res.ok(200).clone();
            pages.push(page["items"].as_array().expect("items").clone());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(pages.len() <= 10, "the cursor never ends");
        }
        pages
    };
    let got = pages(admin.clone(), base.clone()).await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let flat: Vec<Value> = got.concat();
    let order: Vec<&str> = flat.iter().map(id).collect();
    let newest_first: Vec<&str> = created.iter().rev().map(id).collect();
    assert_eq!(order, newest_first);
    assert_eq!(
        order.iter().collect::<HashSet<_>>().len(),
        7,
        "no duplicates"
    );
    for w in flat.windows(2) {
        assert!(ts(&w[0]["last_activity_at"]) >= ts(&w[1]["last_activity_at"]));
    }

    // Activity moves a conversation to the top.
    let oldest = &created[0];
    admin
        .post(
            &format!("{}/messages", conv_path(oldest)),
            json!({ "direction": "incoming", "text": "还有人吗？" }),
        )
        .await
        .ok(201);
    let got = pages(admin.clone(), base.clone()).await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(got[0][0]["id"], oldest["id"]);
    assert_eq!(got[0][0]["last_seq"], 2);
    assert_eq!(got[2][0]["id"], created[1]["id"]);

    // Limits are clamped; a cursor not from this server is refused.
    let res = admin
        .get(&format!(
            "/api/v1/conversations?inbox_id={}&limit=0",
            id(&inbox)
        ))
        .await;
    assert_eq!(res.ok(200)["items"].as_array().map(Vec::len), Some(1));
    let res = admin
        .get(&format!(
            "/api/v1/conversations?inbox_id={}&limit=1000",
            id(&inbox)
        ))
        .await;
    assert_eq!(res.ok(200)["items"].as_array().map(Vec::len), Some(7));
    assert!(res.body["next_cursor"].is_null());
    for bad in [
        "garbage",
        "123.not-a-uuid",
        "x.0190b8a4c2d37cc3a4c6f6f1a2b3c4d5",
        ".",
    ] {
        admin
            .get(&format!("{base}&cursor={bad}"))
            .await
            .assert_error(422, "validation_failed");
    }
}

async fn messages_are_gap_free_idempotent_and_reopen_the_conversation(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let inbox = create_inbox(&admin, "售前", &[li.agent_id()]).await;
    let c = create_conversation(&li, id(&inbox), "你好，我想申请退款").await;
    let path = conv_path(&c);
    let msgs = format!("{path}/messages");

    let reply = li
        .post(
            &msgs,
            json!({ "direction": "outgoing", "text": "您好，请提供订单号。" }),
        )
        .await;
    let reply = reply.ok(201).clone();
    assert_eq!(reply["seq"], 2);
    assert_eq!(reply["sender_kind"], "agent");
    assert_eq!(reply["sender_id"], li.agent_id());
    let conv = li.get(&path).await.ok(200).clone();
    assert_eq!(ts(&conv["first_response_at"]), ts(&reply["created_at"]));
    assert_eq!(conv["last_seq"], 2);

    let note = li
        .post(
            &msgs,
            json!({ "direction": "note", "text": "客户是老用户，优先处理", "metadata": { "source": "console" } }),
        )
        .await;
    let note = note.ok(201).clone();
    assert_eq!(note["seq"], 3);
    assert_eq!(note["direction"], "note");
    assert_eq!(note["metadata"], json!({ "source": "console" }));
    li.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "第二次回复" }),
    )
    .await
    .ok(201);
    let conv = li.get(&path).await.ok(200).clone();
    assert_eq!(
        ts(&conv["first_response_at"]),
        ts(&reply["created_at"]),
        "only the first reply sets first_response_at"
    );

    let first = li
        .post(
            &msgs,
            json!({ "direction": "incoming", "text": "订单号 2024-001", "external_id": "wx-msg-42" }),
        )
        .await;
    let first = first.ok(201).clone();
    assert_eq!(first["seq"], 5);
    assert_eq!(first["sender_kind"], "contact");
    assert_eq!(first["sender_id"], c["contact_id"]);
    // The same external id again: the first message, 200, nothing added.
    let resent = li
        .post(
            &msgs,
            json!({ "direction": "incoming", "text": "订单号 2024-001（重发）", "external_id": "wx-msg-42" }),
        )
        .await;
    assert_eq!(resent.ok(200)["id"], first["id"]);
    assert_eq!(resent.body["text"], "订单号 2024-001");
    assert_eq!(resent.body["seq"], 5);
    let list = li.get(&msgs).await.ok(200).clone();
    let seqs: Vec<i64> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(list[2]["direction"], "note", "notes are listed");
    assert_eq!(li.get(&path).await.ok(200)["last_seq"], 5);
    // The next message takes the next number: the resend left no gap.
    let next = li
        .post(&msgs, json!({ "direction": "note", "text": "已核实" }))
        .await;
    assert_eq!(next.ok(201)["seq"], 6);
    let after = li.get(&format!("{msgs}?after_seq=4")).await;
    let after_seqs: Vec<i64> = after
        .ok(200)
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(after_seqs, [5, 6]);
    let one = li.get(&format!("{msgs}?after_seq=0&limit=1")).await;
    assert_eq!(one.ok(200).as_array().map(Vec::len), Some(1));

    // Refused input.
    li.post(
        &msgs,
        json!({ "direction": "system", "text": "伪造的系统消息" }),
    )
    .await
    .assert_error(422, "validation_failed");
    let res = li
        .post(&msgs, json!({ "direction": "outgoing", "text": "  " }))
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "text");
    li.post(&msgs, json!({ "direction": "outgoing" }))
        .await
        .assert_error(422, "validation_failed");
    li.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "x", "metadata": [1] }),
    )
    .await
    .assert_error(422, "validation_failed");
    li.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "长".repeat(20_001) }),
    )
    .await
    .assert_error(422, "validation_failed");
    li.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "x", "sender_kind": "bot" }),
    )
    .await
    .assert_error(422, "validation_failed");
    li.post(
        &format!("/api/v1/conversations/{}/messages", uuid::Uuid::now_v7()),
        json!({ "direction": "outgoing", "text": "x" }),
    )
    .await
    .assert_error(404, "not_found");
    assert_eq!(li.get(&path).await.ok(200)["last_seq"], 6);

    // An incoming message reopens a resolved or snoozed conversation.
    let resolved = li
        .post(&format!("{path}/status"), json!({ "status": "resolved" }))
        .await;
    assert!(resolved.ok(200)["resolved_at"].is_string());
    li.post(&msgs, json!({ "direction": "outgoing", "text": "不客气" }))
        .await
        .ok(201);
    assert_eq!(
        li.get(&path).await.ok(200)["status"],
        "resolved",
        "a reply does not reopen"
    );
    li.post(
        &msgs,
        json!({ "direction": "incoming", "text": "还有一个问题" }),
    )
    .await
    .ok(201);
    let conv = li.get(&path).await.ok(200).clone();
    assert_eq!(conv["status"], "open");
    assert!(conv["resolved_at"].is_null());
    let until = chrono::Utc::now() + chrono::Duration::hours(2);
    li.post(
        &format!("{path}/status"),
        json!({ "status": "snoozed", "snoozed_until": until }),
    )
    .await
    .ok(200);
    li.post(&msgs, json!({ "direction": "incoming", "text": "在吗" }))
        .await
        .ok(201);
    let conv = li.get(&path).await.ok(200).clone();
    assert_eq!(conv["status"], "open");
    assert!(conv["snoozed_until"].is_null());
    assert_eq!(conv["last_seq"], 9);
}

async fn status_assignment_and_tags_change(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let wang = s.create_agent("wang@kefu.test", "小王", Role::Agent).await;
    let zhao = s.create_agent("zhao@kefu.test", "小赵", Role::Agent).await;
    let inbox = create_inbox(&admin, "售后", &[li.agent_id(), id(&zhao)]).await;
    let c = create_conversation(&li, id(&inbox), "你好，我想申请退款").await;
    let path = conv_path(&c);
    let status = format!("{path}/status");
    let assign = format!("{path}/assign");

    // Status.
    let res = li.post(&status, json!({ "status": "resolved" })).await;
    assert_eq!(res.ok(200)["status"], "resolved");
    assert!(res.body["resolved_at"].is_string());
    assert_eq!(li.get(&path).await.ok(200)["status"], "resolved");
    let res = li.post(&status, json!({ "status": "snoozed" })).await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "snoozed_until");
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    li.post(
        &status,
        json!({ "status": "snoozed", "snoozed_until": past }),
    )
    .await
    .assert_error(422, "validation_failed");
    let until = chrono::Utc::now() + chrono::Duration::days(1);
    li.post(
        &status,
        json!({ "status": "closed", "snoozed_until": until }),
    )
    .await
    .assert_error(422, "validation_failed");
    li.post(&status, json!({ "status": "done" }))
        .await
        .assert_error(422, "validation_failed");
    let res = li
        .post(
            &status,
            json!({ "status": "snoozed", "snoozed_until": until }),
        )
        .await;
    assert_eq!(res.ok(200)["status"], "snoozed");
    assert_eq!(
        ts(&res.body["snoozed_until"]).timestamp_millis(),
        until.timestamp_millis()
    );
    assert!(res.body["resolved_at"].is_null());
    let res = li.post(&status, json!({ "status": "pending" })).await;
    assert_eq!(res.ok(200)["status"], "pending");
    assert!(res.body["snoozed_until"].is_null());
    let listed = li.get("/api/v1/conversations?status=pending").await;
    assert_eq!(ids(listed.ok(200)), [id(&c)]);

    // Assignment: an active member (or an admin), nobody else.
    let res = li
        .post(&assign, json!({ "assignee_id": li.agent_id() }))
        .await;
    assert_eq!(res.ok(200)["assignee_id"], li.agent_id());
    let res = li.post(&assign, json!({ "assignee_id": id(&wang) })).await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("not a member"), "{}", res.body);
    li.post(&assign, json!({ "assignee_id": uuid::Uuid::now_v7() }))
        .await
        .assert_error(422, "validation_failed");
    li.patch(&path, json!({ "assignee_id": id(&wang) }))
        .await
        .assert_error(422, "validation_failed");
    admin
        .patch(
            &format!("/api/v1/agents/{}", id(&zhao)),
            json!({ "active": false }),
        )
        .await
        .ok(200);
    let res = li.post(&assign, json!({ "assignee_id": id(&zhao) })).await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("deactivated"), "{}", res.body);
    assert_eq!(li.get(&path).await.ok(200)["assignee_id"], li.agent_id());
    let res = li
        .post(&assign, json!({ "assignee_id": admin.agent_id() }))
        .await;
    assert_eq!(
        res.ok(200)["assignee_id"],
        admin.agent_id(),
        "admins see every inbox"
    );
    // PATCH without the field keeps the assignee; null unassigns.
    let res = li
        .patch(
            &path,
            json!({ "priority": "urgent", "subject": "  退款：订单 2024-001 " }),
        )
        .await;
    assert_eq!(res.ok(200)["assignee_id"], admin.agent_id());
    assert_eq!(res.body["priority"], "urgent");
    assert_eq!(res.body["subject"], "退款：订单 2024-001");
    let res = li.patch(&path, json!({ "assignee_id": null })).await;
    assert!(res.ok(200)["assignee_id"].is_null());
    assert_eq!(
        li.get("/api/v1/conversations?assignee_id=none")
            .await
            .ok(200)["items"][0]["id"],
        id(&c)
    );

    // Teams.
    let team = admin
        .post("/api/v1/teams", json!({ "name": "退款组" }))
        .await
        .ok(201)
        .clone();
    let res = li
        .post(
            &assign,
            json!({ "assignee_id": li.agent_id(), "team_id": id(&team) }),
        )
        .await;
    assert_eq!(res.ok(200)["team_id"], id(&team));
    assert_eq!(res.body["assignee_id"], li.agent_id());
    li.patch(&path, json!({ "team_id": uuid::Uuid::now_v7() }))
        .await
        .assert_error(422, "validation_failed");
    let res = li.patch(&path, json!({ "team_id": null })).await;
    assert!(res.ok(200)["team_id"].is_null());
    assert_eq!(res.body["assignee_id"], li.agent_id());

    // Tags: added (created when new, cleaned, without repeats) and removed.
    let res = li
        .post(
            &format!("{path}/tags"),
            json!({ "tags": ["VIP", " 退款 ", "VIP"] }),
        )
        .await;
    assert_eq!(res.ok(200)["tags"], json!(["VIP", "退款"]));
    let res = li
        .post(&format!("{path}/tags"), json!({ "tags": ["退款", "加急"] }))
        .await;
    let tags: HashSet<&str> = res.ok(200)["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t.as_str().expect("tag"))
        .collect();
    assert_eq!(tags, HashSet::from(["VIP", "退款", "加急"]));
    let all = li.get("/api/v1/tags").await;
    assert_eq!(all.ok(200).as_array().map(Vec::len), Some(3));
    li.post(&format!("{path}/tags"), json!({ "tags": ["a,b"] }))
        .await
        .assert_error(422, "validation_failed");
    li.post(&format!("{path}/tags"), json!({ "tags": "VIP" }))
        .await
        .assert_error(422, "validation_failed");
    let res = li.delete(&format!("{path}/tags/退款")).await;
    let tags: HashSet<&str> = res.ok(200)["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t.as_str().expect("tag"))
        .collect();
    assert_eq!(tags, HashSet::from(["VIP", "加急"]));
    assert_eq!(
        ids(li.get("/api/v1/conversations?tag=加急").await.ok(200)),
        [id(&c)]
    );
    assert!(ids(li.get("/api/v1/conversations?tag=退款").await.ok(200)).is_empty());
    li.post(&status, json!({ "status": "open" })).await.ok(200);
    li.patch(
        &format!("/api/v1/conversations/{}", uuid::Uuid::now_v7()),
        json!({ "priority": "low" }),
    )
    .await
    .assert_error(404, "not_found");
}

async fn merging_moves_messages_and_closes_the_source(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = create_inbox(&admin, "售后", &[]).await;
    let source = create_conversation(&admin, id(&inbox), "第一个问题：退款").await;
    let target = create_conversation(&admin, id(&inbox), "第二个问题：发票").await;
    let other = create_conversation(&admin, id(&inbox), "第三个问题").await;
    let (sp, tp) = (conv_path(&source), conv_path(&target));
    admin
        .post(
            &format!("{sp}/messages"),
            json!({ "direction": "outgoing", "text": "已收到退款申请", "external_id": "dup" }),
        )
        .await
        .ok(201);
    admin
        .post(&format!("{sp}/tags"), json!({ "tags": ["退款"] }))
        .await
        .ok(200);
    admin
        .post(
            &format!("{tp}/messages"),
            json!({ "direction": "note", "text": "同一个客户", "external_id": "dup" }),
        )
        .await
        .ok(201);
    admin
        .post(
            &format!("{tp}/messages"),
            json!({ "direction": "incoming", "text": "请合并处理" }),
        )
        .await
        .ok(201);

    admin
        .post(&format!("{sp}/merge"), json!({ "into_id": id(&source) }))
        .await
        .assert_error(422, "validation_failed");
    admin
        .post(
            &format!("{sp}/merge"),
            json!({ "into_id": uuid::Uuid::now_v7() }),
        )
        .await
        .assert_error(404, "not_found");

    let res = admin
        .post(&format!("{sp}/merge"), json!({ "into_id": id(&target) }))
        .await;
    let v = res.ok(200).clone();
    assert_eq!(v["source"]["status"], "closed");
    assert_eq!(v["source"]["merged_into_id"], id(&target));
    assert_eq!(v["target"]["id"], id(&target));
    assert_eq!(v["target"]["last_seq"], 6);
    assert_eq!(v["target"]["status"], "open");
    assert!(
        v["target"]["tags"]
            .as_array()
            .expect("tags")
            .contains(&json!("退款"))
    );
    // Persisted.
    let src = admin.get(&sp).await.ok(200).clone();
    assert_eq!(src["status"], "closed");
    assert_eq!(src["merged_into_id"], id(&target));
    assert_eq!(
        admin.get(&format!("{sp}/messages")).await.ok(200),
        &json!([])
    );
    let list = admin.get(&format!("{tp}/messages")).await.ok(200).clone();
    let list = list.as_array().expect("list");
    let seqs: Vec<i64> = list
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let texts: Vec<&str> = list
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        texts[..5],
        [
            "第二个问题：发票",
            "同一个客户",
            "请合并处理",
            "第一个问题：退款",
            "已收到退款申请"
        ]
    );
    assert!(list.iter().all(|m| m["conversation_id"] == id(&target)));
    let system = &list[5];
    assert_eq!(system["direction"], "system");
    assert_eq!(system["sender_kind"], "system");
    let number = source["number"].as_i64().expect("number");
    assert!(
        system["text"]
            .as_str()
            .expect("text")
            .contains(&format!("#{number}")),
        "{system}"
    );
    // The target kept its own message with the shared external id.
    assert_eq!(list[1]["external_id"], "dup");
    assert!(list[4]["external_id"].is_null());
    // A new message continues the target's numbering.
    let next = admin
        .post(
            &format!("{tp}/messages"),
            json!({ "direction": "outgoing", "text": "已合并" }),
        )
        .await;
    assert_eq!(next.ok(201)["seq"], 7);

    // The merged-away conversation takes no more messages.
    admin
        .post(
            &format!("{sp}/messages"),
            json!({ "direction": "outgoing", "text": "迟到的回复" }),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(
        admin.get(&format!("{sp}/messages")).await.ok(200),
        &json!([])
    );

    // Not twice, and not into a merged-away conversation.
    admin
        .post(&format!("{sp}/merge"), json!({ "into_id": id(&target) }))
        .await
        .assert_error(422, "validation_failed");
    admin
        .post(
            &format!("{}/merge", conv_path(&other)),
            json!({ "into_id": id(&source) }),
        )
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(
        admin.get(&conv_path(&other)).await.ok(200)["status"],
        "open"
    );
    let audit = admin
        .get("/api/v1/audit-log?action=conversation.merged")
        .await;
    let items = audit.ok(200)["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["target"], id(&source));
    assert_eq!(items[0]["details"]["into"], id(&target));
}

async fn concurrent_writes_keep_numbers_and_sequences_gap_free(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = create_inbox(&admin, "售前", &[]).await;

    // Conversations opened at once get distinct, consecutive numbers.
    let creates = (0..8).map(|i| {
        let (admin, inbox) = (admin.clone(), id(&inbox).to_string());
        async move { create_conversation(&admin, &inbox, &format!("并发咨询 {i}")).await }
    });
    let convs = futures::future::join_all(creates).await;
    let mut numbers: Vec<i64> = convs
        .iter()
        .map(|c| c["number"].as_i64().expect("number"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1001..=1008).collect::<Vec<_>>());

    // Messages sent at once get distinct, consecutive sequence numbers.
    let msgs = format!("{}/messages", conv_path(&convs[0]));
    let sends = (0..10).map(|i| {
        let (admin, msgs) = (admin.clone(), msgs.clone());
        async move {
            admin
                .post(
                    &msgs,
                    json!({ "direction": "outgoing", "text": format!("回复 {i}") }),
                )
                .await
        }
    });
    let mut seqs: Vec<i64> = futures::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.ok(201)["seq"].as_i64().expect("seq"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=11).collect::<Vec<_>>());

    // The same client message sent six times at once is stored once.
    let resends = (0..6).map(|_| {
        let (admin, msgs) = (admin.clone(), msgs.clone());
        async move {
            admin
                .post(
                    &msgs,
                    json!({ "direction": "incoming", "text": "重复提交", "external_id": "client-7" }),
                )
                .await
        }
    });
    let answers = futures::future::join_all(resends).await;
    let created: Vec<&Res> = answers.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "exactly one resend creates the message");
    assert!(answers.iter().all(|r| r.status == 201 || r.status == 200));
    assert!(
        answers
            .iter()
            .all(|r| r.body["id"] == created[0].body["id"])
    );
    assert_eq!(created[0].body["seq"], 12);

    let list = admin.get(&msgs).await.ok(200).clone();
    let all: Vec<i64> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(all, (1..=12).collect::<Vec<_>>());
    assert_eq!(
        admin.get(&conv_path(&convs[0])).await.ok(200)["last_seq"],
        12
    );
}

async fn recv(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("event stream open")
}

async fn events_are_published_after_commit(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = create_inbox(&admin, "售前", &[]).await;
    let mut rx = s.store.subscribe();

    let c = create_conversation(&admin, id(&inbox), "你好，我想申请退款").await;
    match recv(&mut rx).await {
        Event::ConversationCreated { conversation } => {
            assert_eq!(conversation.id.to_string(), id(&c));
            assert_eq!(conversation.last_seq, 1);
            // Published after the commit: the row is there for anyone.
            assert_eq!(
                s.store
                    .conversation(conversation.id)
                    .await
                    .expect("committed")
                    .number,
                conversation.number
            );
        }
        other => panic!("expected ConversationCreated, got {other:?}"),
    }
    match recv(&mut rx).await {
        Event::MessageCreated {
            inbox_id, message, ..
        } => {
            assert_eq!(inbox_id.to_string(), id(&inbox));
            assert_eq!(message.seq, 1);
            assert_eq!(message.text, "你好，我想申请退款");
            assert_eq!(message.conversation_id.to_string(), id(&c));
        }
        other => panic!("expected MessageCreated, got {other:?}"),
    }

    // A create that fails inside its transaction announces nothing; a
    // resend announces nothing; the next real change is the next event.
    admin
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": id(&inbox),
                "contact": { "name": "回滚" },
                "team_id": uuid::Uuid::now_v7(),
                "message": { "direction": "incoming", "text": "不会出现" },
            }),
        )
        .await
        .assert_error(422, "validation_failed");
    let msgs = format!("{}/messages", conv_path(&c));
    admin
        .post(
            &msgs,
            json!({ "direction": "note", "text": "一", "external_id": "n1" }),
        )
        .await
        .ok(201);
    admin
        .post(
            &msgs,
            json!({ "direction": "note", "text": "一", "external_id": "n1" }),
        )
        .await
        .ok(200);
    admin
        .post(&msgs, json!({ "direction": "note", "text": "二" }))
        .await
        .ok(201);
    let texts: Vec<String> = [recv(&mut rx).await, recv(&mut rx).await]
        .into_iter()
        .map(|e| match e {
            Event::MessageCreated { message, .. } => message.text,
            other => panic!("expected MessageCreated, got {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["一", "二"]);
    admin
        .post(
            &format!("{}/status", conv_path(&c)),
            json!({ "status": "resolved" }),
        )
        .await
        .ok(200);
    match recv(&mut rx).await {
        Event::ConversationUpdated { conversation } => {
            assert_eq!(conversation.status, kefu_core::ConversationStatus::Resolved);
        }
        other => panic!("expected ConversationUpdated, got {other:?}"),
    }
    assert!(matches!(
        rx.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Empty)
    ));
}

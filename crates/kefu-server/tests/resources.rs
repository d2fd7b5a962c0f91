//! The other resources over HTTP: contacts and their identities, inboxes,
//! teams, tags, canned responses, and attachments (upload, use, download).

#[macro_use]
mod common;

use common::*;
use kefu_core::Role;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

both_backends!(
    contacts_are_found_by_identity_text_and_tag,
    contacts_follow_inbox_membership,
    inboxes_are_managed_by_admins,
    teams_are_managed_by_admins,
    tags_are_created_by_anyone_and_managed_by_admins,
    canned_responses_are_managed_by_admins,
    attachments_are_uploaded_sent_and_downloaded_by_members,
);

async fn contacts_are_found_by_identity_text_and_tag(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    // Agents see the contacts of their inboxes' conversations: li opens one
    // with each contact he creates.
    let desk = create_inbox(&admin, "售后", &[li.agent_id()]).await;

    let res = li
        .post(
            "/api/v1/contacts",
            json!({
                "name": " 王小明 ",
                "email": "Wang.XM@Example.cn",
                "phone": "+86 138 0013 8000",
                "language": "zh-CN",
                "attributes": { "会员等级": "金卡" },
                "tags": ["VIP", "老客户"],
                "identities": [
                    { "kind": "wechat_openid", "value": " o6_abc123 " },
                    { "kind": "wechat_unionid", "value": "oU_union_1" },
                ],
            }),
        )
        .await;
    let wang = res.ok(201).clone();
    assert_eq!(wang["name"], "王小明");
    assert_eq!(wang["email"], "wang.xm@example.cn");
    assert_eq!(wang["attributes"], json!({ "会员等级": "金卡" }));
    assert_eq!(wang["tags"], json!(["VIP", "老客户"]));
    assert_eq!(
        wang["identities"],
        json!([
            { "kind": "email", "value": "wang.xm@example.cn" },
            { "kind": "wechat_openid", "value": "o6_abc123" },
            { "kind": "wechat_unionid", "value": "oU_union_1" },
        ])
    );
    let wang_path = format!("/api/v1/contacts/{}", id(&wang));
    let li_wang = open_with(&li, &desk, &wang).await;
    assert_eq!(li.get(&wang_path).await.ok(200), &wang);

    // PATCH: a field sent as null is cleared, a field left out is kept.
    let res = li
        .patch(&wang_path, json!({ "phone": null, "language": null }))
        .await;
    assert!(res.ok(200)["phone"].is_null(), "{}", res.body);
    assert!(res.body["language"].is_null());
    assert_eq!(res.body["name"], "王小明");
    assert_eq!(res.body["email"], "wang.xm@example.cn");
    li.patch(
        &wang_path,
        json!({ "phone": "+86 138 0013 8000", "language": "zh-CN" }),
    )
    .await
    .ok(200);

    // Lookup by identity: the importer's and the channels' way in.
    let found = li
        .get("/api/v1/contacts?identity_kind=wechat_openid&identity_value=o6_abc123")
        .await;
    assert_eq!(ids(found.ok(200)), [id(&wang)]);
    assert!(found.body["next_cursor"].is_null());
    let found = li
        .get("/api/v1/contacts?identity_kind=email&identity_value=WANG.XM@example.cn")
        .await;
    assert_eq!(ids(found.ok(200)), [id(&wang)]);
    let none = li
        .get("/api/v1/contacts?identity_kind=wechat_openid&identity_value=o6_other")
        .await;
    assert_eq!(none.ok(200)["items"], json!([]));
    li.get("/api/v1/contacts?identity_kind=WeChat&identity_value=x")
        .await
        .assert_error(422, "validation_failed");

    // An identity belongs to one contact only.
    let res = li
        .post(
            "/api/v1/contacts",
            json!({ "name": "冒名", "identities": [{ "kind": "wechat_openid", "value": "o6_abc123" }] }),
        )
        .await;
    res.assert_error(409, "conflict");
    assert!(res.message().contains("another contact"), "{}", res.body);
    li.post("/api/v1/contacts", json!({ "email": "wang.xm@example.cn" }))
        .await
        .assert_error(409, "conflict");
    let all = li.get("/api/v1/contacts").await;
    assert_eq!(ids(all.ok(200)), [id(&wang)], "nothing half-created");

    let li_contact = li
        .post(
            "/api/v1/contacts",
            json!({ "name": "李雷", "phone": "13900000000", "tags": ["投诉"] }),
        )
        .await
        .ok(201)
        .clone();
    open_with(&li, &desk, &li_contact).await;
    let lei_path = format!("/api/v1/contacts/{}", id(&li_contact));
    li.post(
        &format!("{lei_path}/identities"),
        json!({ "kind": "wechat_openid", "value": "o6_abc123" }),
    )
    .await
    .assert_error(409, "conflict");
    let res = li
        .post(
            &format!("{lei_path}/identities"),
            json!({ "kind": "wechat_external_userid", "value": "wmABC" }),
        )
        .await;
    assert_eq!(
        res.ok(200)["identities"],
        json!([{ "kind": "wechat_external_userid", "value": "wmABC" }])
    );
    li.post(
        &format!("/api/v1/contacts/{}/identities", uuid::Uuid::now_v7()),
        json!({ "kind": "wechat_openid", "value": "o6_nobody" }),
    )
    .await
    .assert_error(404, "not_found");
    let res = li
        .delete(&format!(
            "{lei_path}/identities/wechat_external_userid/wmABC"
        ))
        .await;
    assert_eq!(res.ok(200)["identities"], json!([]));
    li.delete(&format!(
        "{lei_path}/identities/wechat_external_userid/wmABC"
    ))
    .await
    .assert_error(404, "not_found");

    // PATCH replaces tags and attributes; an email taken by another is refused.
    let res = li
        .patch(
            &lei_path,
            json!({ "tags": ["已解决", "回访"], "attributes": { "城市": "上海" }, "language": "zh" }),
        )
        .await;
    let v = res.ok(200);
    assert_eq!(v["tags"], json!(["回访", "已解决"]));
    assert_eq!(v["attributes"], json!({ "城市": "上海" }));
    assert_eq!(v["name"], "李雷", "absent fields are kept");
    let got = li.get(&lei_path).await;
    assert_eq!(got.ok(200)["tags"], json!(["回访", "已解决"]));
    li.patch(&lei_path, json!({ "email": "WANG.XM@example.cn" }))
        .await
        .assert_error(409, "conflict");
    assert!(li.get(&lei_path).await.ok(200)["email"].is_null());
    let res = li
        .patch(&lei_path, json!({ "email": "lilei@example.cn" }))
        .await;
    assert_eq!(res.ok(200)["email"], "lilei@example.cn");
    let found = li
        .get("/api/v1/contacts?identity_kind=email&identity_value=lilei@example.cn")
        .await;
    assert_eq!(ids(found.ok(200)), [id(&li_contact)]);
    li.patch(&lei_path, json!({ "attributes": "金卡" }))
        .await
        .assert_error(422, "validation_failed");
    li.patch(
        &format!("/api/v1/contacts/{}", uuid::Uuid::now_v7()),
        json!({ "name": "无人" }),
    )
    .await
    .assert_error(404, "not_found");

    // Search by text and tag; pages.
    assert_eq!(
        ids(li.get("/api/v1/contacts?q=王").await.ok(200)),
        [id(&wang)]
    );
    assert_eq!(
        ids(li.get("/api/v1/contacts?q=WANG.XM").await.ok(200)),
        [id(&wang)]
    );
    assert_eq!(
        ids(li.get("/api/v1/contacts?q=13900").await.ok(200)),
        [id(&li_contact)]
    );
    assert_eq!(
        ids(li.get("/api/v1/contacts?tag=回访").await.ok(200)),
        [id(&li_contact)]
    );
    assert!(ids(li.get("/api/v1/contacts?tag=投诉").await.ok(200)).is_empty());
    let page1 = li.get("/api/v1/contacts?limit=1").await.ok(200).clone();
    assert_eq!(
        ids(&page1),
        [id(&li_contact)],
        "most recently updated first"
    );
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let page2 = li
        .get(&format!("/api/v1/contacts?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(page2.ok(200)), [id(&wang)]);
    assert!(page2.body["next_cursor"].is_null());
    li.get("/api/v1/contacts?cursor=nonsense")
        .await
        .assert_error(422, "validation_failed");
    li.get(&format!("/api/v1/contacts/{}", uuid::Uuid::now_v7()))
        .await
        .assert_error(404, "not_found");

    // A contact's conversations: only those the caller may see.
    let inbox = create_inbox(&admin, "售前", &[]).await;
    let conv = admin
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&inbox), "contact_id": id(&wang), "subject": "退款" }),
        )
        .await
        .ok(201)["conversation"]
        .clone();
    let convs = format!("{wang_path}/conversations");
    assert_eq!(ids(li.get(&convs).await.ok(200)), [id(&li_wang)]);
    assert_eq!(
        ids(admin.get(&convs).await.ok(200)),
        [id(&conv), id(&li_wang)]
    );
    admin
        .patch(
            &format!("/api/v1/inboxes/{}", id(&inbox)),
            json!({ "member_ids": [li.agent_id()] }),
        )
        .await
        .ok(200);
    assert_eq!(ids(li.get(&convs).await.ok(200)), [id(&conv), id(&li_wang)]);
    li.get(&format!(
        "/api/v1/contacts/{}/conversations",
        uuid::Uuid::now_v7()
    ))
    .await
    .assert_error(404, "not_found");
}

/// Opens a conversation in `inbox` with `contact` (as `c`); returns it.
async fn open_with(c: &Client, inbox: &Value, contact: &Value) -> Value {
    c.post(
        "/api/v1/conversations",
        json!({ "inbox_id": id(inbox), "contact_id": id(contact), "subject": "咨询" }),
    )
    .await
    .ok(201)["conversation"]
        .clone()
}

/// An agent sees and changes only the contacts that have a conversation in
/// one of their inboxes, like the conversations themselves: anyone else's
/// customer is left out of lists, searches and lookups and answers 404 to
/// reading, editing and identity changes, which change nothing. Admins see
/// everyone; membership given later opens the contact.
async fn contacts_follow_inbox_membership(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let member = s.agent_client("zhang@kefu.test", "小张", Role::Agent).await;
    let outsider = s.agent_client("zhao@kefu.test", "小赵", Role::Agent).await;
    let vip = create_inbox(&admin, "VIP 专线", &[member.agent_id()]).await;
    let other = create_inbox(&admin, "普通咨询", &[outsider.agent_id()]).await;
    let wang = admin
        .post(
            "/api/v1/contacts",
            json!({ "name": "王总", "email": "wang@bigcorp.example", "phone": "13800138000",
                    "tags": ["大客户"], "identities": [{ "kind": "wechat_unionid", "value": "oU_wang" }] }),
        )
        .await
        .ok(201)
        .clone();
    open_with(&admin, &vip, &wang).await;
    let path = format!("/api/v1/contacts/{}", id(&wang));

    // The member and the admin: everything.
    for c in [&member, &admin] {
        assert_eq!(c.get(&path).await.ok(200)["name"], "王总");
        assert_eq!(
            ids(c.get("/api/v1/contacts?q=王").await.ok(200)),
            [id(&wang)]
        );
        assert_eq!(
            ids(c
                .get("/api/v1/contacts?identity_kind=wechat_unionid&identity_value=oU_wang")
                .await
                .ok(200)),
            [id(&wang)]
        );
        assert_eq!(
            ids(c.get(&format!("{path}/conversations")).await.ok(200)).len(),
            1
        );
    }

    // The outsider: nothing, and nothing changes.
    assert!(ids(outsider.get("/api/v1/contacts").await.ok(200)).is_empty());
    for q in [
        "q=王",
        "q=13800",
        "q=BIGCORP",
        "tag=大客户",
        "identity_kind=wechat_unionid&identity_value=oU_wang",
        "identity_kind=email&identity_value=wang@bigcorp.example",
    ] {
        let found = outsider.get(&format!("/api/v1/contacts?{q}")).await;
        assert!(ids(found.ok(200)).is_empty(), "{q}: {}", found.body);
    }
    outsider.get(&path).await.assert_error(404, "not_found");
    outsider
        .get(&format!("{path}/conversations"))
        .await
        .assert_error(404, "not_found");
    outsider
        .patch(&path, json!({ "name": "改名", "phone": null }))
        .await
        .assert_error(404, "not_found");
    outsider
        .post(
            &format!("{path}/identities"),
            json!({ "kind": "wechat_openid", "value": "o6_thief" }),
        )
        .await
        .assert_error(404, "not_found");
    outsider
        .delete(&format!("{path}/identities/wechat_unionid/oU_wang"))
        .await
        .assert_error(404, "not_found");
    // Nor can a conversation of theirs claim the contact.
    let res = outsider
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&other), "contact_id": id(&wang) }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    let unchanged = admin.get(&path).await.ok(200).clone();
    assert_eq!(unchanged["name"], "王总");
    assert_eq!(unchanged["phone"], "13800138000");
    assert_eq!(
        unchanged["identities"],
        json!([{ "kind": "email", "value": "wang@bigcorp.example" }, { "kind": "wechat_unionid", "value": "oU_wang" }])
    );
    assert_eq!(
        ids(admin.get(&format!("{path}/conversations")).await.ok(200)).len(),
        1
    );

    // A contact the outsider creates is theirs once it has a conversation.
    let own = outsider
        .post("/api/v1/contacts", json!({ "name": "赵女士" }))
        .await
        .ok(201)
        .clone();
    open_with(&outsider, &other, &own).await;
    assert_eq!(
        ids(outsider.get("/api/v1/contacts").await.ok(200)),
        [id(&own)]
    );
    assert!(
        !ids(member.get("/api/v1/contacts").await.ok(200)).contains(&id(&own).to_string()),
        "and not the member's"
    );

    // Membership opens the contact; losing it closes it again.
    let vip_path = format!("/api/v1/inboxes/{}", id(&vip));
    admin
        .patch(
            &vip_path,
            json!({ "member_ids": [member.agent_id(), outsider.agent_id()] }),
        )
        .await
        .ok(200);
    assert_eq!(outsider.get(&path).await.ok(200)["name"], "王总");
    admin
        .patch(&vip_path, json!({ "member_ids": [member.agent_id()] }))
        .await
        .ok(200);
    outsider.get(&path).await.assert_error(404, "not_found");
}

async fn inboxes_are_managed_by_admins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let new = json!({
        "kind": "email",
        "name": "客服邮箱",
        "sla": { "first_response_minutes": 60 },
        "settings": { "address": "support@kefu.test" },
        "member_ids": [li.agent_id()],
    });
    li.post("/api/v1/inboxes", new.clone())
        .await
        .assert_error(403, "forbidden");
    let inbox = admin.post("/api/v1/inboxes", new).await.ok(201).clone();
    assert_eq!(inbox["kind"], "email");
    assert_eq!(
        inbox["sla"],
        json!({ "first_response_minutes": 60, "resolution_minutes": null })
    );
    assert_eq!(inbox["settings"]["address"], "support@kefu.test");
    assert_eq!(inbox["member_ids"], json!([li.agent_id()]));
    let path = format!("/api/v1/inboxes/{}", id(&inbox));
    assert_eq!(li.get(&path).await.ok(200), &inbox);

    for bad in [
        json!({ "kind": "fax", "name": "传真" }),
        json!({ "kind": "api", "name": "  " }),
        json!({ "kind": "api", "name": "x", "settings": [] }),
        json!({ "kind": "api", "name": "x", "sla": { "first_response_minutes": -5 } }),
        json!({ "kind": "api", "name": "x", "member_ids": [uuid::Uuid::now_v7()] }),
    ] {
        admin
            .post("/api/v1/inboxes", bad)
            .await
            .assert_error(422, "validation_failed");
    }
    assert_eq!(
        admin
            .get("/api/v1/inboxes")
            .await
            .ok(200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    li.patch(&path, json!({ "name": "改名" }))
        .await
        .assert_error(403, "forbidden");
    let res = admin
        .patch(
            &path,
            json!({ "name": "邮件支持", "sla": { "resolution_minutes": 2880 }, "settings": { "address": "help@kefu.test" } }),
        )
        .await;
    let v = res.ok(200);
    assert_eq!(v["name"], "邮件支持");
    assert_eq!(
        v["sla"],
        json!({ "first_response_minutes": null, "resolution_minutes": 2880 })
    );
    assert_eq!(v["settings"]["address"], "help@kefu.test");
    assert_eq!(
        v["member_ids"],
        json!([li.agent_id()]),
        "absent members are kept"
    );
    admin
        .patch(&path, json!({ "member_ids": [uuid::Uuid::now_v7()] }))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(
        admin.get(&path).await.ok(200)["member_ids"],
        json!([li.agent_id()])
    );
    let missing = format!("/api/v1/inboxes/{}", uuid::Uuid::now_v7());
    admin.get(&missing).await.assert_error(404, "not_found");
    admin
        .patch(&missing, json!({ "name": "无" }))
        .await
        .assert_error(404, "not_found");
    let audit = admin.get("/api/v1/audit-log?action=inbox.updated").await;
    assert_eq!(audit.ok(200)["items"].as_array().map(Vec::len), Some(1));
}

async fn teams_are_managed_by_admins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let new =
        json!({ "name": "售后组", "description": "处理退款和换货", "member_ids": [li.agent_id()] });
    li.post("/api/v1/teams", new.clone())
        .await
        .assert_error(403, "forbidden");
    let team = admin
        .post("/api/v1/teams", new.clone())
        .await
        .ok(201)
        .clone();
    assert_eq!(team["member_ids"], json!([li.agent_id()]));
    let res = admin.post("/api/v1/teams", new).await;
    res.assert_error(409, "conflict");
    assert!(res.message().contains("team"), "{}", res.body);
    admin
        .post("/api/v1/teams", json!({ "name": "" }))
        .await
        .assert_error(422, "validation_failed");
    admin
        .post(
            "/api/v1/teams",
            json!({ "name": "幽灵组", "member_ids": [uuid::Uuid::now_v7()] }),
        )
        .await
        .assert_error(422, "validation_failed");
    let other = admin
        .post("/api/v1/teams", json!({ "name": "售前组" }))
        .await
        .ok(201)
        .clone();

    let list = li.get("/api/v1/teams").await;
    assert_eq!(list.ok(200).as_array().map(Vec::len), Some(2));
    let path = format!("/api/v1/teams/{}", id(&team));
    assert_eq!(li.get(&path).await.ok(200)["description"], "处理退款和换货");
    li.patch(&path, json!({ "name": "改名" }))
        .await
        .assert_error(403, "forbidden");
    li.delete(&path).await.assert_error(403, "forbidden");
    admin
        .patch(&path, json!({ "name": "售前组" }))
        .await
        .assert_error(409, "conflict");
    let res = admin
        .patch(&path, json!({ "name": "退款组", "member_ids": [] }))
        .await;
    assert_eq!(res.ok(200)["name"], "退款组");
    assert_eq!(res.body["member_ids"], json!([]));
    assert_eq!(res.body["description"], "处理退款和换货");
    let res = admin.patch(&path, json!({ "description": null })).await;
    assert!(res.ok(200)["description"].is_null(), "{}", res.body);
    assert_eq!(res.body["name"], "退款组");

    // Deleting a team unassigns its conversations.
    let inbox = create_inbox(&admin, "售后", &[]).await;
    let c = create_conversation(&admin, id(&inbox), "换货").await;
    let cpath = format!("/api/v1/conversations/{}", id(&c));
    admin
        .patch(&cpath, json!({ "team_id": id(&team) }))
        .await
        .ok(200);
    admin.delete(&path).await.ok(204);
    assert!(admin.get(&cpath).await.ok(200)["team_id"].is_null());
    li.get(&path).await.assert_error(404, "not_found");
    admin.delete(&path).await.assert_error(404, "not_found");
    assert_eq!(ids(li.get("/api/v1/teams").await.ok(200)), [id(&other)]);
    let audit = admin.get("/api/v1/audit-log?action=team.deleted").await;
    assert_eq!(audit.ok(200)["items"][0]["target"], id(&team));
}

async fn tags_are_created_by_anyone_and_managed_by_admins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let vip = li
        .post(
            "/api/v1/tags",
            json!({ "name": " VIP ", "color": "#ff0000" }),
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(vip["name"], "VIP");
    let res = li.post("/api/v1/tags", json!({ "name": "VIP" })).await;
    res.assert_error(409, "conflict");
    assert!(res.message().contains("tag"), "{}", res.body);
    let res = li
        .post("/api/v1/tags", json!({ "name": "红色", "color": "red" }))
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "color");
    li.post("/api/v1/tags", json!({ "name": "a,b" }))
        .await
        .assert_error(422, "validation_failed");
    let refund = li
        .post("/api/v1/tags", json!({ "name": "退款" }))
        .await
        .ok(201)
        .clone();

    let path = format!("/api/v1/tags/{}", id(&vip));
    li.patch(&path, json!({ "name": "大客户" }))
        .await
        .assert_error(403, "forbidden");
    li.delete(&path).await.assert_error(403, "forbidden");
    admin
        .patch(&path, json!({ "name": "退款" }))
        .await
        .assert_error(409, "conflict");
    let res = admin.patch(&path, json!({ "name": "大客户" })).await;
    assert_eq!(res.ok(200)["name"], "大客户");
    assert_eq!(res.body["color"], "#ff0000");
    let res = admin.patch(&path, json!({ "color": null })).await;
    assert!(res.ok(200)["color"].is_null(), "{}", res.body);
    admin
        .patch(&path, json!({ "color": "#ff0000" }))
        .await
        .ok(200);

    // Renaming shows on conversations; deleting removes it from them.
    let inbox = create_inbox(&admin, "售后", &[]).await;
    let c = create_conversation(&admin, id(&inbox), "退款").await;
    let cpath = format!("/api/v1/conversations/{}", id(&c));
    admin
        .post(
            &format!("{cpath}/tags"),
            json!({ "tags": ["大客户", "退款"] }),
        )
        .await
        .ok(200);
    admin.delete(&path).await.ok(204);
    assert_eq!(admin.get(&cpath).await.ok(200)["tags"], json!(["退款"]));
    assert_eq!(ids(li.get("/api/v1/tags").await.ok(200)), [id(&refund)]);
    admin.delete(&path).await.assert_error(404, "not_found");
    admin
        .patch(&path, json!({ "name": "x" }))
        .await
        .assert_error(404, "not_found");
}

async fn canned_responses_are_managed_by_admins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let new = json!({ "shortcut": "/退款", "text": "您好，退款将在 3 个工作日内原路退回。" });
    li.post("/api/v1/canned-responses", new.clone())
        .await
        .assert_error(403, "forbidden");
    let canned = admin
        .post("/api/v1/canned-responses", new.clone())
        .await
        .ok(201)
        .clone();
    assert_eq!(canned["shortcut"], "退款");
    let res = admin
        .post(
            "/api/v1/canned-responses",
            json!({ "shortcut": "退款", "text": "另一个" }),
        )
        .await;
    res.assert_error(409, "conflict");
    assert!(res.message().contains("shortcut"), "{}", res.body);
    admin
        .post(
            "/api/v1/canned-responses",
            json!({ "shortcut": "two words", "text": "x" }),
        )
        .await
        .assert_error(422, "validation_failed");
    admin
        .post(
            "/api/v1/canned-responses",
            json!({ "shortcut": "hi", "text": " " }),
        )
        .await
        .assert_error(422, "validation_failed");
    let hello = admin
        .post(
            "/api/v1/canned-responses",
            json!({ "shortcut": "hello", "text": "Hello, how can I HELP?" }),
        )
        .await
        .ok(201)
        .clone();

    let list = li.get("/api/v1/canned-responses").await;
    assert_eq!(ids(list.ok(200)), [id(&hello), id(&canned)]);
    assert_eq!(
        ids(li.get("/api/v1/canned-responses?q=工作日").await.ok(200)),
        [id(&canned)]
    );
    assert_eq!(
        ids(li.get("/api/v1/canned-responses?q=help").await.ok(200)),
        [id(&hello)]
    );
    assert!(ids(li.get("/api/v1/canned-responses?q=nothing").await.ok(200)).is_empty());
    let path = format!("/api/v1/canned-responses/{}", id(&canned));
    assert_eq!(li.get(&path).await.ok(200), &canned);
    li.patch(&path, json!({ "text": "改了" }))
        .await
        .assert_error(403, "forbidden");
    li.delete(&path).await.assert_error(403, "forbidden");
    admin
        .patch(&path, json!({ "shortcut": "hello" }))
        .await
        .assert_error(409, "conflict");
    let res = admin
        .patch(&path, json!({ "text": "您好，退款已受理。" }))
        .await;
    assert_eq!(res.ok(200)["text"], "您好，退款已受理。");
    assert_eq!(res.body["shortcut"], "退款");
    admin.delete(&path).await.ok(204);
    li.get(&path).await.assert_error(404, "not_found");
    admin.delete(&path).await.assert_error(404, "not_found");
}

fn file_form(name: &str, mime: &str, bytes: Vec<u8>) -> Form {
    let part = Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .expect("mime");
    Form::new().text("note", "ignored").part("file", part)
}

async fn upload(c: &Client, form: Form) -> Res {
    c.send(
        c.request(Method::POST, "/api/v1/attachments")
            .multipart(form),
    )
    .await
}

/// Downloads raw bytes; the status, headers and bytes.
async fn download(c: &Client, id: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = c
        .request(Method::GET, &format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .expect("download");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

async fn attachments_are_uploaded_sent_and_downloaded_by_members(b: Backend) {
    let mut cfg = config();
    cfg.max_upload_bytes = 64 * 1024;
    let s = TestServer::start_with(b, cfg).await;
    let admin = s.admin().await;
    let li = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let wang = s.agent_client("wang@kefu.test", "小王", Role::Agent).await;
    let inbox = create_inbox(&admin, "售后", &[li.agent_id()]).await;
    let c = create_conversation(&li, id(&inbox), "你好，我想申请退款").await;
    let msgs = format!("/api/v1/conversations/{}/messages", id(&c));

    let pdf: Vec<u8> = [b"%PDF-1.4\n".as_slice(), "发票 №2024-001\n".as_bytes()]
        .concat()
        .into_iter()
        .cycle()
        .take(40 * 1024)
        .collect();
    let res = upload(&li, file_form("发票.pdf", "application/pdf", pdf.clone())).await;
    let att = res.ok(201).clone();
    assert_eq!(att["filename"], "发票.pdf");
    assert_eq!(att["content_type"], "application/pdf");
    assert_eq!(att["size"], pdf.len());
    assert_eq!(att["sha256"].as_str().map(str::len), Some(64));

    // Before it is sent: its uploader (and admins) only.
    let (status, _, bytes) = download(&li, id(&att)).await;
    assert_eq!((status, bytes.len()), (200, pdf.len()));
    assert_eq!(download(&admin, id(&att)).await.0, 200);
    assert_eq!(download(&wang, id(&att)).await.0, 404);

    let res = li
        .post(
            &msgs,
            json!({ "direction": "outgoing", "text": "", "attachment_ids": [id(&att)] }),
        )
        .await;
    let m = res.ok(201).clone();
    assert_eq!(m["seq"], 2);
    assert_eq!(m["attachments"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["attachments"][0]["id"], att["id"]);
    assert_eq!(m["attachments"][0]["filename"], "发票.pdf");
    let listed = li.get(&msgs).await;
    assert_eq!(listed.ok(200)[1]["attachments"][0]["id"], att["id"]);

    // Sent once only; unknown ids are refused; nothing is added.
    li.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "再发一次", "attachment_ids": [id(&att)] }),
    )
    .await
    .assert_error(422, "validation_failed");
    li.post(
        &msgs,
        json!({ "direction": "outgoing", "text": "x", "attachment_ids": [uuid::Uuid::now_v7()] }),
    )
    .await
    .assert_error(422, "validation_failed");
    let conv = li.get(&format!("/api/v1/conversations/{}", id(&c))).await;
    assert_eq!(conv.ok(200)["last_seq"], 2);
    assert_eq!(
        li.get(&msgs).await.ok(200).as_array().map(Vec::len),
        Some(2)
    );

    // Members download it, with its name intact; others get 404.
    let (status, headers, bytes) = download(&li, id(&att)).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, pdf);
    let header = |h: &reqwest::header::HeaderMap, n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header(&headers, "content-type"), "application/pdf");
    assert_eq!(
        header(&headers, "content-disposition"),
        "inline; filename*=UTF-8''%E5%8F%91%E7%A5%A8.pdf"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let (status, _, bytes) = download(&wang, id(&att)).await;
    assert_eq!(status, 404);
    let err: Value = serde_json::from_slice(&bytes).expect("JSON error");
    assert_eq!(err["error"]["code"], "not_found");
    assert_eq!(download(&admin, id(&att)).await.0, 200);
    assert_eq!(
        download(&li, &uuid::Uuid::now_v7().to_string()).await.0,
        404
    );

    // Active content is never served inline.
    let html = upload(
        &li,
        file_form(
            "../页面.html",
            "text/html",
            b"<script>alert(1)</script>".to_vec(),
        ),
    )
    .await
    .ok(201)
    .clone();
    assert_eq!(html["filename"], "页面.html");
    let (status, headers, _) = download(&li, id(&html)).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    assert!(header(&headers, "content-disposition").starts_with("attachment;"));

    // Too large, no file, no credentials, no CSRF header.
    let res = upload(
        &li,
        file_form(
            "大文件.bin",
            "application/octet-stream",
            vec![7u8; 65 * 1024],
        ),
    )
    .await;
    res.assert_error(413, "payload_too_large");
    upload(&li, Form::new().text("note", "没有文件"))
        .await
        .assert_error(400, "bad_request");
    upload(
        &s.client(),
        file_form("a.txt", "text/plain", b"hi".to_vec()),
    )
    .await
    .assert_error(401, "unauthorized");
    let mut no_csrf = li.clone();
    no_csrf.csrf = None;
    upload(&no_csrf, file_form("a.txt", "text/plain", b"hi".to_vec()))
        .await
        .assert_error(403, "forbidden");
    let res = li
        .send(
            li.request(Method::POST, "/api/v1/attachments")
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    res.assert_error(400, "bad_request");
}

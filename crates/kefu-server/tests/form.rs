//! The H5 form channel over HTTP, on SQLite and PostgreSQL: the page and its
//! JSON twin create tickets an agent sees; bad input is shown again with
//! what was typed; CORS per inbox; honeypot, rate limit, challenge and
//! upload limits; the private status link and its reply box.

// Test helpers unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use kefu_core::Role;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

both_backends!(
    form_settings_are_checked_by_the_inbox_api,
    a_submitted_form_becomes_a_ticket_agents_see,
    refused_fields_are_shown_again_with_what_was_typed,
    the_json_api_answers_only_allowed_origins,
    a_filled_honeypot_looks_like_success_but_stores_nothing,
    submissions_are_rate_limited_per_ip,
    the_challenge_must_be_right_fresh_and_unused,
    uploads_are_limited_by_count_size_and_sniffed_type,
    the_status_link_shows_public_messages_and_takes_replies,
    customers_who_gave_an_email_get_replies_by_mail_and_answer_by_mail,
    status_links_expire_and_agents_can_revoke_them,
    a_limited_client_is_refused_before_its_body_is_read,
);

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

/// A form inbox (slug `help` unless the settings name another), with the
/// admin as a member.
async fn form_inbox(admin: &Client, form: Value) -> Value {
    admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "form", "name": "售后服务", "member_ids": [admin.agent_id()], "settings": { "form": form } }),
        )
        .await
        .ok(201)
        .clone()
}

/// What lies between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {html}"))
        + start.len();
    let len = html[from..].find(end).expect("end marker");
    &html[from..from + len]
}

/// The sum a question like `3 + 4` asks for.
fn sum(question: &str) -> String {
    let (a, b) = question.split_once(" + ").expect("a sum");
    (a.trim().parse::<u32>().unwrap() + b.trim().parse::<u32>().unwrap()).to_string()
}

/// A fresh challenge from the page: (token, right answer).
async fn page_challenge(c: &Client, slug: &str) -> (String, String) {
    let res = c.get(&format!("/f/{slug}")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let html = res.body.as_str().expect("HTML").to_string();
    let token = between(&html, r#"name="challenge_token" value=""#, "\"").to_string();
    let question = between(&html, "验证：", " = ?").to_string();
    (token, sum(&question))
}

/// A fresh challenge from the JSON API: (token, right answer).
async fn api_challenge(c: &Client, slug: &str) -> (String, String) {
    let schema = c.get(&format!("/api/form/v1/{slug}")).await;
    let ch = &schema.ok(200)["challenge"];
    (
        ch["token"].as_str().unwrap().to_string(),
        sum(ch["question"].as_str().unwrap()),
    )
}

async fn post_form(c: &Client, slug: &str, fields: &[(&str, &str)]) -> Res {
    c.send(
        c.request(reqwest::Method::POST, &format!("/f/{slug}"))
            .form(fields),
    )
    .await
}

async fn post_json(c: &Client, slug: &str, body: Value) -> Res {
    c.post(&format!("/api/form/v1/{slug}"), body).await
}

async fn conversations_in(admin: &Client, inbox: &Value) -> Vec<Value> {
    let res = admin
        .get(&format!("/api/v1/conversations?inbox_id={}", id(inbox)))
        .await;
    res.ok(200)["items"].as_array().unwrap().clone()
}

fn html(res: &Res) -> &str {
    res.body
        .as_str()
        .unwrap_or_else(|| panic!("not HTML: {}", res.body))
}

/// The status page's path from a receipt page.
fn status_path(receipt: &str) -> String {
    let url = between(receipt, r#"id="status-link" href=""#, "\"");
    let at = url.find("/s/").expect("a status path");
    url[at..].to_string()
}

async fn form_settings_are_checked_by_the_inbox_api(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    // No settings: a random slug and the default fields.
    let plain = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "form", "name": "默认表单" }),
        )
        .await;
    let form = &plain.ok(201)["settings"]["form"];
    let slug = form["slug"].as_str().unwrap();
    assert_eq!(slug.len(), 10);
    let names: Vec<&str> = form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["name", "email", "phone", "message"]);
    assert_eq!(s.client().get(&format!("/f/{slug}")).await.status, 200);

    let bad = admin
        .post("/api/v1/inboxes", json!({ "kind": "form", "name": "x", "settings": { "form": { "slug": "ok-slug", "fields": [{ "name": "kind", "type": "select" }] } } }))
        .await;
    bad.assert_error(422, "validation_failed");
    assert_eq!(
        bad.body["error"]["field"],
        "settings.form.fields[0].options"
    );
    let bad = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "form", "name": "x", "settings": { "form": { "slug": "有空格 的" } } }),
        )
        .await;
    assert_eq!(
        bad.assert_error(422, "validation_failed").body["error"]["field"],
        "settings.form.slug"
    );

    let help = form_inbox(&admin, json!({ "slug": "help" })).await;
    let taken = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "form", "name": "y", "settings": { "form": { "slug": "HELP" } } }),
        )
        .await;
    assert!(
        taken
            .assert_error(422, "validation_failed")
            .message()
            .contains("taken")
    );

    // Updating moves the public address; the old one is gone.
    let moved = admin
        .patch(
            &format!("/api/v1/inboxes/{}", id(&help)),
            json!({ "settings": { "form": { "slug": "aftersales", "title": "售后申请" } } }),
        )
        .await;
    assert_eq!(moved.ok(200)["settings"]["form"]["slug"], "aftersales");
    let visitor = s.client();
    assert_eq!(visitor.get("/f/help").await.status, 404);
    let page = visitor.get("/f/aftersales").await;
    assert!(html(&page).contains("售后申请"));
    let bad = admin
        .patch(&format!("/api/v1/inboxes/{}", id(&help)), json!({ "settings": { "form": { "slug": "aftersales", "cors_origins": ["not an origin"] } } }))
        .await;
    assert_eq!(
        bad.assert_error(422, "validation_failed").body["error"]["field"],
        "settings.form.cors_origins"
    );
    // Widget keys are not rotated over a form's slug.
    admin
        .post(&format!("/api/v1/inboxes/{}/widget", id(&help)), json!({}))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(visitor.get("/f/aftersales").await.status, 200);
    // Other kinds do not get form settings checked, and have no form page.
    let api = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "api", "name": "api", "settings": { "form": 1 } }),
        )
        .await;
    api.ok(201);
    assert_eq!(visitor.get("/f/nothing-here").await.status, 404);
}

async fn a_submitted_form_becomes_a_ticket_agents_see(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = form_inbox(&admin, json!({
        "slug": "help", "title": "售后服务", "success_text": "我们会在一个工作日内回复。",
        "fields": [
            { "name": "name", "type": "text", "required": true },
            { "name": "email", "type": "email" },
            { "name": "phone", "type": "phone" },
            { "name": "kind", "label": "问题类型", "type": "select", "options": ["退款", "换货"], "required": true },
            { "name": "message", "type": "textarea", "required": true },
        ],
    }))
    .await;
    let mut events = s.store.subscribe();
    let customer = s.client();
    let (token, answer) = page_challenge(&customer, "help").await;
    let res = post_form(
        &customer,
        "help",
        &[
            ("name", "王小明"),
            ("email", "Wang@Example.cn"),
            ("phone", "+86 138 0013 8000"),
            ("kind", "退款"),
            ("message", "订单 12345 没有收到\r\n请帮忙查一下"),
            ("website", ""),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let receipt = html(&res);
    assert!(receipt.contains("提交成功") && receipt.contains("我们会在一个工作日内回复。"));
    let number: i64 = between(receipt, r##"id="ticket-number">#"##, "<")
        .parse()
        .unwrap();

    // The console hears of it at once, through the store's event stream.
    let created = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if let Ok(kefu_core::Event::ConversationCreated { conversation }) = events.recv().await
            {
                return conversation;
            }
        }
    })
    .await
    .expect("a ConversationCreated event");
    assert_eq!(created.number, number);
    assert_eq!(created.inbox_id.to_string(), id(&inbox));

    let list = conversations_in(&admin, &inbox).await;
    assert_eq!(list.len(), 1);
    let conversation = &list[0];
    assert_eq!(conversation["number"], number);
    assert_eq!(conversation["subject"], "订单 12345 没有收到");
    let messages = admin
        .get(&format!(
            "/api/v1/conversations/{}/messages",
            id(conversation)
        ))
        .await;
    let first = &messages.ok(200).as_array().unwrap()[0];
    assert_eq!(first["direction"], "incoming");
    assert_eq!(
        first["text"],
        "姓名：王小明\n邮箱：wang@example.cn\n手机号：+86 138 0013 8000\n问题类型：退款\n问题描述：\n订单 12345 没有收到\n请帮忙查一下"
    );
    assert_eq!(first["metadata"]["form"]["slug"], "help");
    assert_eq!(first["metadata"]["form"]["lang"], "zh-CN");
    assert_eq!(first["metadata"]["form"]["fields"]["kind"], "退款");
    assert_eq!(
        first["metadata"]["form"]["fields"]["email"],
        "wang@example.cn"
    );
    let contact = admin
        .get(&format!(
            "/api/v1/contacts/{}",
            conversation["contact_id"].as_str().unwrap()
        ))
        .await;
    let contact = contact.ok(200);
    assert_eq!(
        (contact["name"].as_str(), contact["email"].as_str()),
        (Some("王小明"), Some("wang@example.cn"))
    );
    assert_eq!(contact["phone"], "+86 138 0013 8000");
    assert!(
        contact["identities"]
            .as_array()
            .unwrap()
            // The key form the importer also uses (kefu_core::keys): an
            // imported customer with 13800138000 is this contact.
            .contains(&json!({ "kind": "phone", "value": "13800138000" }))
    );

    // The same customer again (by phone, through the JSON API, in English):
    // the same contact, a second ticket.
    let (token, answer) = api_challenge(&customer, "help").await;
    let res = customer
        .send(customer.request(reqwest::Method::POST, "/api/form/v1/help").header("accept-language", "en-US,en;q=0.9").json(&json!({
            "name": "Xiaoming", "phone": "+86 138-0013-8000", "kind": "换货", "message": "Second question",
            "challenge_token": token, "challenge_answer": answer,
        })))
        .await;
    let created = res.ok(201);
    assert!(created["ticket_number"].as_i64().unwrap() > number);
    assert!(
        created["status_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/s/s1.", s.base))
    );
    let list = conversations_in(&admin, &inbox).await;
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0]["contact_id"], list[1]["contact_id"],
        "matched by phone"
    );
    let messages = admin
        .get(&format!("/api/v1/conversations/{}/messages", id(&list[0])))
        .await;
    assert!(
        messages.ok(200)[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Name: Xiaoming\n")
    );
}

async fn refused_fields_are_shown_again_with_what_was_typed(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = form_inbox(
        &admin,
        json!({ "slug": "help", "fields": [
            { "name": "name", "type": "text", "required": true },
            { "name": "email", "type": "email" },
            { "name": "phone", "type": "phone" },
            { "name": "order", "label": "订单号", "type": "text", "max_len": 8 },
            { "name": "message", "type": "textarea", "required": true },
        ]}),
    )
    .await;
    let customer = s.client();
    let (token, answer) = page_challenge(&customer, "help").await;
    let typed = [
        ("name", "<b>王</b> & \"小明\""),
        ("email", "wang@"),
        ("phone", ""),
        ("order", "123456789"),
        ("message", "第一行\n<script>alert(1)</script>"),
        ("challenge_token", &token),
        ("challenge_answer", &answer),
    ];
    let res = post_form(&customer, "help", &typed).await;
    assert_eq!(res.status, 422);
    let page = html(&res);
    // Every message at its field, and everything typed is back, escaped.
    assert!(page.contains("邮箱地址格式不对"), "{page}");
    assert!(page.contains("太长了：最多 8 个字"));
    assert!(
        page.contains(r#"value="&lt;b&gt;王&lt;/b&gt; &amp; &quot;小明&quot;""#),
        "{page}"
    );
    assert!(page.contains(r#"value="wang@""#));
    assert!(page.contains(r#"value="123456789""#));
    assert!(page.contains("第一行\n&lt;script&gt;alert(1)&lt;/script&gt;</textarea>"));
    assert!(!page.contains("<script>alert(1)"));
    // The challenge was right: it is kept, with its answer.
    assert!(page.contains(&format!(r#"name="challenge_token" value="{token}""#)));
    assert!(page.contains(&format!(r#"name="challenge_answer" value="{answer}""#)));
    assert!(conversations_in(&admin, &inbox).await.is_empty());

    // Neither email nor phone: the form says so at the email field.
    let res = post_form(
        &customer,
        "help",
        &[
            ("name", "王"),
            ("message", "hi"),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert!(html(&res).contains("请填写邮箱或手机号"));
    // In English for an English browser.
    let res = customer
        .send(
            customer
                .request(reqwest::Method::POST, "/f/help")
                .header("accept-language", "en")
                .form(&[("name", ""), ("message", "x")]),
        )
        .await;
    assert_eq!(res.status, 422);
    assert!(html(&res).contains("Required") && html(&res).contains("Answer the check question"));

    // The JSON API answers 422 with a message per field.
    let res = post_json(
        &customer,
        "help",
        json!({ "name": "", "email": "bad", "message": 5, "extra": "x" }),
    )
    .await;
    let e = &res.assert_error(422, "validation_failed").body["error"]["fields"];
    assert_eq!(e["name"], "必填");
    assert_eq!(e["email"], "邮箱地址格式不对");
    assert_eq!(e["message"], "请填写文字");
    assert_eq!(e["extra"], "表单中没有这一项");
    assert_eq!(e["challenge_answer"], "请回答验证题");
    assert!(conversations_in(&admin, &inbox).await.is_empty());
}

async fn the_json_api_answers_only_allowed_origins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    form_inbox(
        &admin,
        json!({ "slug": "help", "cors_origins": ["https://shop.example.cn"] }),
    )
    .await;
    let other = form_inbox(&admin, json!({ "slug": "other" })).await;
    let c = s.client();
    let preflight = |origin: &'static str, slug: &'static str| {
        let c = c.clone();
        async move {
            c.send(
                c.request(reqwest::Method::OPTIONS, &format!("/api/form/v1/{slug}"))
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "content-type"),
            )
            .await
        }
    };
    let ok = preflight("https://shop.example.cn", "help").await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://shop.example.cn")
    );
    assert!(
        ok.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("content-type")
    );
    for (origin, slug) in [
        ("https://evil.example", "help"),
        ("https://shop.example.cn", "other"),
    ] {
        let refused = preflight(origin, slug).await;
        assert_eq!(
            refused.header("access-control-allow-origin"),
            None,
            "{origin} {slug}"
        );
        assert_eq!(refused.header("access-control-allow-methods"), None);
    }
    let get = |origin: &'static str, slug: &'static str| {
        let c = c.clone();
        async move {
            c.send(
                c.request(reqwest::Method::GET, &format!("/api/form/v1/{slug}"))
                    .header("origin", origin),
            )
            .await
        }
    };
    let ok = get("https://shop.example.cn", "help").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://shop.example.cn")
    );
    assert!(
        ok.header("vary")
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );
    assert_eq!(ok.body["fields"][0]["label"], "姓名");
    assert_eq!(ok.body["honeypot"], "website");
    assert!(
        ok.body["challenge"]["token"]
            .as_str()
            .unwrap()
            .starts_with("fc1.")
    );
    assert_eq!(
        get("https://evil.example", "help")
            .await
            .header("access-control-allow-origin"),
        None
    );
    assert_eq!(
        get("https://shop.example.cn", "other")
            .await
            .header("access-control-allow-origin"),
        None
    );

    // A POST from the allowed origin carries the header on its answer too.
    let (token, answer) = api_challenge(&c, "help").await;
    let res = c
        .send(c.request(reqwest::Method::POST, "/api/form/v1/help").header("origin", "https://shop.example.cn").json(&json!({
            "name": "李雷", "email": "li@example.cn", "message": "商城下单的问题", "challenge_token": token, "challenge_answer": answer,
        })))
        .await;
    assert!(res.ok(201)["ticket_number"].as_i64().is_some());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://shop.example.cn")
    );
    assert!(conversations_in(&admin, &other).await.is_empty());
    // The JSON endpoint is in the OpenAPI document like every other route.
    let spec = c.get("/api/openapi.json").await;
    let path = &spec.ok(200)["paths"]["/api/form/v1/{slug}"];
    assert!(
        path["get"].is_object() && path["post"].is_object(),
        "{path}"
    );
    // Not a form: 404 in the API's error shape.
    c.get("/api/form/v1/nothing")
        .await
        .assert_error(404, "not_found");
}

async fn a_filled_honeypot_looks_like_success_but_stores_nothing(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = form_inbox(&admin, json!({ "slug": "help" })).await;
    let bot = s.client();
    let (token, answer) = page_challenge(&bot, "help").await;
    let res = post_form(
        &bot,
        "help",
        &[
            ("name", "Cheap pills"),
            ("email", "spam@example.com"),
            ("message", "buy now"),
            ("website", "http://spam.example"),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert_eq!(res.status, 200);
    let receipt = html(&res);
    assert!(receipt.contains("提交成功") && receipt.contains("id=\"ticket-number\""));
    // Its link leads nowhere.
    let fake = bot.get(&status_path(receipt)).await;
    assert_eq!(fake.status, 404);
    let res = post_json(
        &bot,
        "help",
        json!({ "name": "x", "email": "a@b.cn", "message": "y", "website": "filled" }),
    )
    .await;
    assert!(res.ok(201)["ticket_number"].is_i64());
    assert!(conversations_in(&admin, &inbox).await.is_empty());
    let contacts = admin.get("/api/v1/contacts?q=spam").await;
    assert_eq!(contacts.ok(200)["items"], json!([]));
    // The challenge was not spent: nothing was stored.
    let res = post_form(
        &bot,
        "help",
        &[
            ("name", "真人"),
            ("email", "real@example.cn"),
            ("message", "hi"),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(conversations_in(&admin, &inbox).await.len(), 1);
}

async fn submissions_are_rate_limited_per_ip(b: Backend) {
    let mut config = common::config();
    config.limits.form_submissions_per_minute_per_ip = 2;
    let s = TestServer::start_with(b, config).await;
    let admin = s.admin().await;
    let inbox = form_inbox(&admin, json!({ "slug": "help" })).await;
    let c = s.client();
    for i in 0..2 {
        let (token, answer) = page_challenge(&c, "help").await;
        let message = format!("第 {i} 个问题");
        let res = post_form(
            &c,
            "help",
            &[
                ("name", "王"),
                ("email", "w@example.cn"),
                ("message", &message),
                ("challenge_token", &token),
                ("challenge_answer", &answer),
            ],
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    let (token, answer) = page_challenge(&c, "help").await;
    let res = post_form(
        &c,
        "help",
        &[
            ("name", "王"),
            ("email", "w@example.cn"),
            ("message", "第三个问题"),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert_eq!(res.status, 429);
    let page = html(&res);
    assert!(page.contains("提交太频繁"));
    assert!(
        page.contains("第三个问题</textarea>"),
        "what was typed is kept"
    );
    post_json(&c, "help", json!({ "name": "王" }))
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(conversations_in(&admin, &inbox).await.len(), 2);
}

async fn the_challenge_must_be_right_fresh_and_unused(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = form_inbox(&admin, json!({ "slug": "help" })).await;
    let c = s.client();
    let fields = json!({ "name": "王", "email": "w@example.cn", "message": "你好" });
    let with = |token: &str, answer: &str| {
        let mut body = fields.clone();
        body["challenge_token"] = json!(token);
        body["challenge_answer"] = json!(answer);
        body
    };
    let (token, answer) = api_challenge(&c, "help").await;
    let wrong = (answer.parse::<u32>().unwrap() + 1).to_string();
    let res = post_json(&c, "help", with(&token, &wrong)).await;
    assert_eq!(
        res.assert_error(422, "validation_failed").body["error"]["fields"]["challenge_answer"],
        "验证题答案不对，请再试一次"
    );
    let res = post_json(&c, "help", with("fc1.forged.token", "7")).await;
    assert_eq!(
        res.assert_error(422, "validation_failed").body["error"]["fields"]["challenge_answer"],
        "验证题答案不对，请再试一次"
    );

    // Expired: a challenge issued 31 minutes ago with the server's key.
    let key = kefu_server::form::challenge::key(&s.state.visitor_key().await.unwrap());
    let old = kefu_server::form::challenge::issue(&key, chrono::Utc::now().timestamp() - 31 * 60);
    let res = post_json(&c, "help", with(&old.token, &sum(&old.question))).await;
    assert_eq!(
        res.assert_error(422, "validation_failed").body["error"]["fields"]["challenge_answer"],
        "验证题已过期，请回答新的题目"
    );

    // Right once; the same token again is a replay.
    post_json(&c, "help", with(&token, &answer)).await.ok(201);
    let res = post_json(&c, "help", with(&token, &answer)).await;
    assert!(
        res.assert_error(422, "validation_failed").body["error"]["fields"]["challenge_answer"]
            .as_str()
            .unwrap()
            .contains("已经提交过")
    );
    // The page offers a new question after a replay.
    let res = post_form(
        &c,
        "help",
        &[
            ("name", "王"),
            ("email", "w@example.cn"),
            ("message", "你好"),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert_eq!(res.status, 422);
    assert!(!html(&res).contains(&token), "a fresh challenge");
    assert_eq!(conversations_in(&admin, &inbox).await.len(), 1);

    // The proof of work answers too, and the page's challenge works with it.
    let (token, _) = api_challenge(&c, "help").await;
    let nonce = (0u64..)
        .find(|n| {
            use sha2::Digest;
            let d = sha2::Sha256::digest(format!("{token}:{n}").as_bytes());
            let bits = d
                .iter()
                .position(|b| *b != 0)
                .map_or(256, |i| i as u32 * 8 + d[i].leading_zeros());
            bits >= kefu_server::form::challenge::POW_BITS
        })
        .unwrap();
    post_json(&c, "help", with(&token, &format!("pow:{nonce}")))
        .await
        .ok(201);
    assert_eq!(conversations_in(&admin, &inbox).await.len(), 2);
}

async fn uploads_are_limited_by_count_size_and_sniffed_type(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = form_inbox(&admin, json!({ "slug": "help", "max_files": 2, "max_file_mb": 1, "require_email_or_phone": false, "fields": [
        { "name": "message", "type": "textarea", "required": true },
        { "name": "photos", "label": "照片", "type": "file" },
    ]}))
    .await;
    let c = s.client();
    let page = c.get("/f/help").await;
    assert!(html(&page).contains(r#"enctype="multipart/form-data""#));
    let send = |files: Vec<(&'static str, Vec<u8>)>, token: String, answer: String| {
        let c = c.clone();
        async move {
            let mut form = Form::new()
                .text("message", "货物破损，见照片")
                .text("challenge_token", token)
                .text("challenge_answer", answer);
            for (name, bytes) in files {
                form = form.part(
                    "photos",
                    Part::bytes(bytes)
                        .file_name(name)
                        .mime_str("image/png")
                        .unwrap(),
                );
            }
            c.send(c.request(reqwest::Method::POST, "/f/help").multipart(form))
                .await
        }
    };
    let blobs_stored = || {
        std::fs::read_dir(s.dir.path().join("attachments"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // A program named .png is refused by its bytes; nothing is stored.
    let (t, a) = page_challenge(&c, "help").await;
    let res = send(
        vec![
            ("破损.png", PNG.to_vec()),
            ("setup.png", b"MZ\x90\0\x03\0\0\0\x04\0".to_vec()),
        ],
        t,
        a,
    )
    .await;
    assert_eq!(res.status, 422);
    assert!(html(&res).contains("不支持的文件类型"));
    assert!(
        html(&res).contains("货物破损，见照片</textarea>"),
        "text kept"
    );
    // Too large (over 1 MiB): refused at its field, the rest kept, nothing stored.
    let (t, a) = page_challenge(&c, "help").await;
    let res = send(
        vec![("big.png", [PNG, &vec![0u8; 1024 * 1024]].concat())],
        t,
        a,
    )
    .await;
    assert_eq!(res.status, 422);
    assert!(html(&res).contains("文件太大：每个最多 1 MB"));
    // Too many.
    let (t, a) = page_challenge(&c, "help").await;
    let res = send(
        vec![
            ("1.png", PNG.to_vec()),
            ("2.png", PNG.to_vec()),
            ("3.png", PNG.to_vec()),
        ],
        t,
        a,
    )
    .await;
    assert!(html(&res).contains("最多上传 2 个文件"));
    // A body larger than the form could ever need (2 × 1 MiB + 256 KiB): 413.
    // Only just larger, so the client has sent it all when the answer comes.
    let (t, a) = page_challenge(&c, "help").await;
    let res = send(
        vec![
            ("a.png", vec![1u8; 800_000]),
            ("b.png", vec![1u8; 800_000]),
            ("c.png", vec![1u8; 800_000]),
        ],
        t,
        a,
    )
    .await;
    assert_eq!(res.status, 413);
    assert!(conversations_in(&admin, &inbox).await.is_empty());
    assert_eq!(blobs_stored(), 0, "no file kept from refused submissions");

    // Good files become the message's attachments, typed by their bytes.
    let (t, a) = page_challenge(&c, "help").await;
    let text = "订单号 12345\n".as_bytes().to_vec();
    let res = send(vec![("破损.png", PNG.to_vec()), ("说明.png", text)], t, a).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let list = conversations_in(&admin, &inbox).await;
    let messages = admin
        .get(&format!("/api/v1/conversations/{}/messages", id(&list[0])))
        .await;
    let first = &messages.ok(200)[0];
    let files: Vec<(&str, &str)> = first["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["filename"].as_str().unwrap(),
                a["content_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [("破损.png", "image/png"), ("说明.png", "text/plain")]
    );
    assert!(first["text"].as_str().unwrap().contains("附件：破损.png"));
    // The customer downloads them through the status link only.
    let status = status_path(html(&res));
    let url = format!("{status}/files/{}", id(&first["attachments"][0]));
    let file = c.send(c.request(reqwest::Method::GET, &url)).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.header("content-type"), Some("image/png"));
}

async fn the_status_link_shows_public_messages_and_takes_replies(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let inbox = form_inbox(&admin, json!({ "slug": "help" })).await;
    admin
        .patch(
            &format!("/api/v1/inboxes/{}", id(&inbox)),
            json!({ "member_ids": [admin.agent_id(), agent.agent_id()] }),
        )
        .await
        .ok(200);
    let customer = s.client();
    let submit = |name: &'static str, email: &'static str| {
        let customer = customer.clone();
        async move {
            let (t, a) = page_challenge(&customer, "help").await;
            let res = post_form(
                &customer,
                "help",
                &[
                    ("name", name),
                    ("email", email),
                    ("message", "我的快递丢了"),
                    ("challenge_token", &t),
                    ("challenge_answer", &a),
                ],
            )
            .await;
            assert_eq!(res.status, 200, "{}", res.body);
            status_path(html(&res))
        }
    };
    let mine = submit("王小明", "wang@example.cn").await;
    let theirs = submit("李雷", "li@example.cn").await;
    // The first submission has the lower number.
    let list = conversations_in(&admin, &inbox).await;
    let wang = list
        .iter()
        .min_by_key(|c| c["number"].as_i64())
        .unwrap()
        .clone();
    let path = format!("/api/v1/conversations/{}/messages", id(&wang));

    // The agent replies, and writes a note the customer must never see.
    agent
        .post(
            &path,
            json!({ "direction": "outgoing", "text": "您好，已为您补发，单号 SF123。" }),
        )
        .await
        .ok(201);
    agent
        .post(
            &path,
            json!({ "direction": "note", "text": "内部：仓库漏发，记得追责" }),
        )
        .await
        .ok(201);
    let page = customer.get(&mine).await;
    assert_eq!(page.status, 200);
    let text = html(&page);
    assert!(
        text.contains("我的快递丢了") && text.contains("您好，已为您补发，单号 SF123。"),
        "{text}"
    );
    assert!(!text.contains("仓库漏发"), "notes never reach the customer");
    assert!(text.contains("处理中"));
    assert_eq!(page.header("cache-control"), Some("no-store"));

    // The customer answers from the page (no JavaScript: a plain form post).
    let res = customer
        .send(
            customer
                .request(reqwest::Method::POST, &mine)
                .form(&[("text", "收到，谢谢！<b>很快</b>")]),
        )
        .await;
    assert!(matches!(res.status, 200 | 303), "{}", res.status);
    let messages = admin.get(&path).await;
    let last = messages.ok(200).as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["direction"].as_str(), last["text"].as_str()),
        (Some("incoming"), Some("收到，谢谢！<b>很快</b>"))
    );
    let page = customer.get(&mine).await;
    assert!(html(&page).contains("收到，谢谢！&lt;b&gt;很快&lt;/b&gt;"));
    // An empty reply is refused on the page, nothing stored.
    let res = customer
        .send(
            customer
                .request(reqwest::Method::POST, &mine)
                .form(&[("text", "  ")]),
        )
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(admin.get(&path).await.ok(200).as_array().unwrap().len(), 4);

    // Resolved by the agent: the page says so.
    agent
        .post(
            &format!("/api/v1/conversations/{}/status", id(&wang)),
            json!({ "status": "resolved" }),
        )
        .await
        .ok(200);
    assert!(html(&customer.get(&mine).await).contains("已解决"));

    // Another customer's link shows only their own ticket.
    let other = customer.get(&theirs).await;
    assert!(!html(&other).contains("SF123"));
    // Forged, tampered or foreign tokens are refused with a clear page.
    let tampered = format!("{}x", &mine[..mine.len() - 1]);
    for bad in [
        tampered.as_str(),
        "/s/s1.eyJ2IjoiMDAwIn0.c2ln",
        "/s/v1.abc.def",
        "/s/nonsense",
    ] {
        let res = customer.get(bad).await;
        assert_eq!(res.status, 404, "{bad}");
        assert!(html(&res).contains("这个链接无效"), "{bad}");
        let res = customer
            .send(
                customer
                    .request(reqwest::Method::POST, bad)
                    .form(&[("text", "hi")]),
            )
            .await;
        assert_eq!(res.status, 404, "{bad}");
    }
    // A visitor token of the widget is not a status link either.
    let key = s.state.visitor_key().await.unwrap();
    let visitor = kefu_server::visitor::sign(
        &key,
        &kefu_server::visitor::Claims {
            c: wang["contact_id"].as_str().unwrap().parse().unwrap(),
            i: id(&inbox).parse().unwrap(),
            v: true,
            e: i64::MAX,
        },
    );
    assert_eq!(customer.get(&format!("/s/{visitor}")).await.status, 404);
    assert_eq!(admin.get(&path).await.ok(200).as_array().unwrap().len(), 4);
}

/// The form names an email inbox for replies: an agent's reply (not a note)
/// reaches the customer by mail from that inbox's relay — From the inbox's
/// address, Reply-To its token address, `[#N]` in the subject — and the
/// customer's answer by mail comes back into the form conversation. A
/// customer who gave no email gets nothing by mail.
async fn customers_who_gave_an_email_get_replies_by_mail_and_answer_by_mail(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let (sink, sink_port) = mail::Sink::start().await;
    let mail = mail::Mail::start(&s).await;
    let email_inbox = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "email", "name": "邮件客服", "settings": { "email": {
                "address": "support@shop.example", "name": "示例商城客服",
                "smtp": { "host": "127.0.0.1", "port": sink_port, "security": "none" } } } }),
        )
        .await
        .ok(201)
        .clone();
    // Only an email inbox can answer for a form.
    let res = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "form", "name": "表单", "settings": { "form": {
                "slug": "wrong", "reply_email_inbox": admin.agent_id() } } }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("reply_email_inbox"), "{}", res.body);
    let inbox = form_inbox(
        &admin,
        json!({ "slug": "help", "reply_email_inbox": id(&email_inbox) }),
    )
    .await;
    assert_eq!(
        inbox["settings"]["form"]["reply_email_inbox"],
        email_inbox["id"]
    );

    let customer = s.client();
    for (name, email, phone) in [
        ("王小明", "wang@customer.example", ""),
        ("李雷", "", "13800138000"),
    ] {
        let (t, a) = api_challenge(&customer, "help").await;
        let mut body = json!({ "name": name, "message": "我的快递丢了，订单 1234",
                               "challenge_token": t, "challenge_answer": a });
        if !email.is_empty() {
            body["email"] = json!(email);
        }
        if !phone.is_empty() {
            body["phone"] = json!(phone);
        }
        post_json(&customer, "help", body).await.ok(201);
    }
    let list = conversations_in(&admin, &inbox).await;
    let by_number = |n: usize| {
        let mut l = list.clone();
        l.sort_by_key(|c| c["number"].as_i64());
        l[n].clone()
    };
    let (wang, li) = (by_number(0), by_number(1));
    let wang_path = format!("/api/v1/conversations/{}/messages", id(&wang));
    admin
        .post(
            &wang_path,
            json!({ "direction": "note", "text": "内部：先查仓库" }),
        )
        .await
        .ok(201);
    let reply = admin
        .post(
            &wang_path,
            json!({ "direction": "outgoing", "text": "您好，已为您补发，单号 SF123。" }),
        )
        .await
        .ok(201)
        .clone();
    admin
        .post(
            &format!("/api/v1/conversations/{}/messages", id(&li)),
            json!({ "direction": "outgoing", "text": "李先生您好，我们会电话联系您。" }),
        )
        .await
        .ok(201);

    let out = sink.mail(0).await;
    assert_eq!(out.to[0].address, "wang@customer.example");
    let from = out.from.clone().expect("From");
    assert_eq!(from.address, "support@shop.example");
    let reply_to = out.reply_to[0].address.clone();
    assert!(
        reply_to.starts_with("support+") && reply_to.ends_with("@shop.example"),
        "{reply_to}"
    );
    let subject = out.subject.clone().unwrap_or_default();
    assert!(
        subject.contains(&format!("[#{}]", wang["number"])) && subject.contains("我的快递丢了"),
        "{subject}"
    );
    assert!(out.text.contains("单号 SF123"), "{}", out.text);
    assert!(!out.text.contains("先查仓库"));
    let our_id = out.message_id.clone().expect("Message-ID");
    // The reply's delivery state, through the API.
    let state = mail::delivery_state(&admin, &wang_path, &reply).await;
    assert_eq!(state["status"], "sent", "{state}");
    assert_eq!(state["message_id"], json!(our_id));

    // The customer answers by mail, to the Reply-To address.
    let answer = format!(
        "From: 王小明 <wang@customer.example>\r\nTo: {reply_to}\r\nSubject: Re: {subject}\r\n\
         Message-ID: <a1@customer.example>\r\nIn-Reply-To: <{our_id}>\r\nReferences: <{our_id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         收到了，谢谢！\r\n\r\n> 您好，已为您补发，单号 SF123。\r\n"
    );
    mail.client()
        .send_raw(
            "wang@customer.example",
            std::slice::from_ref(&reply_to),
            answer.as_bytes(),
        )
        .await
        .expect("kefu takes the answer");
    let messages = admin.get(&wang_path).await;
    let last = messages.ok(200).as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["direction"].as_str(),
            last["text"].as_str().map(str::trim)
        ),
        (Some("incoming"), Some("收到了，谢谢！"))
    );
    // No new conversation anywhere; the email inbox got none.
    assert_eq!(conversations_in(&admin, &inbox).await.len(), 2);
    assert!(conversations_in(&admin, &email_inbox).await.is_empty());

    // Li gave no email: his reply stays on the status page; the sink got one mail.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(sink.got.lock().await.len(), 1);
}

/// The claims inside a status link (its middle part, base64url JSON).
fn link_claims(path: &str) -> Value {
    use base64::Engine as _;
    let body = path
        .trim_start_matches("/s/s1.")
        .split('.')
        .next()
        .expect("a body");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A status link lasts `settings.form.status_link_days`; past that it shows
/// a page saying it expired (410, not an error). An agent revokes a
/// conversation's links through the API: the old link stops at once (page
/// and replies), the new one it answers works.
async fn status_links_expire_and_agents_can_revoke_them(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let res = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "form", "name": "坏设置",
                    "settings": { "form": { "slug": "bad", "status_link_days": 0 } } }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("status_link_days"), "{}", res.body);
    let inbox = form_inbox(&admin, json!({ "slug": "help", "status_link_days": 30 })).await;
    let customer = s.client();
    let (t, a) = page_challenge(&customer, "help").await;
    let res = post_form(
        &customer,
        "help",
        &[
            ("name", "王小明"),
            ("email", "wang@example.cn"),
            ("message", "发票抬头写错了"),
            ("challenge_token", &t),
            ("challenge_answer", &a),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let old = status_path(html(&res));
    let now = chrono::Utc::now().timestamp();
    let expires = link_claims(&old)["e"].as_i64().expect("an expiry");
    assert!(
        (expires - (now + 30 * 86_400)).abs() < 300,
        "30 days from now: {expires} vs {now}"
    );
    assert_eq!(customer.get(&old).await.status, 200);
    let conv = conversations_in(&admin, &inbox).await[0].clone();
    let messages = format!("/api/v1/conversations/{}/messages", id(&conv));

    // Revoked: the old link is refused at once, page and reply alike.
    let fresh = admin
        .post(
            &format!("/api/v1/conversations/{}/status-link", id(&conv)),
            json!({}),
        )
        .await
        .ok(200)
        .clone();
    let url = fresh["status_url"].as_str().expect("a url");
    assert!(url.starts_with(&format!("{}/s/s1.", s.base)), "{url}");
    assert!(
        fresh["expires_at"]
            .as_str()
            .is_some_and(|e| e.starts_with('2'))
    );
    let new = url[s.base.len()..].to_string();
    assert_ne!(new, old);
    let page = customer.get(&old).await;
    assert_eq!(page.status, 410);
    assert!(
        html(&page).contains("这个链接已被客服停用"),
        "{}",
        html(&page)
    );
    let before = admin.get(&messages).await.ok(200).as_array().unwrap().len();
    let res = customer
        .send(
            customer
                .request(reqwest::Method::POST, &old)
                .form(&[("text", "还在吗？")]),
        )
        .await;
    assert_eq!(res.status, 410);
    assert_eq!(
        admin.get(&messages).await.ok(200).as_array().unwrap().len(),
        before
    );
    // The new link works, and takes a reply.
    let page = customer.get(&new).await;
    assert_eq!(page.status, 200);
    assert!(html(&page).contains("发票抬头写错了"));
    let res = customer
        .send(
            customer
                .request(reqwest::Method::POST, &new)
                .form(&[("text", "新链接可以用")]),
        )
        .await;
    assert!(matches!(res.status, 200 | 303), "{}", res.status);
    assert_eq!(
        admin.get(&messages).await.ok(200).as_array().unwrap().len(),
        before + 1
    );

    // Expired: the same link signed with a past expiry shows the expiry
    // page; signed with a future one it works (so the signature is right).
    let key = kefu_server::form::status::key(&s.state.visitor_key().await.unwrap());
    let spec = |expires_at| kefu_server::form::status::LinkSpec {
        conversation: id(&conv).parse().unwrap(),
        contact: conv["contact_id"].as_str().unwrap().parse().unwrap(),
        generation: link_claims(&new)["g"].as_i64().unwrap(),
        expires_at,
    };
    let live = kefu_server::form::status::path(&key, spec(now + 600));
    assert_eq!(customer.get(&live).await.status, 200);
    let expired = kefu_server::form::status::path(&key, spec(now - 1));
    let page = customer.get(&expired).await;
    assert_eq!(page.status, 410);
    assert!(html(&page).contains("这个链接已过期"), "{}", html(&page));
    let res = customer
        .send(
            customer
                .request(reqwest::Method::POST, &expired)
                .form(&[("text", "过期了吗")]),
        )
        .await;
    assert_eq!(res.status, 410);

    // Only form conversations have status links; other agents' rights hold.
    let email = admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "email", "name": "邮件", "member_ids": [admin.agent_id()],
                    "settings": { "email": { "address": "help@shop.example" } } }),
        )
        .await
        .ok(201)
        .clone();
    let other = admin
        .post(
            "/api/v1/conversations",
            json!({ "inbox_id": id(&email), "subject": "x",
                    "contact": { "name": "李雷", "email": "li@example.cn" } }),
        )
        .await
        .ok(201)["conversation"]
        .clone();
    admin
        .post(
            &format!("/api/v1/conversations/{}/status-link", id(&other)),
            json!({}),
        )
        .await
        .assert_error(422, "validation_failed");
    let outsider = s.agent_client("zhao@kefu.test", "小赵", Role::Agent).await;
    assert_eq!(
        outsider
            .post(
                &format!("/api/v1/conversations/{}/status-link", id(&conv)),
                json!({})
            )
            .await
            .status,
        404
    );
    assert_eq!(
        customer.get(&new).await.status,
        200,
        "a refused revoke changes nothing"
    );
}

/// Sends only the head of a 30 MB multipart POST and reads the answer,
/// without ever sending the body.
async fn head_only(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary=----kefu\r\n\
         Content-Length: {}\r\n\r\n",
        30 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.expect("send head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("an answer before the body was sent");
    String::from_utf8_lossy(&got).into_owned()
}

/// Issue #12: twelve parallel 30 MB posts from a client over its limit
/// used to be read whole (into memory) before the limit was looked at. The
/// page, like its JSON twin, now answers 429 before reading the body.
async fn a_limited_client_is_refused_before_its_body_is_read(b: Backend) {
    let mut config = common::config();
    config.limits.form_submissions_per_minute_per_ip = 1;
    let s = TestServer::start_with(b, config).await;
    let admin = s.admin().await;
    let inbox = form_inbox(&admin, json!({ "slug": "help" })).await;
    let c = s.client();
    let (token, answer) = page_challenge(&c, "help").await;
    let res = post_form(
        &c,
        "help",
        &[
            ("name", "王"),
            ("email", "w@example.cn"),
            ("message", "快递一直没到"),
            ("challenge_token", &token),
            ("challenge_answer", &answer),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);

    for path in ["/f/help", "/api/form/v1/help"] {
        let answer = head_only(s.addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "{path}: {answer}");
    }
    assert_eq!(conversations_in(&admin, &inbox).await.len(), 1);
    let spooled = std::fs::read_dir(s.dir.path().join("attachments"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(spooled, 0);
}

//! Authentication and access over HTTP: the first-admin setup link, logins
//! and their rate limits and audit trail, CSRF, sessions, deactivation,
//! handing over the admin role, API tokens and their scopes, agents.

#[macro_use]
mod common;

use common::*;
use kefu_core::Role;
use serde_json::json;
use std::time::Duration;

both_backends!(
    setup_link_creates_the_first_admin_once,
    login_sets_a_cookie_and_failures_are_audited,
    login_is_rate_limited_per_account_and_per_ip,
    csrf_header_is_required_on_cookie_writes_and_logout_ends_the_session,
    sessions_are_listed_and_revoked,
    admin_revokes_an_agents_sessions_and_tokens,
    deactivation_locks_an_agent_out_at_once,
    admin_role_is_transferred,
    api_tokens_are_shown_once_scoped_and_revocable,
    password_change_signs_out_other_sessions,
    agents_are_managed_by_admins,
    a_failed_setup_keeps_the_link_and_bearer_is_case_insensitive,
);

async fn setup_link_creates_the_first_admin_once(b: Backend) {
    let s = TestServer::start(b).await;
    let link = kefu_server::setup::prepare(&s.store, &s.base)
        .await
        .expect("prepare")
        .expect("no admin yet: there is a setup link");
    let prefix = format!("{}/setup?token=", s.base);
    let token = link
        .strip_prefix(&prefix)
        .expect("link points at /setup with a token");
    let body = |token: &str| {
        json!({
            "token": token,
            "email": "Boss@Kefu.test",
            "name": "老板",
            "password": PASSWORD,
        })
    };

    s.client()
        .post("/api/v1/setup", body("not-the-token"))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(s.store.count_admins().await.expect("count"), 0);
    let mut bad_email = body(token);
    bad_email["email"] = json!("boss");
    s.client()
        .post("/api/v1/setup", bad_email)
        .await
        .assert_error(422, "validation_failed");

    let mut c = s.client();
    let res = c.post("/api/v1/setup", body(token)).await;
    let v = res.ok(201);
    assert_eq!(v["agent"]["email"], "boss@kefu.test");
    assert_eq!(v["agent"]["role"], "admin");
    assert!(v["csrf_token"].as_str().is_some_and(|t| t.len() == 32));
    c.remember_session(&res);
    assert!(c.session_cookie.is_some(), "setup signs the admin in");
    let me = c.get("/api/v1/auth/me").await;
    assert_eq!(me.ok(200)["agent"]["name"], "老板");

    // Spent: the same token, or any other, no longer works.
    let again = s.client().post("/api/v1/setup", body(token)).await;
    again.assert_error(403, "forbidden");
    assert_eq!(s.store.count_admins().await.expect("count"), 1);
    assert!(
        kefu_server::setup::prepare(&s.store, &s.base)
            .await
            .expect("prepare")
            .is_none(),
        "with an admin there is no setup link"
    );

    s.login("boss@kefu.test", PASSWORD).await;
    let audit = c.get("/api/v1/audit-log?action=setup.first_admin").await;
    assert_eq!(audit.ok(200)["items"].as_array().map(Vec::len), Some(1));

    // A link printed before an admin appeared some other way (say, `kefu
    // admin create`) stops working then.
    let s = TestServer::start(b).await;
    let link = kefu_server::setup::prepare(&s.store, &s.base)
        .await
        .expect("prepare")
        .expect("a setup link");
    let token = link.split_once("token=").expect("token").1;
    s.create_agent("cli@kefu.test", "命令行", Role::Admin).await;
    s.client()
        .post("/api/v1/setup", body(token))
        .await
        .assert_error(403, "forbidden");
    assert!(s.store.agent_by_email("boss@kefu.test").await.is_err());
}

async fn login_sets_a_cookie_and_failures_are_audited(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    s.create_agent("agent@kefu.test", "客服小李", Role::Agent)
        .await;

    let mut c = s.client();
    let res = c.login("AGENT@kefu.test ", PASSWORD).await;
    let v = res.ok(200);
    assert_eq!(v["agent"]["email"], "agent@kefu.test");
    assert!(v.get("password_hash").is_none() && v["agent"].get("password_hash").is_none());
    let cookie = res.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("kefu_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(v["csrf_token"].is_string() && v["session_id"].is_string());
    c.get("/api/v1/auth/me").await.ok(200);

    s.client()
        .login("agent@kefu.test", "wrong password!")
        .await
        .assert_error(401, "unauthorized");
    s.client()
        .login("nobody@kefu.test", PASSWORD)
        .await
        .assert_error(401, "unauthorized");
    s.client()
        .login("not an email", PASSWORD)
        .await
        .assert_error(401, "unauthorized");

    let audit = admin
        .get("/api/v1/audit-log?action=auth.login_failed")
        .await;
    let items = audit.ok(200)["items"].as_array().expect("items").clone();
    let emails: Vec<&str> = items
        .iter()
        .map(|e| e["details"]["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        emails,
        ["nobody@kefu.test", "agent@kefu.test"],
        "newest first"
    );
    for e in &items {
        assert_eq!(e["action"], "auth.login_failed");
        assert_eq!(e["ip"], "127.0.0.1");
        assert!(e["actor_id"].is_null());
    }

    // Pages of the log, newest first.
    let page1 = admin.get("/api/v1/audit-log?limit=1").await.ok(200).clone();
    assert_eq!(page1["items"][0]["id"], items[0]["id"]);
    let cursor = page1["next_cursor"].as_str().expect("more pages");
    let page2 = admin
        .get(&format!("/api/v1/audit-log?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(page2.ok(200)["items"][0]["id"], items[1]["id"]);
    admin
        .get("/api/v1/audit-log?cursor=bogus")
        .await
        .assert_error(422, "validation_failed");

    // The audit log is for admins only.
    c.get("/api/v1/audit-log")
        .await
        .assert_error(403, "forbidden");
    s.client()
        .get("/api/v1/audit-log")
        .await
        .assert_error(401, "unauthorized");
}

async fn login_is_rate_limited_per_account_and_per_ip(b: Backend) {
    // Per account: after three failures the failing address must wait
    // (1 s, then 2 s …), even with the right password; the owner, from
    // another address, still gets in at once, and other accounts are not
    // affected. (Loopback has all of 127/8: the guesser is 127.0.0.2.)
    let mut cfg = config();
    cfg.limits.logins_per_minute_per_account = 3;
    let s = TestServer::start_with(b, cfg).await;
    s.create_agent("a@kefu.test", "甲", Role::Agent).await;
    s.create_agent("b@kefu.test", "乙", Role::Agent).await;
    let mut guesser = s.client();
    guesser.http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client on 127.0.0.2");
    for _ in 0..3 {
        guesser
            .login("a@kefu.test", "wrong password")
            .await
            .assert_error(401, "unauthorized");
    }
    let retry_after = |res: &Res| -> u64 {
        res.header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds")
    };
    let res = guesser.login("a@kefu.test", "wrong password").await;
    res.assert_error(429, "rate_limited");
    assert_eq!(retry_after(&res), 1);
    let res = guesser.login("a@kefu.test", PASSWORD).await;
    res.assert_error(429, "rate_limited");
    let started = std::time::Instant::now();
    s.login("a@kefu.test", PASSWORD).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the owner was held {:?}",
        started.elapsed()
    );
    s.login("b@kefu.test", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    guesser
        .login("a@kefu.test", "wrong password")
        .await
        .assert_error(401, "unauthorized");
    let res = guesser.login("a@kefu.test", "wrong password").await;
    res.assert_error(429, "rate_limited");
    assert_eq!(retry_after(&res), 2, "the wait doubles");
    s.login("a@kefu.test", PASSWORD).await;

    // Per IP: spreading guesses over accounts does not help.
    let mut cfg = config();
    cfg.limits.logins_per_minute_per_ip = 3;
    let s = TestServer::start_with(b, cfg).await;
    s.create_agent("a@kefu.test", "甲", Role::Agent).await;
    for i in 0..3 {
        s.client()
            .login(&format!("guess{i}@kefu.test"), "wrong password")
            .await
            .assert_error(401, "unauthorized");
    }
    let res = s.client().login("a@kefu.test", PASSWORD).await;
    res.assert_error(429, "rate_limited");
    assert!(res.header("retry-after").is_some());

    // Every request, per IP: a burst beyond the limit is refused.
    let mut cfg = config();
    cfg.limits.requests_per_second_per_ip = 1;
    let s = TestServer::start_with(b, cfg).await;
    let c = s.client();
    let mut limited = None;
    for _ in 0..10 {
        let res = c.get("/api/v1/auth/me").await;
        if res.status == 429 {
            limited = Some(res);
            break;
        }
        res.assert_error(401, "unauthorized");
    }
    let res = limited.expect("10 requests at once exceed 1/s with a burst of 2");
    res.assert_error(429, "rate_limited");
    assert!(res.header("retry-after").is_some());
}

async fn csrf_header_is_required_on_cookie_writes_and_logout_ends_the_session(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let mut no_csrf = admin.clone();
    no_csrf.csrf = None;
    let mut wrong_csrf = admin.clone();
    wrong_csrf.csrf = Some("0".repeat(32));

    let res = no_csrf.post("/api/v1/tags", json!({ "name": "VIP" })).await;
    res.assert_error(403, "forbidden");
    assert!(res.message().contains("X-CSRF-Token"), "{}", res.body);
    wrong_csrf
        .post("/api/v1/tags", json!({ "name": "VIP" }))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(no_csrf.get("/api/v1/tags").await.ok(200), &json!([]));

    let tag = admin
        .post("/api/v1/tags", json!({ "name": "VIP" }))
        .await
        .ok(201)
        .clone();
    let path = format!("/api/v1/tags/{}", id(&tag));
    no_csrf
        .patch(&path, json!({ "color": "#ff0000" }))
        .await
        .assert_error(403, "forbidden");
    no_csrf.delete(&path).await.assert_error(403, "forbidden");
    let tags = no_csrf.get("/api/v1/tags").await;
    assert_eq!(tags.ok(200)[0]["color"], serde_json::Value::Null);

    // Logging out is a write too.
    no_csrf
        .post("/api/v1/auth/logout", json!({}))
        .await
        .assert_error(403, "forbidden");
    admin.get("/api/v1/auth/me").await.ok(200);
    let res = admin.post("/api/v1/auth/logout", json!({})).await;
    res.ok(204);
    admin
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    // The session is gone on the server, not only from the browser.
    let replay = s.cookie_client(
        admin.session_cookie.as_deref().expect("cookie"),
        admin.csrf.as_deref(),
    );
    replay
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    replay
        .post("/api/v1/tags", json!({ "name": "退款" }))
        .await
        .assert_error(401, "unauthorized");
}

async fn sessions_are_listed_and_revoked(b: Backend) {
    let s = TestServer::start(b).await;
    s.create_agent("li@kefu.test", "小李", Role::Agent).await;
    let other = s.agent_client("wang@kefu.test", "小王", Role::Agent).await;
    let a1 = s.login("li@kefu.test", PASSWORD).await;
    let a2 = s.login("li@kefu.test", PASSWORD).await;
    let a3 = s.login("li@kefu.test", PASSWORD).await;

    let list = a1.get("/api/v1/auth/sessions").await;
    let list = list.ok(200).as_array().expect("list").clone();
    assert_eq!(list.len(), 3);
    let current: Vec<&str> = list
        .iter()
        .filter(|x| x["current"] == true)
        .map(id)
        .collect();
    assert_eq!(current, [a1.session_id.as_deref().expect("session id")]);
    for x in &list {
        assert_eq!(x["ip"], "127.0.0.1");
        assert_eq!(x["agent_id"], a1.agent_id());
        assert!(x.get("token_hash").is_none());
    }

    // Revoke one: that device is signed out, the others are not.
    let a2_path = format!(
        "/api/v1/auth/sessions/{}",
        a2.session_id.as_deref().expect("id")
    );
    a1.delete(&a2_path).await.ok(204);
    a2.get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    a3.get("/api/v1/auth/me").await.ok(200);
    a1.delete(&a2_path).await.assert_error(404, "not_found");
    // Someone else's session cannot be revoked (nor told apart from none).
    let mine = format!(
        "/api/v1/auth/sessions/{}",
        a1.session_id.as_deref().expect("id")
    );
    other.delete(&mine).await.assert_error(404, "not_found");
    a1.get("/api/v1/auth/me").await.ok(200);

    // Sign out every other device.
    let res = a1.delete("/api/v1/auth/sessions").await;
    assert_eq!(res.ok(200)["revoked"], 1);
    a3.get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    a1.get("/api/v1/auth/me").await.ok(200);
    other.get("/api/v1/auth/me").await.ok(200);
    let list = a1.get("/api/v1/auth/sessions").await;
    assert_eq!(list.ok(200).as_array().map(Vec::len), Some(1));
    assert_eq!(list.body[0]["current"], true);
}

async fn admin_revokes_an_agents_sessions_and_tokens(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let agent_id = agent.agent_id().to_string();
    let token = agent
        .post(
            "/api/v1/tokens",
            json!({ "name": "脚本", "scope": "write" }),
        )
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let bearer = s.token_client(&token);
    bearer.get("/api/v1/auth/me").await.ok(200);

    let path = format!("/api/v1/agents/{agent_id}/sessions");
    agent.get(&path).await.assert_error(403, "forbidden");
    agent.delete(&path).await.assert_error(403, "forbidden");
    let sessions = admin.get(&path).await;
    assert_eq!(sessions.ok(200).as_array().map(Vec::len), Some(1));

    let res = admin.delete(&path).await;
    assert_eq!(res.ok(200), &json!({ "sessions": 1, "tokens": 1 }));
    agent
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    bearer
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    admin.get("/api/v1/auth/me").await.ok(200);
    assert_eq!(admin.get(&path).await.ok(200), &json!([]));

    let audit = admin
        .get("/api/v1/audit-log?action=agent.access_revoked")
        .await;
    let entry = &audit.ok(200)["items"][0];
    assert_eq!(entry["target"], agent_id.as_str());
    assert_eq!(entry["actor_id"], admin.agent_id());

    // Not deactivated: the agent may log in again.
    s.login("li@kefu.test", PASSWORD).await;
    let unknown = format!("/api/v1/agents/{}/sessions", uuid::Uuid::now_v7());
    admin.delete(&unknown).await.assert_error(404, "not_found");
}

async fn deactivation_locks_an_agent_out_at_once(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let admin_path = format!("/api/v1/agents/{}", admin.agent_id());
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let agent_path = format!("/api/v1/agents/{}", agent.agent_id());
    let token = agent
        .post("/api/v1/tokens", json!({ "name": "脚本", "scope": "read" }))
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let bearer = s.token_client(&token);

    // An agent may change their own name, but not their active flag or others.
    let res = agent.patch(&agent_path, json!({ "name": "李小龙" })).await;
    assert_eq!(res.ok(200)["name"], "李小龙");
    agent
        .patch(&agent_path, json!({ "active": false }))
        .await
        .assert_error(403, "forbidden");
    agent
        .patch(&admin_path, json!({ "name": "x" }))
        .await
        .assert_error(403, "forbidden");

    // Nobody deactivates themselves, so the last admin stays.
    admin
        .patch(&admin_path, json!({ "active": false }))
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(s.store.count_admins().await.expect("count"), 1);

    let res = admin.patch(&agent_path, json!({ "active": false })).await;
    assert_eq!(res.ok(200)["active"], false);
    agent
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    bearer
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    s.client()
        .login("li@kefu.test", PASSWORD)
        .await
        .assert_error(401, "unauthorized");
    let agent_uuid = agent.agent_id().parse().expect("uuid");
    assert!(
        s.store
            .list_sessions(agent_uuid)
            .await
            .expect("sessions")
            .is_empty()
    );
    assert!(
        s.store
            .list_api_tokens(agent_uuid)
            .await
            .expect("tokens")
            .is_empty()
    );
    let audit = admin.get("/api/v1/audit-log?action=agent.updated").await;
    assert_eq!(audit.ok(200)["items"][0]["details"]["active"], false);

    // Reactivated: a new login works; the old session stays dead.
    admin
        .patch(&agent_path, json!({ "active": true }))
        .await
        .ok(200);
    s.login("li@kefu.test", PASSWORD).await;
    agent
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");

    // Another admin can be deactivated while one remains.
    let admin2 = s
        .agent_client("admin2@kefu.test", "副管理员", Role::Admin)
        .await;
    let admin2_path = format!("/api/v1/agents/{}", admin2.agent_id());
    admin
        .patch(&admin2_path, json!({ "active": false }))
        .await
        .ok(200);
    admin2
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(s.store.count_admins().await.expect("count"), 1);
}

async fn admin_role_is_transferred(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let inactive = s.create_agent("gone@kefu.test", "离职", Role::Agent).await;
    admin
        .patch(
            &format!("/api/v1/agents/{}", id(&inactive)),
            json!({ "active": false }),
        )
        .await
        .ok(200);

    agent
        .post(
            &format!("/api/v1/agents/{}/transfer-admin", agent.agent_id()),
            json!({}),
        )
        .await
        .assert_error(403, "forbidden");
    admin
        .post(
            &format!("/api/v1/agents/{}/transfer-admin", admin.agent_id()),
            json!({}),
        )
        .await
        .assert_error(422, "validation_failed");
    admin
        .post(
            &format!("/api/v1/agents/{}/transfer-admin", id(&inactive)),
            json!({}),
        )
        .await
        .assert_error(422, "validation_failed");
    admin
        .post(
            &format!("/api/v1/agents/{}/transfer-admin", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await
        .assert_error(404, "not_found");

    let res = admin
        .post(
            &format!("/api/v1/agents/{}/transfer-admin", agent.agent_id()),
            json!({}),
        )
        .await;
    assert_eq!(res.ok(200)["role"], "admin");
    assert_eq!(res.body["id"], agent.agent_id());
    let me = admin.get("/api/v1/auth/me").await;
    assert_eq!(me.ok(200)["agent"]["role"], "agent");
    admin
        .get("/api/v1/audit-log")
        .await
        .assert_error(403, "forbidden");
    let audit = agent
        .get("/api/v1/audit-log?action=agent.admin_transferred")
        .await;
    assert_eq!(audit.ok(200)["items"][0]["target"], agent.agent_id());
    assert_eq!(s.store.count_admins().await.expect("count"), 1);
}

async fn api_tokens_are_shown_once_scoped_and_revocable(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let other = s.agent_client("wang@kefu.test", "小王", Role::Agent).await;

    let mint = |c: &Client, name: &'static str, scope: &'static str| {
        let c = c.clone();
        async move {
            c.post("/api/v1/tokens", json!({ "name": name, "scope": scope }))
                .await
        }
    };
    let read = mint(&agent, "只读", "read").await;
    let read = read.ok(201).clone();
    let read_secret = read["token"].as_str().expect("secret").to_string();
    assert!(read_secret.starts_with("kefu_"), "{read_secret}");
    assert_eq!(read["prefix"], &read_secret[..12]);
    assert_eq!(read["scope"], "read");
    assert!(read["last_used_at"].is_null());
    let write = mint(&agent, "读写", "write").await.ok(201).clone();
    let write_secret = write["token"].as_str().expect("secret").to_string();
    mint(&agent, "管理", "admin")
        .await
        .assert_error(403, "forbidden");
    mint(&agent, " ", "read")
        .await
        .assert_error(422, "validation_failed");
    agent
        .post("/api/v1/tokens", json!({ "name": "x", "scope": "root" }))
        .await
        .assert_error(422, "validation_failed");

    // The list never shows a secret.
    let list = agent.get("/api/v1/tokens").await;
    let list = list.ok(200).as_array().expect("list").clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|t| t.get("token").is_none()));
    assert!(list.iter().all(|t| t.get("token_hash").is_none()));
    assert_eq!(other.get("/api/v1/tokens").await.ok(200), &json!([]));

    // read: reads only, without any CSRF header.
    let r = s.token_client(&read_secret);
    r.get("/api/v1/conversations").await.ok(200);
    assert_eq!(
        r.get("/api/v1/auth/me").await.ok(200)["agent"]["email"],
        "li@kefu.test"
    );
    r.post("/api/v1/tags", json!({ "name": "VIP" }))
        .await
        .assert_error(403, "forbidden");
    r.post("/api/v1/tokens", json!({ "name": "x", "scope": "read" }))
        .await
        .assert_error(403, "forbidden");
    let list = agent.get("/api/v1/tokens").await;
    let used = list
        .ok(200)
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == read["id"])
        .expect("the read token")
        .clone();
    assert!(used["last_used_at"].is_string(), "{used}");

    // write: writes, but not admin endpoints (and no token wider than itself).
    let w = s.token_client(&write_secret);
    w.post("/api/v1/tags", json!({ "name": "VIP" }))
        .await
        .ok(201);
    w.get("/api/v1/audit-log")
        .await
        .assert_error(403, "forbidden");
    w.post("/api/v1/teams", json!({ "name": "售后" }))
        .await
        .assert_error(403, "forbidden");
    w.post("/api/v1/tokens", json!({ "name": "子", "scope": "read" }))
        .await
        .ok(201);

    // An admin's write token is not an admin token; an admin-scoped one is.
    let aw = mint(&admin, "admin-write", "write").await.ok(201).clone();
    let aw = s.token_client(aw["token"].as_str().expect("secret"));
    aw.post("/api/v1/teams", json!({ "name": "售后" }))
        .await
        .assert_error(403, "forbidden");
    let aa = mint(&admin, "admin-admin", "admin").await.ok(201).clone();
    let aa = s.token_client(aa["token"].as_str().expect("secret"));
    aa.post("/api/v1/teams", json!({ "name": "售后" }))
        .await
        .ok(201);
    aa.get("/api/v1/audit-log").await.ok(200);

    // A bad token is refused, never treated as anonymous or as the cookie.
    s.token_client("kefu_garbage")
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    let mut both = agent.clone();
    both.bearer = Some("garbage".into());
    both.get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");

    // Revoking: only one's own (admins: anyone's); then the token is dead.
    let read_path = format!("/api/v1/tokens/{}", id(&read));
    other
        .delete(&read_path)
        .await
        .assert_error(404, "not_found");
    r.get("/api/v1/auth/me").await.ok(200);
    agent.delete(&read_path).await.ok(204);
    r.get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    agent
        .delete(&read_path)
        .await
        .assert_error(404, "not_found");
    admin
        .delete(&format!("/api/v1/tokens/{}", id(&write)))
        .await
        .ok(204);
    w.get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    let audit = admin.get("/api/v1/audit-log?action=token.revoked").await;
    assert_eq!(audit.ok(200)["items"].as_array().map(Vec::len), Some(2));
}

async fn password_change_signs_out_other_sessions(b: Backend) {
    let s = TestServer::start(b).await;
    let c1 = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let c2 = s.login("li@kefu.test", PASSWORD).await;
    let new_password = "新的密码 new password";

    c1.put(
        "/api/v1/auth/password",
        json!({ "current_password": "wrong password", "new_password": new_password }),
    )
    .await
    .assert_error(403, "forbidden");
    let res = c1
        .put(
            "/api/v1/auth/password",
            json!({ "current_password": PASSWORD, "new_password": "短" }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "password");
    c2.get("/api/v1/auth/me").await.ok(200);

    c1.put(
        "/api/v1/auth/password",
        json!({ "current_password": PASSWORD, "new_password": new_password }),
    )
    .await
    .ok(204);
    c1.get("/api/v1/auth/me").await.ok(200);
    c2.get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    s.client()
        .login("li@kefu.test", PASSWORD)
        .await
        .assert_error(401, "unauthorized");
    s.login("li@kefu.test", new_password).await;
}

async fn agents_are_managed_by_admins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let new = json!({
        "email": " Han.Meimei@Example.COM ",
        "name": "韩梅梅",
        "role": "agent",
        "password": "韩梅梅的密码 1234",
    });

    agent
        .post("/api/v1/agents", new.clone())
        .await
        .assert_error(403, "forbidden");
    let created = admin.post("/api/v1/agents", new.clone()).await;
    let created = created.ok(201).clone();
    assert_eq!(created["email"], "han.meimei@example.com");
    assert_eq!(created["active"], true);
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    let dup = admin.post("/api/v1/agents", new.clone()).await;
    dup.assert_error(409, "conflict");
    assert!(dup.message().contains("exists already"), "{}", dup.body);

    let mut bad = new.clone();
    bad["email"] = json!("han.meimei");
    let res = admin.post("/api/v1/agents", bad).await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "email");
    let mut bad = new.clone();
    bad["email"] = json!("x@kefu.test");
    bad["password"] = json!("short");
    let res = admin.post("/api/v1/agents", bad).await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "password");

    s.login("han.meimei@example.com", "韩梅梅的密码 1234").await;

    let list = agent.get("/api/v1/agents").await;
    let list = list.ok(200).as_array().expect("list").clone();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|a| a.get("password_hash").is_none()));
    let path = format!("/api/v1/agents/{}", id(&created));
    assert_eq!(agent.get(&path).await.ok(200)["name"], "韩梅梅");
    agent
        .get(&format!("/api/v1/agents/{}", uuid::Uuid::now_v7()))
        .await
        .assert_error(404, "not_found");

    // Email changes: admins only, and unique.
    agent
        .patch(
            &format!("/api/v1/agents/{}", agent.agent_id()),
            json!({ "email": "new@kefu.test" }),
        )
        .await
        .assert_error(403, "forbidden");
    admin
        .patch(&path, json!({ "email": "LI@kefu.test" }))
        .await
        .assert_error(409, "conflict");
    let res = admin
        .patch(
            &path,
            json!({ "email": "meimei@kefu.test", "avatar_url": "ftp://x" }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "avatar_url");
    let res = admin
        .patch(&path, json!({ "email": "meimei@kefu.test" }))
        .await;
    assert_eq!(res.ok(200)["email"], "meimei@kefu.test");
    admin
        .patch(
            &format!("/api/v1/agents/{}", uuid::Uuid::now_v7()),
            json!({ "name": "无人" }),
        )
        .await
        .assert_error(404, "not_found");

    let audit = admin.get("/api/v1/audit-log?action=agent.created").await;
    assert_eq!(audit.ok(200)["items"][0]["target"], id(&created));
}

async fn a_failed_setup_keeps_the_link_and_bearer_is_case_insensitive(b: Backend) {
    let s = TestServer::start(b).await;
    s.create_agent("taken@kefu.test", "已有坐席", kefu_core::Role::Agent)
        .await;
    let link = kefu_server::setup::prepare(&s.store, &s.base)
        .await
        .expect("prepare")
        .expect("link");
    let token = link.rsplit("token=").next().expect("token").to_string();
    let body = |email: &str| json!({ "token": token, "email": email, "name": "老板", "password": PASSWORD });
    // The email belongs to an agent already: refused, and the link still works.
    s.client()
        .post("/api/v1/setup", body("taken@kefu.test"))
        .await
        .assert_error(409, "conflict");
    let admin = s
        .client()
        .post("/api/v1/setup", body("boss@kefu.test"))
        .await;
    admin.ok(201);
    s.client()
        .post("/api/v1/setup", body("again@kefu.test"))
        .await
        .assert_error(403, "forbidden");

    // "bearer" in any case is the Bearer scheme.
    let c = s.login("boss@kefu.test", PASSWORD).await;
    let token = c
        .post("/api/v1/tokens", json!({ "name": "ci", "scope": "read" }))
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let res = reqwest::Client::new()
            .get(format!("{}/api/v1/auth/me", s.base))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .expect("me");
        assert_eq!(res.status(), 200, "{scheme}");
    }
}

//! `GET /api/v1/imports`: the record of `kefu import` runs, for admins only.

#[macro_use]
mod common;

use common::*;
use kefu_core::Role;
use serde_json::json;

both_backends!(import_runs_are_listed_for_admins);

async fn import_runs_are_listed_for_admins(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let agent = s.agent_client("li@kefu.test", "小李", Role::Agent).await;
    let first = s
        .store
        .create_import_run("wechat", "ops", false, &json!(["export/kf.json"]))
        .await
        .expect("create run");
    s.store
        .finish_import_run(first, "finished", &json!({"messages": 12, "rejected": 0}))
        .await
        .expect("finish run");
    let second = s
        .store
        .create_import_run("wechat", "ops", false, &json!(["export/archive.ndjson"]))
        .await
        .expect("create run");

    let res = admin.get("/api/v1/imports").await;
    let items = res.ok(200)["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second.to_string(), "newest first");
    assert_eq!(items[0]["status"], "running");
    assert!(items[0]["finished_at"].is_null());
    assert_eq!(items[1]["status"], "finished");
    assert_eq!(items[1]["actor"], "ops");
    assert_eq!(items[1]["files"], json!(["export/kf.json"]));
    assert_eq!(items[1]["report"]["messages"], 12);
    assert!(items[1]["finished_at"].is_string());

    let limited = admin.get("/api/v1/imports?limit=1").await;
    assert_eq!(limited.ok(200)["items"].as_array().map(Vec::len), Some(1));
    agent
        .get("/api/v1/imports")
        .await
        .assert_error(403, "forbidden");
}

//! Bad input, the operator's endpoints (health, readiness, metrics, the
//! OpenAPI document, the web pages) and graceful shutdown.

#[macro_use]
mod common;

use common::*;
use kefu_core::Role;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    bad_input_gets_a_clear_error_and_never_a_500,
    absurd_query_values_and_dates_are_refused,
    health_readiness_metrics_openapi_and_pages,
    web_assets_are_compressed_and_revalidated,
    metrics_need_a_token_or_their_own_listener,
    graceful_shutdown_lets_in_flight_requests_finish,
);

async fn raw_json(c: &Client, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Res {
    c.send(
        c.request(method, path)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

async fn bad_input_gets_a_clear_error_and_never_a_500(b: Backend) {
    let mut cfg = config();
    cfg.max_json_bytes = 4096;
    let s = TestServer::start_with(b, cfg).await;
    let admin = s.admin().await;

    // Malformed JSON: 400 with the position.
    let res = raw_json(&admin, Method::POST, "/api/v1/tags", r#"{"name": "VIP","#).await;
    res.assert_error(400, "bad_request");
    assert!(res.message().contains("line 1 column"), "{}", res.body);
    let res = raw_json(&admin, Method::POST, "/api/v1/tags", "").await;
    res.assert_error(400, "bad_request");
    let res = raw_json(
        &admin,
        Method::POST,
        "/api/v1/tags",
        vec![b'"', 0xff, 0xfe, b'"'],
    )
    .await;
    res.assert_error(400, "bad_request");
    // Nested deeper than the parser goes (attributes take any JSON object).
    let deep = format!(
        r#"{{"attributes": {{"a": {}{}}}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    raw_json(&admin, Method::POST, "/api/v1/contacts", deep)
        .await
        .assert_error(400, "bad_request");
    // Not JSON at all.
    let res = admin
        .send(
            admin
                .request(Method::POST, "/api/v1/tags")
                .header("content-type", "text/plain")
                .body("name=VIP"),
        )
        .await;
    res.assert_error(400, "bad_request");
    assert!(res.message().contains("application/json"), "{}", res.body);

    // Well-formed JSON of the wrong shape: 422.
    let res = admin
        .post(
            "/api/v1/tags",
            json!({ "name": "VIP", "colour": "#ffffff" }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert!(res.message().contains("unknown field"), "{}", res.body);
    admin
        .post("/api/v1/tags", json!({ "name": 5 }))
        .await
        .assert_error(422, "validation_failed");
    admin
        .post("/api/v1/tags", json!({}))
        .await
        .assert_error(422, "validation_failed");
    admin
        .post("/api/v1/tags", json!(["VIP"]))
        .await
        .assert_error(422, "validation_failed");
    admin
        .patch(
            &format!("/api/v1/agents/{}", admin.agent_id()),
            json!({ "active": "yes" }),
        )
        .await
        .assert_error(422, "validation_failed");

    // Too large: 413 (the limit is 4096 bytes here).
    let res = admin
        .post("/api/v1/tags", json!({ "name": "x".repeat(10_000) }))
        .await;
    res.assert_error(413, "payload_too_large");
    let inbox = create_inbox(&admin, "售前", &[]).await;
    let res = admin
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": id(&inbox),
                "contact": { "name": "王小明" },
                "message": { "direction": "incoming", "text": "退款".repeat(2000) },
            }),
        )
        .await;
    res.assert_error(413, "payload_too_large");

    // Ids in paths and values in query strings: 400.
    for path in [
        "/api/v1/conversations/123",
        "/api/v1/conversations/not-a-uuid/messages",
        "/api/v1/agents/%E7%8E%8B",
        "/api/v1/contacts/0190b8a4-c2d3",
    ] {
        admin.get(path).await.assert_error(400, "bad_request");
    }
    admin
        .delete("/api/v1/tags/xyz")
        .await
        .assert_error(400, "bad_request");
    admin
        .get("/api/v1/conversations?limit=-1")
        .await
        .assert_error(400, "bad_request");
    admin
        .get(&format!(
            "/api/v1/conversations/{}/messages?after_seq=abc",
            uuid::Uuid::now_v7()
        ))
        .await
        .assert_error(400, "bad_request");

    // Field checks: 422 naming the field.
    let res = admin
        .post(
            "/api/v1/contacts",
            json!({ "name": "王小明", "email": "wang@localhost" }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "email");
    let res = admin
        .post("/api/v1/contacts", json!({ "name": "a\u{0}b" }))
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "name");
    let res = admin
        .post(
            "/api/v1/contacts",
            json!({ "identities": [{ "kind": "WeChat OpenID", "value": "x" }] }),
        )
        .await;
    res.assert_error(422, "validation_failed");
    assert_eq!(res.body["error"]["field"], "identities.kind");

    // Unknown API routes answer in the same format.
    admin
        .get("/api/v1/no-such-thing")
        .await
        .assert_error(404, "not_found");

    // Nothing was created by any of it.
    assert_eq!(admin.get("/api/v1/tags").await.ok(200), &json!([]));
    assert_eq!(
        admin.get("/api/v1/contacts").await.ok(200)["items"],
        json!([])
    );
    let list = admin.get("/api/v1/conversations").await;
    assert_eq!(list.ok(200)["items"], json!([]));
}

/// Every query value is bounded (422 naming the parameter and the limit)
/// before it reaches the database — a 50,000-character search used to fail
/// inside SQLite's LIKE as a 500 — and dates at the edge of what chrono
/// represents are refused (400), never a panic. (`Client::send` fails the
/// test on any 5xx.)
async fn absurd_query_values_and_dates_are_refused(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let inbox = create_inbox(&admin, "售后", &[admin.agent_id()]).await;
    create_conversation(&admin, id(&inbox), "订单一直没到").await;
    let huge = "a".repeat(50_001);
    let over = "字".repeat(501);
    for path in [
        format!("/api/v1/contacts?q={huge}"),
        format!("/api/v1/contacts?q={over}"),
        format!("/api/v1/contacts?tag={huge}"),
        format!("/api/v1/contacts?identity_kind=email&identity_value={huge}"),
        format!("/api/v1/contacts?cursor={huge}"),
        format!("/api/v1/conversations?q={huge}"),
        format!("/api/v1/conversations?q={over}"),
        format!("/api/v1/conversations?tag={huge}"),
        format!("/api/v1/conversations?assignee_id={huge}"),
        format!("/api/v1/canned-responses?q={huge}"),
        format!("/api/v1/audit-log?action={huge}"),
        format!("/api/v1/reports/csat?by={huge}"),
    ] {
        let res = admin.get(&path).await;
        res.assert_error(422, "validation_failed");
        assert!(
            res.message().contains("at most 500 characters"),
            "{path:.60}: {}",
            res.body
        );
    }
    // Unauthenticated, public endpoints too.
    let anonymous = s.client();
    anonymous
        .get(&format!("/api/widget/v1/config?inbox={huge}"))
        .await
        .assert_error(422, "validation_failed");
    // At the limit a search works, on both databases, escaped wildcards included.
    for q in ["字".repeat(500), "%".repeat(500), "_\\".repeat(166)] {
        let path = format!("/api/v1/conversations?q={}", urlencode(&q));
        assert_eq!(
            admin.get(&path).await.ok(200)["items"],
            json!([]),
            "{q:.10}"
        );
        let path = format!("/api/v1/contacts?q={}", urlencode(&q));
        assert_eq!(
            admin.get(&path).await.ok(200)["items"],
            json!([]),
            "{q:.10}"
        );
    }
    let found = admin
        .get(&format!("/api/v1/conversations?q={}", urlencode("没到")))
        .await;
    assert_eq!(found.ok(200)["items"].as_array().map(Vec::len), Some(1));

    // Dates at chrono's edges: refused or answered, never a panic.
    for to in ["-262143-01-01T00:00:00Z", "-262143-01-30T23:59:59Z"] {
        admin
            .get(&format!("/api/v1/reports/csat?to={}", urlencode(to)))
            .await
            .assert_error(400, "bad_request");
    }
    for query in [
        "to=%2B262142-12-31T23:59:59Z",
        "from=-262143-01-01T00:00:00Z&to=-262143-01-01T00:00:00Z",
        "from=-262143-01-01T00:00:00Z",
        "to=-262143-03-01T00:00:00Z",
    ] {
        admin
            .get(&format!("/api/v1/reports/csat?{query}"))
            .await
            .ok(200);
    }
}

fn urlencode(v: &str) -> String {
    serde_urlencoded::to_string([("v", v)]).expect("encode")[2..].to_string()
}

/// `/metrics`: by default only for direct clients on this host (a request a
/// reverse proxy forwarded is refused); with `metrics_token` only for its
/// bearer, loopback included; with `metrics_listen` only there.
async fn metrics_need_a_token_or_their_own_listener(b: Backend) {
    let s = TestServer::start(b).await;
    let anon = s.client();
    anon.get("/metrics").await.ok(200);
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.5"),
        ("x-real-ip", "203.0.113.5"),
        ("forwarded", "for=203.0.113.5;proto=https"),
    ] {
        let res = anon
            .send(anon.request(Method::GET, "/metrics").header(name, value))
            .await;
        assert_eq!(res.status, 403, "{name}: {}", res.body);
    }

    let mut cfg = config();
    cfg.metrics_token = Some("prom-scrape-7f3a9c1e5b".into());
    let s = TestServer::start_with(b, cfg).await;
    s.client()
        .get("/metrics")
        .await
        .assert_error(401, "unauthorized");
    s.token_client("prom-scrape-7f3a9c1e5c")
        .get("/metrics")
        .await
        .assert_error(401, "unauthorized");
    let res = s
        .token_client("prom-scrape-7f3a9c1e5b")
        .get("/metrics")
        .await;
    assert_eq!(res.status, 200);
    assert!(
        res.body
            .as_str()
            .is_some_and(|t| t.contains("kefu_open_sockets"))
    );

    // Its own listener: there (with any forwarding), and not on the main one.
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics_addr = metrics_listener.local_addr().expect("addr");
    let mut cfg = config();
    cfg.metrics_listen = Some(metrics_addr);
    let s = TestServer::start_with(b, cfg).await;
    tokio::spawn(kefu_server::serve_metrics(
        metrics_listener,
        s.state.clone(),
        std::future::pending(),
    ));
    s.client()
        .get("/metrics")
        .await
        .assert_error(404, "not_found");
    let mut own = s.client();
    own.base = format!("http://{metrics_addr}");
    let res = own
        .send(
            own.request(Method::GET, "/metrics")
                .header("x-forwarded-for", "10.0.0.9"),
        )
        .await;
    assert_eq!(res.status, 200);
    own.get("/api/v1/agents")
        .await
        .assert_error(404, "not_found");
    own.get("/healthz").await.assert_error(404, "not_found");
}

async fn health_readiness_metrics_openapi_and_pages(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    let anon = s.client();

    let res = anon.get("/healthz").await;
    assert_eq!((res.status, res.body.clone()), (200, json!("ok")));
    let res = anon.get("/readyz").await;
    assert_eq!((res.status, res.body.clone()), (200, json!("ready")));

    admin.get("/api/v1/conversations").await.ok(200);
    let unknown = uuid::Uuid::now_v7().to_string();
    let one = format!("/api/v1/conversations/{unknown}");
    admin.get(&one).await.assert_error(404, "not_found");
    let res = anon.get("/metrics").await;
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.contains("openmetrics"))
    );
    let text = res.body.as_str().expect("text").to_string();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("kefu_http_requests_total{")
                && l.contains(r#"route="/api/v1/conversations""#)
                && l.contains(r#"method="GET""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no counter for GET /api/v1/conversations in:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        text.contains(r#"route="/api/v1/conversations/{id}""#),
        "{text}"
    );
    assert!(!text.contains(&unknown), "raw ids never become labels");
    assert!(
        text.contains("kefu_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains(r#"route="/api/v1/auth/login""#), "{text}");

    let res = anon.get("/api/openapi.json").await;
    assert_eq!(res.status, 200);
    let spec = &res.body;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    let paths = spec["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/conversations",
        "/api/v1/auth/login",
        "/api/v1/setup",
        "/api/v1/conversations/{id}/merge",
        "/api/v1/contacts/{id}/conversations",
        "/api/v1/attachments",
        "/api/v1/audit-log",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the spec");
    }
    assert!(paths["/api/v1/conversations"]["get"].is_object());
    assert!(paths["/api/v1/conversations"]["post"].is_object());
    let schemes = &spec["components"]["securitySchemes"];
    assert!(schemes["token"].is_object() && schemes["session"].is_object());
    let generated: Value = serde_json::to_value(kefu_server::openapi()).expect("spec as JSON");
    assert_eq!(&generated["paths"], &spec["paths"]);

    for page in ["/", "/setup", "/login"] {
        let res = anon.get(page).await;
        assert_eq!(res.status, 200, "{page}");
        assert!(
            res.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{page}"
        );
    }
    assert_eq!(anon.get("/assets/nope.js").await.status, 404);
    assert_eq!(anon.get("/assets/..%2FCargo.toml").await.status, 404);

    // Not ready without a database.
    tokio::time::timeout(Duration::from_secs(10), s.store.close())
        .await
        .expect("the store closes within 10 s, whatever else holds connections");
    let res = reqwest::get(format!("{}/readyz", s.base))
        .await
        .expect("readyz");
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(anon.get("/healthz").await.status, 200, "alive all the same");
}

/// The web assets as a browser gets them: gzip or brotli bodies that decode
/// to the file, a weak ETag that a reload sends back and gets 304 for, and
/// the console page itself only for a signed-in agent. Prints the sizes.
async fn web_assets_are_compressed_and_revalidated(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin().await;
    // No redirects followed, no decompression: the bytes as sent.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    // The admin's session, sent by hand: this client keeps no cookies.
    let session = format!(
        "kefu_session={}",
        admin.session_cookie.as_deref().expect("signed in")
    );
    let get = |rb: reqwest::RequestBuilder, encoding: &'static str, etag: Option<String>| {
        let http = http.clone();
        let session = session.clone();
        async move {
            let mut rb = rb
                .header("accept-encoding", encoding)
                .header("cookie", session);
            if let Some(t) = etag {
                rb = rb.header("if-none-match", t);
            }
            let res = http
                .execute(rb.build().expect("request"))
                .await
                .expect("send");
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            (status, headers, res.bytes().await.expect("body").to_vec())
        }
    };
    let header = |h: &reqwest::header::HeaderMap, name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // The console's files: its page (signed in), stylesheet and modules.
    let mut files = vec![("/".to_string(), web.join("console.html"))];
    files.push(("/assets/kefu.css".into(), web.join("kefu.css")));
    let mut modules: Vec<_> = std::fs::read_dir(web.join("console"))
        .expect("web/console")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".js"))
        .collect();
    modules.sort();
    assert!(modules.len() >= 10, "{modules:?}");
    for m in &modules {
        files.push((format!("/assets/console/{m}"), web.join("console").join(m)));
    }
    files.push(("/widget.js".into(), web.join("widget.js")));

    let mut totals = std::collections::BTreeMap::<(&str, &str), usize>::new();
    for (path, file) in &files {
        let original = std::fs::read(file).expect("the file on disk");
        let kind = if path == "/widget.js" {
            "widget"
        } else {
            "console"
        };
        let mut tags = Vec::new();
        for encoding in ["gzip", "br", "identity"] {
            let (status, h, body) =
                get(http.get(format!("{}{path}", s.base)), encoding, None).await;
            assert_eq!(status, 200, "{path} {encoding}");
            let decoded = match encoding {
                "gzip" => {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&body[..]),
                        &mut out,
                    )
                    .expect("gzip");
                    out
                }
                "br" => {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(
                        &mut brotli::Decompressor::new(&body[..], 4096),
                        &mut out,
                    )
                    .expect("brotli");
                    out
                }
                _ => body.clone(),
            };
            assert_eq!(decoded, original, "{path} {encoding} decodes to the file");
            if encoding == "identity" {
                assert_eq!(header(&h, "content-encoding"), None, "{path}");
            } else {
                assert_eq!(
                    header(&h, "content-encoding").as_deref(),
                    Some(encoding),
                    "{path}"
                );
                assert!(body.len() < original.len(), "{path} {encoding} is smaller");
                assert!(
                    header(&h, "vary")
                        .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
                    "{path}: a cache keeps encodings apart"
                );
            }
            *totals.entry((kind, encoding)).or_default() += body.len();
            let tag = header(&h, "etag").expect("an ETag");
            assert!(tag.starts_with("W/\"") && tag.ends_with('"'), "{tag}");
            tags.push(tag.clone());

            // A reload sends the tag back: 304, no body, the tag again.
            let (status, h, body) = get(
                http.get(format!("{}{path}", s.base)),
                encoding,
                Some(tag.clone()),
            )
            .await;
            assert_eq!(status, 304, "{path} {encoding} revalidated");
            assert!(body.is_empty(), "{path}: no body with 304");
            assert_eq!(header(&h, "etag"), Some(tag.clone()));
            assert!(header(&h, "cache-control").is_some(), "{path}");
        }
        // One tag whatever the encoding; another file's tag does not match.
        assert!(tags.windows(2).all(|w| w[0] == w[1]), "{path}: {tags:?}");
        let (status, _, _) = get(
            http.get(format!("{}{path}", s.base)),
            "gzip",
            Some("W/\"00000000000000000000000000000000\"".into()),
        )
        .await;
        assert_eq!(status, 200, "{path}: a stale tag gets the file");
    }
    for ((kind, encoding), n) in &totals {
        println!("{kind} {encoding}: {n} bytes");
    }

    // Signed out, the console page is a redirect to the sign-in page.
    let res = http.get(format!("{}/", s.base)).send().await.expect("send");
    let (status, h) = (res.status().as_u16(), res.headers().clone());
    assert_eq!(status, 303);
    assert_eq!(header(&h, "location").as_deref(), Some("/login"));
}

/// Reads until the end of the HTTP head (`\r\n\r\n`).
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read");
        assert!(
            n == 1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    String::from_utf8(buf).expect("utf-8 head")
}

async fn graceful_shutdown_lets_in_flight_requests_finish(b: Backend) {
    let mut s = TestServer::start(b).await;
    let agent = s.create_agent("li@kefu.test", "小李", Role::Agent).await;
    let agent_id: uuid::Uuid = id(&agent).parse().expect("uuid");

    // A login whose body is held back: once the server answers
    // `100 Continue`, the handler is running and waiting for the body, so
    // the request is in flight when the shutdown signal comes.
    let body = json!({ "email": "li@kefu.test", "password": PASSWORD }).to_string();
    let mut stream = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        s.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let interim = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .expect("100 Continue within 10 s");
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");

    s.trigger_shutdown();
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the answer within 20 s")
        .expect("read the answer");
    let answer = String::from_utf8(answer).expect("utf-8 answer");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.to_lowercase().contains("set-cookie: kefu_session="),
        "{answer}"
    );
    assert!(answer.contains("\"csrf_token\""), "{answer}");

    s.stop().await.expect("serve() returns Ok");
    assert_eq!(
        s.store
            .list_sessions(agent_id)
            .await
            .expect("sessions")
            .len(),
        1,
        "the login finished and was committed"
    );
    assert!(
        tokio::net::TcpStream::connect(s.addr).await.is_err(),
        "no longer listening"
    );
}

//! The harness every HTTP test shares: a real kefu server on 127.0.0.1:0
//! (through `kefu_server::serve`) over a real store — a SQLite file in a
//! temporary directory, or a fresh PostgreSQL database — and clients that
//! talk to it the way a browser (cookie + CSRF header) or an integration
//! (Bearer token) does.
//!
//! `both_backends!(name, …)` turns each `async fn name(Backend)` of a test
//! file into `name::sqlite` and `name::postgres`. The PostgreSQL variant
//! needs `KEFU_TEST_POSTGRES_URL` (a superuser URL; each test creates its own
//! database); without it the variant is skipped, unless
//! `KEFU_REQUIRE_POSTGRES=1`, which turns the skip into a failure.

#![allow(dead_code)]

pub mod mail;

use kefu_core::{NewAgent, Role};
use kefu_server::config::RateLimits;
use kefu_server::{AppState, ServerConfig};
pub use kefu_store::Backend;
use kefu_store::Store;
use kefu_store::blobs::Blobs;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::OnceLock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One test body, run once per backend. The server and the test share a
/// two-thread runtime, so concurrent requests really overlap.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::common::postgres_url().is_some() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        }
    )+};
}

/// The superuser URL of the test PostgreSQL server, or `None` (after saying
/// so) when there is none and none is required.
pub fn postgres_url() -> Option<String> {
    match std::env::var("KEFU_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("KEFU_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "KEFU_REQUIRE_POSTGRES=1 but KEFU_TEST_POSTGRES_URL is not set: \
                     run the suite through scripts/test, or point KEFU_TEST_POSTGRES_URL \
                     at a PostgreSQL superuser"
                );
            }
            eprintln!("skipping the PostgreSQL variant: KEFU_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Every rate limit off: tests that want one set it.
pub fn config() -> ServerConfig {
    ServerConfig {
        limits: RateLimits {
            requests_per_second_per_ip: 0,
            logins_per_minute_per_ip: 0,
            logins_per_minute_per_account: 0,
            widget_sessions_per_minute_per_ip: 0,
            form_submissions_per_minute_per_ip: 0,
        },
        ..ServerConfig::default()
    }
}

pub const PASSWORD: &str = "correct horse 电池 staple";

/// The argon2 hash of [`PASSWORD`], computed once per test binary: hashing
/// costs tens of milliseconds and most tests create several agents.
async fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    if let Some(h) = HASH.get() {
        return h.clone();
    }
    let h = kefu_server::auth::hash_password(PASSWORD.into())
        .await
        .expect("hash password");
    HASH.get_or_init(|| h).clone()
}

pub struct TestServer {
    pub backend: Backend,
    pub base: String,
    pub addr: SocketAddr,
    /// The database URL, to open a second node or a restarted server on it.
    pub url: String,
    pub store: Store,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, config()).await
    }

    pub async fn start_with(backend: Backend, config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = kefu_testdb::url(backend == Backend::Postgres, dir.path())
            .await
            .expect("PostgreSQL variant without KEFU_TEST_POSTGRES_URL");
        let store = Store::open(&url).await.expect("open the store");
        assert_eq!(store.backend(), backend);
        let blobs = Blobs::new(dir.path().join("attachments"));
        let state = AppState::new(store.clone(), blobs, config);
        // As `kefu serve` does: the email channel checks inbox settings.
        state.set_inbox_settings_check(kefu_mail::channel::check_inbox_settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(kefu_server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestServer {
            backend,
            base: format!("http://{addr}"),
            addr,
            url,
            store,
            state,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Signals shutdown without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `serve` to return (at most 10 s).
    pub async fn stop(&mut self) -> std::io::Result<()> {
        self.trigger_shutdown();
        let handle = self.handle.take().expect("server already stopped");
        tokio::time::timeout(std::time::Duration::from_secs(10), handle)
            .await
            .expect("serve() did not return within 10 s of shutdown")
            .expect("serve task panicked")
    }

    /// Creates an agent directly in the store, with [`PASSWORD`].
    pub async fn create_agent(&self, email: &str, name: &str, role: Role) -> Value {
        let hash = password_hash().await;
        let agent = self
            .store
            .create_agent(
                &NewAgent {
                    email: email.into(),
                    name: name.into(),
                    role,
                    password: None,
                },
                Some(&hash),
            )
            .await
            .expect("create agent");
        serde_json::to_value(agent).expect("agent as JSON")
    }

    /// A client without credentials (keeps cookies it is given).
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("reqwest client"),
            base: self.base.clone(),
            csrf: None,
            bearer: None,
            cookie: None,
            session_id: None,
            session_cookie: None,
            agent: Value::Null,
        }
    }

    /// A client authenticating with an API token only.
    pub fn token_client(&self, token: &str) -> Client {
        let mut c = self.client();
        c.bearer = Some(token.to_string());
        c
    }

    /// A client replaying a session cookie by hand (as a stolen or
    /// remembered cookie would be), with its CSRF token.
    pub fn cookie_client(&self, cookie: &str, csrf: Option<&str>) -> Client {
        let mut c = self.client();
        c.http = reqwest::Client::new();
        c.cookie = Some(cookie.to_string());
        c.csrf = csrf.map(str::to_string);
        c
    }

    /// Logs in through the API; panics unless it succeeds.
    pub async fn login(&self, email: &str, password: &str) -> Client {
        let mut c = self.client();
        let res = c.login(email, password).await;
        assert_eq!(res.status, 200, "login of {email} failed: {}", res.body);
        c
    }

    /// Creates an agent with [`PASSWORD`] and logs them in.
    pub async fn agent_client(&self, email: &str, name: &str, role: Role) -> Client {
        self.create_agent(email, name, role).await;
        self.login(email, PASSWORD).await
    }

    /// The usual first admin, logged in.
    pub async fn admin(&self) -> Client {
        self.agent_client("admin@kefu.test", "管理员", Role::Admin)
            .await
    }
}

/// An answer: status, JSON body (`Null` when empty, a string when not JSON)
/// and headers.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an API error: the status and `{"error": {"code", "message"}}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "wrong status, body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.body
        );
        self
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        &self.body
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// Sent as X-CSRF-Token on writes when set.
    pub csrf: Option<String>,
    pub bearer: Option<String>,
    /// A session cookie sent by hand (see `TestServer::cookie_client`).
    pub cookie: Option<String>,
    pub session_id: Option<String>,
    /// The value of the session cookie the login set.
    pub session_cookie: Option<String>,
    /// The logged-in agent as the login answered it.
    pub agent: Value,
}

impl Client {
    pub fn agent_id(&self) -> &str {
        self.agent["id"].as_str().expect("client is not logged in")
    }

    /// POST /api/v1/auth/login; on success remembers the CSRF token, the
    /// session id and the cookie's value.
    pub async fn login(&mut self, email: &str, password: &str) -> Res {
        let res = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        if res.status == 200 {
            self.remember_session(&res);
        }
        res
    }

    pub fn remember_session(&mut self, res: &Res) {
        self.csrf = res.body["csrf_token"].as_str().map(str::to_string);
        self.session_id = res.body["session_id"].as_str().map(str::to_string);
        self.agent = res.body["agent"].clone();
        self.session_cookie = res
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("kefu_session="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string());
    }

    /// A request builder with this client's credentials attached.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let writing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.bearer {
            rb = rb.bearer_auth(t);
        }
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", format!("kefu_session={c}"));
        }
        if writing && let Some(c) = &self.csrf {
            rb = rb.header("x-csrf-token", c);
        }
        rb
    }

    /// Sends a request and reads the answer. Never accepts a 500, and checks
    /// that every API error has the `{"error": {"code", "message"}}` shape.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Res {
        let req = rb.build().expect("build request");
        let what = format!("{} {}", req.method(), req.url().path());
        let api = req.url().path().starts_with("/api/");
        let res = self.http.execute(req).await.expect("send request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("read body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        assert!(status < 500, "{what} answered {status}: {body}");
        if api && status >= 400 {
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "{what} answered {status} without the error shape: {body}"
            );
        }
        Res {
            status,
            body,
            headers,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Res {
        let mut rb = self.request(method, path);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    pub async fn get(&self, path: &str) -> Res {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Res {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Res {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Res {
        self.call(Method::DELETE, path, None).await
    }
}

// ------------------------------------------------------------ fixtures

/// Creates an inbox (as an admin) with these members.
pub async fn create_inbox(admin: &Client, name: &str, members: &[&str]) -> Value {
    admin
        .post(
            "/api/v1/inboxes",
            json!({ "kind": "api", "name": name, "member_ids": members }),
        )
        .await
        .ok(201)
        .clone()
}

/// Opens a conversation with a new contact and an incoming first message;
/// returns the answer's `conversation`.
pub async fn create_conversation(c: &Client, inbox_id: &str, text: &str) -> Value {
    let res = c
        .post(
            "/api/v1/conversations",
            json!({
                "inbox_id": inbox_id,
                "contact": { "name": "王小明" },
                "message": { "direction": "incoming", "text": text },
            }),
        )
        .await;
    res.ok(201)["conversation"].clone()
}

pub fn id(v: &Value) -> &str {
    v["id"].as_str().expect("value without an id")
}

/// The `id`s of a list (or of a page's `items`).
pub fn ids(v: &Value) -> Vec<String> {
    let list = if v.is_array() { v } else { &v["items"] };
    list.as_array()
        .expect("not a list")
        .iter()
        .map(|x| id(x).to_string())
        .collect()
}

pub fn ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .expect("timestamp is not a string")
        .parse()
        .expect("timestamp does not parse")
}

//! The `kefu` binary as an operator uses it: first start with its setup
//! link, `kefu admin` for agents and tokens, `kefu config print`, and a
//! graceful stop on SIGTERM — on SQLite and, when available, PostgreSQL.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEFU: &str = env!("CARGO_BIN_EXE_kefu");

/// Database flags for one backend: a data dir for SQLite, or a fresh
/// PostgreSQL database.
async fn db_args(postgres: bool, dir: &Path) -> Option<Vec<String>> {
    let mut args = vec!["--data-dir".to_string(), dir.display().to_string()];
    if postgres {
        let Ok(admin) = std::env::var("KEFU_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("KEFU_REQUIRE_POSTGRES").is_err(),
                "KEFU_REQUIRE_POSTGRES is set but KEFU_TEST_POSTGRES_URL is not"
            );
            eprintln!("skipping: KEFU_TEST_POSTGRES_URL not set");
            return None;
        };
        let name = format!("kefu_cli_{}", uuid_simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("connect to postgres");
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .expect("create database");
        let base = admin.rsplit_once('/').expect("url has a database").0;
        args.extend(["--database-url".to_string(), format!("{base}/{name}")]);
    }
    Some(args)
}

fn uuid_simple() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    )
}

fn kefu(args: &[String], extra: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(KEFU)
        .args(extra)
        .args(args)
        .env_remove("KEFU_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Starts `kefu serve` on a system-chosen port; returns the child, the base
/// URL and the lines it printed up to the listening line (and setup link).
fn serve(args: &[String]) -> (Child, String, Vec<String>) {
    serve_env(args, &[])
}

fn serve_env(args: &[String], env: &[(&str, &str)]) -> (Child, String, Vec<String>) {
    let mut child = Command::new(KEFU)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("KEFU_DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kefu serve");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut base = String::new();
    // The listening line comes last, after the setup link if there is one.
    while base.is_empty() {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(url) = line.trim().strip_prefix("kefu is listening on ") {
            base = url.to_string();
        }
        lines.push(line.trim().to_string());
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "no listening line in {lines:?}"
    );
    (child, base, lines)
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("kefu did not stop within 5 s of SIGTERM");
}

async fn operator_flow(postgres: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(args) = db_args(postgres, dir.path()).await else {
        return;
    };

    // First start: a setup link, since there is no admin.
    let (server, base, lines) = serve(&args);
    let link = lines
        .iter()
        .find(|l| l.contains("/setup?token="))
        .cloned()
        .unwrap_or_else(|| panic!("no setup link in {lines:?}"));
    assert!(link.starts_with(&base), "{link} should start with {base}");
    let http = reqwest::Client::new();
    let page = http.get(&link).send().await.expect("setup page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("setup.js"));

    // An admin from the shell, with the password on stdin.
    let (ok, out, err) = kefu(
        &args,
        &[
            "admin",
            "create",
            "--email",
            "Li.Lei@Example.com",
            "--name",
            "李雷",
            "--role",
            "admin",
        ],
        Some("long enough password\n"),
    );
    assert!(ok, "admin create failed: {err}");
    assert!(out.contains("li.lei@example.com"), "{out}");
    let (ok, _, err) = kefu(
        &args,
        &[
            "admin",
            "create",
            "--email",
            "li.lei@example.com",
            "--name",
            "again",
        ],
        Some("long enough password\n"),
    );
    assert!(
        !ok && err.contains("exists already"),
        "duplicate must fail clearly: {err}"
    );
    let (ok, _, err) = kefu(
        &args,
        &[
            "admin",
            "create",
            "--email",
            "short@example.com",
            "--name",
            "x",
        ],
        Some("short\n"),
    );
    assert!(
        !ok && err.contains("password"),
        "short password must fail: {err}"
    );

    // A token printed once; it works against the running server.
    let (ok, token, err) = kefu(
        &args,
        &[
            "admin",
            "token",
            "create",
            "--email",
            "li.lei@example.com",
            "--scope",
            "write",
        ],
        None,
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("kefu_"), "{token}");
    let me = http
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.expect("json");
    assert_eq!(body["agent"]["name"], "李雷");

    // The password from stdin logs in.
    let login = http.post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": "li.lei@example.com", "password": "long enough password" }))
        .send().await.expect("login");
    assert_eq!(login.status(), 200);

    // Listed without its secret, then revoked: the token stops working.
    let (ok, list, _) = kefu(
        &args,
        &["admin", "token", "list", "--email", "li.lei@example.com"],
        None,
    );
    assert!(
        ok && list.contains("write") && !list.contains(&token),
        "{list}"
    );
    let id = list
        .split_whitespace()
        .next()
        .expect("token id")
        .to_string();
    let (ok, _, err) = kefu(&args, &["admin", "token", "revoke", "--id", &id], None);
    assert!(ok, "{err}");
    let me = http
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 401);

    // SIGTERM stops the server cleanly.
    let status = terminate(server);
    assert!(status.success(), "kefu exited with {status}");

    // With an admin, the next start prints no setup link.
    let (server, _, lines) = serve(&args);
    assert!(
        !lines.iter().any(|l| l.contains("setup?token")),
        "{lines:?}"
    );
    assert!(terminate(server).success());
}

#[tokio::test]
async fn operator_flow_sqlite() {
    operator_flow(false).await;
}

#[tokio::test]
async fn operator_flow_postgres() {
    operator_flow(true).await;
}

/// `kefu serve` with `mail.smtp_listen` takes mail for an email inbox and
/// files it as a conversation.
#[tokio::test]
async fn served_smtp_listener_files_mail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(args) = db_args(false, dir.path()).await else {
        return;
    };
    let admin = [
        "admin",
        "create",
        "--email",
        "boss@shop.example",
        "--name",
        "店长",
        "--role",
        "admin",
    ];
    let (ok, _, err) = kefu(&args, &admin, Some("long enough password\n"));
    assert!(ok, "{err}");
    let create_token = [
        "admin",
        "token",
        "create",
        "--email",
        "boss@shop.example",
        "--scope",
        "admin",
    ];
    let (ok, token, err) = kefu(&args, &create_token, None);
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    let (server, base, lines) = serve_env(&args, &[("KEFU_MAIL__SMTP_LISTEN", "127.0.0.1:0")]);
    let smtp = lines
        .iter()
        .find_map(|l| l.strip_prefix("kefu receives mail on smtp://"))
        .unwrap_or_else(|| panic!("no SMTP line in {lines:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let inbox: serde_json::Value = http
        .post(format!("{base}/api/v1/inboxes"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "kind": "email", "name": "售后邮箱",
            "settings": { "email": { "address": "help@shop.example" } } }))
        .send()
        .await
        .expect("inbox")
        .json()
        .await
        .expect("json");
    let replies = smtp_dialogue(
        &smtp,
        &[
            "EHLO customer.example",
            "MAIL FROM:<wang@customer.example>",
            "RCPT TO:<help@shop.example>",
            "DATA",
            "From: wang@customer.example\r\nTo: help@shop.example\r\nSubject: =?UTF-8?B?6YCA5qy+?=\r\n\
             Message-ID: <m1@customer.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             我想申请退款\r\n.",
            "QUIT",
        ],
    );
    assert!(replies[4].starts_with("250"), "{replies:?}");
    let list: serde_json::Value = http
        .get(format!(
            "{base}/api/v1/conversations?inbox_id={}",
            inbox["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let item = &list["items"][0];
    assert_eq!(item["subject"], "退款", "{list}");
    assert_eq!(item["last_message"]["text"], "我想申请退款");
    assert!(terminate(server).success());
}

/// `kefu serve` with a certificate path that cannot be read stops at once
/// and names the setting and the file; a certificate without its key is a
/// configuration problem.
#[tokio::test]
async fn serve_refuses_bad_tls_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(args) = db_args(false, dir.path()).await else {
        return;
    };
    let run = |env: &[(&str, &str)]| {
        Command::new(KEFU)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove("KEFU_DATABASE_URL")
            .env("KEFU_MAIL__SMTP_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .expect("run kefu serve")
    };
    let missing = dir.path().join("no-such-cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    )
    .expect("key");
    let out = run(&[
        ("KEFU_MAIL__TLS_CERT", missing.to_str().expect("utf-8")),
        ("KEFU_MAIL__TLS_KEY", key.to_str().expect("utf-8")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("mail.tls_cert") && err.contains("no-such-cert.pem"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("kefu is listening"));
    let out = run(&[("KEFU_MAIL__TLS_CERT", missing.to_str().expect("utf-8"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("mail.tls_cert is set but mail.tls_key is not"),
        "{err}"
    );
}

/// Sends each line (the greeting first is read), returning each reply's
/// last line.
fn smtp_dialogue(addr: &str, lines: &[&str]) -> Vec<String> {
    let stream = std::net::TcpStream::connect(addr).expect("connect smtp");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let read_reply = |reader: &mut BufReader<std::net::TcpStream>| loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reply");
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return line.trim().to_string();
        }
    };
    let greeting = read_reply(&mut reader);
    assert!(greeting.starts_with("220"), "{greeting}");
    lines
        .iter()
        .map(|l| {
            writer
                .write_all(format!("{l}\r\n").as_bytes())
                .expect("write");
            read_reply(&mut reader)
        })
        .collect()
}

#[test]
fn config_print_masks_secrets_and_reports_bad_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(KEFU)
        .args(["config", "print"])
        .env(
            "KEFU_DATABASE_URL",
            "postgres://kefu:hunter2@db.internal:5432/kefu?password=hunter3&sslpassword=hunter4&sslmode=require",
        )
        .env("KEFU_SERVER__SESSION_DAYS", "9")
        .current_dir(dir.path())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "postgres://kefu:****@db.internal:5432/kefu?password=****&sslpassword=****&sslmode=require"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter"), "{text}");
    assert!(text.contains("session_days = 9"), "{text}");

    std::fs::write(
        dir.path().join("kefu.toml"),
        "[server]\nsession_days = 0\nmax_json_bytes = 10\n",
    )
    .expect("write");
    let out = Command::new(KEFU)
        .args(["config", "print"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("session_days") && err.contains("max_json_bytes"),
        "all problems at once: {err}"
    );

    std::fs::remove_file(dir.path().join("kefu.toml")).expect("remove");
    // The database-open error and the migrate message show the URL masked.
    let out = Command::new(KEFU)
        .args([
            "--database-url",
            "mysql://kefu:hunter5@db/kefu?password=hunter6&api_token=hunter7",
            "migrate",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("mysql://kefu:****@db/kefu?password=****&api_token=****"),
        "{err}"
    );
    assert!(!err.contains("hunter"), "{err}");
    let db = dir.path().join("kefu.db");
    let out = Command::new(KEFU)
        .args([
            "--database-url",
            &format!("sqlite://{}?mode=rwc&password=hunter8", db.display()),
            "migrate",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("password=****"), "{said}");
    assert!(!said.contains("hunter"), "{said}");
    let out = Command::new(KEFU)
        .args(["--database-url", "mysql://x", "migrate"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unsupported database URL"),
        "{err}"
    );
}

/// The data directory and everything kefu creates in it are private to its
/// user — they hold the visitor signing key, mail passwords and DKIM keys —
/// also when an older version left them readable by everyone.
#[cfg(unix)]
#[tokio::test]
async fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let root = tempfile::tempdir().expect("tempdir");
    // A fresh directory, and one left world-readable by an older kefu.
    let fresh = root.path().join("fresh");
    let old = root.path().join("old");
    std::fs::create_dir_all(old.join("attachments")).expect("mkdir");
    std::fs::write(old.join("kefu.db"), b"").expect("old db");
    for p in [&old, &old.join("attachments")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(old.join("kefu.db"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    for dir in [&fresh, &old] {
        let args = vec!["--data-dir".to_string(), dir.display().to_string()];
        let (child, base, _) = serve(&args);
        // A request that writes, so the WAL and SHM exist.
        let res = reqwest::get(format!("{base}/readyz"))
            .await
            .expect("readyz");
        assert_eq!(res.status(), 200);
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        for f in ["kefu.db", "kefu.db-wal", "kefu.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f} in {}", dir.display());
        }
        assert_eq!(mode(&dir.join("attachments")), 0o700);
        assert!(terminate(child).success());
    }
}

//! The IMAP poller against a real Dovecot on loopback.
//!
//! Uses the server in `KEFU_TEST_IMAP` (`host:port`, with `KEFU_TEST_IMAP_USER` and
//! `KEFU_TEST_IMAP_PASSWORD`) when set; otherwise starts one with `tests/dovecot.sh`.
//! Skips with a message when Dovecot cannot be had, unless `KEFU_REQUIRE_IMAP=1`.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use futures::TryStreamExt;
use kefu_mail::imap::{
    AfterDelivery, Cursor, ImapConfig, ImapHandler, ImapHandlerError, ImapSecurity, ImapSession,
};

struct Dovecot {
    host: String,
    port: u16,
    user: String,
    password: String,
    /// Set when this test started the server, so Drop stops it.
    owned_dir: Option<String>,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned_dir {
            let _ = Command::new("bash")
                .arg(script())
                .args(["stop", dir])
                .status();
        }
    }
}

fn script() -> String {
    format!("{}/tests/dovecot.sh", env!("CARGO_MANIFEST_DIR"))
}

fn dovecot() -> Option<Dovecot> {
    let required = std::env::var("KEFU_REQUIRE_IMAP").is_ok_and(|v| v == "1");
    let vars: HashMap<String, String> = match std::env::var("KEFU_TEST_IMAP") {
        Ok(addr) => [
            ("KEFU_TEST_IMAP".to_string(), addr),
            (
                "KEFU_TEST_IMAP_USER".into(),
                std::env::var("KEFU_TEST_IMAP_USER").unwrap_or("kefu".into()),
            ),
            (
                "KEFU_TEST_IMAP_PASSWORD".into(),
                std::env::var("KEFU_TEST_IMAP_PASSWORD").unwrap_or("kefu-test-password".into()),
            ),
        ]
        .into_iter()
        .collect(),
        Err(_) => {
            let out = Command::new("bash").arg(script()).arg("start").output();
            match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                Ok(o) => {
                    let why = String::from_utf8_lossy(&o.stderr).into_owned();
                    assert!(
                        !required,
                        "KEFU_REQUIRE_IMAP=1 but dovecot.sh failed: {why}"
                    );
                    eprintln!("SKIPPED: no Dovecot for the IMAP tests ({why})");
                    return None;
                }
                Err(e) => {
                    assert!(
                        !required,
                        "KEFU_REQUIRE_IMAP=1 but cannot run dovecot.sh: {e}"
                    );
                    eprintln!("SKIPPED: cannot run dovecot.sh: {e}");
                    return None;
                }
            }
        }
    };
    let addr = vars.get("KEFU_TEST_IMAP")?;
    let (host, port) = addr.rsplit_once(':')?;
    Some(Dovecot {
        host: host.into(),
        port: port.parse().ok()?,
        user: vars.get("KEFU_TEST_IMAP_USER")?.clone(),
        password: vars.get("KEFU_TEST_IMAP_PASSWORD")?.clone(),
        owned_dir: vars.get("KEFU_TEST_IMAP_DIR").cloned(),
    })
}

fn config(d: &Dovecot, folder: &str, after: AfterDelivery) -> ImapConfig {
    ImapConfig {
        host: d.host.clone(),
        port: d.port,
        security: ImapSecurity::Plain,
        username: d.user.clone(),
        password: d.password.clone(),
        folder: folder.into(),
        after_delivery: after,
        timeout: Duration::from_secs(10),
    }
}

fn message(n: u32) -> Vec<u8> {
    format!("From: c{n}@example.cn\r\nTo: support@kefu.example\r\nSubject: 第{n}封\r\nMessage-ID: <m{n}@example.cn>\r\n\r\nbody {n}\r\n")
        .into_bytes()
}

async fn append(s: &mut ImapSession, folder: &str, n: u32) {
    s.raw()
        .append(folder, None, None, message(n))
        .await
        .expect("append");
}

/// UID → flags, via a separate session, as another mail client would see them.
async fn flags(cfg: &ImapConfig, folder: &str) -> HashMap<u32, Vec<String>> {
    let mut s = ImapSession::connect(cfg).await.expect("connect");
    s.raw().select(folder).await.expect("select");
    let fetches: Vec<_> = s
        .raw()
        .uid_fetch("1:*", "(UID FLAGS)")
        .await
        .expect("fetch")
        .try_collect()
        .await
        .expect("collect");
    let out = fetches
        .iter()
        .filter_map(|f| Some((f.uid?, f.flags().map(|fl| format!("{fl:?}")).collect())))
        .collect();
    s.logout().await;
    out
}

/// Records what it was given; skips or retries on demand; checks that the message is
/// not yet `\Seen` while it is being handled.
struct Recorder {
    cfg: ImapConfig,
    got: Mutex<Vec<(u32, Vec<u8>)>>,
    skip_body: Option<&'static str>,
    retry_body: Option<&'static str>,
}

impl ImapHandler for Recorder {
    async fn handle(&self, uid: u32, raw: Vec<u8>) -> Result<(), ImapHandlerError> {
        let seen = flags(&self.cfg, &self.cfg.folder).await;
        let flags = seen.get(&uid).cloned().unwrap_or_default();
        assert!(
            !flags.iter().any(|f| f.contains("Seen")),
            "uid {uid} already seen: {flags:?}"
        );
        let text = String::from_utf8_lossy(&raw).into_owned();
        if self.retry_body.is_some_and(|b| text.contains(b)) {
            return Err(ImapHandlerError::Retry("store down".into()));
        }
        if self.skip_body.is_some_and(|b| text.contains(b)) {
            return Err(ImapHandlerError::Skip("unparsable".into()));
        }
        self.got.lock().expect("lock").push((uid, raw));
        Ok(())
    }
}

fn recorder(cfg: &ImapConfig) -> Recorder {
    Recorder {
        cfg: cfg.clone(),
        got: Mutex::new(Vec::new()),
        skip_body: None,
        retry_body: None,
    }
}

#[tokio::test]
async fn polls_marks_resumes_and_skips() {
    let Some(d) = dovecot() else { return };
    let folder = "kefu-poll";
    let cfg = config(&d, folder, AfterDelivery::MarkSeen);
    let mut s = ImapSession::connect(&cfg).await.expect("connect");
    let _ = s.raw().create(folder).await;
    for n in 1..=3 {
        append(&mut s, folder, n).await;
    }

    // Message 2 is refused as unparsable: the others still go through.
    let mut h = recorder(&cfg);
    h.skip_body = Some("body 2");
    let out = s.poll(None, &h).await.expect("poll");
    assert!(!out.uid_validity_changed);
    assert_eq!(out.delivered, [1, 3]);
    assert_eq!(out.skipped, [(2, "unparsable".to_string())]);
    assert_eq!(out.cursor.last_uid, 3);
    assert_eq!(h.got.lock().expect("lock")[0].1, message(1));
    let f = flags(&cfg, folder).await;
    assert!(f[&1].iter().any(|x| x.contains("Seen")), "{f:?}");
    assert!(!f[&2].iter().any(|x| x.contains("Seen")), "{f:?}");
    assert!(f[&3].iter().any(|x| x.contains("Seen")), "{f:?}");

    // Resume by UID: only the new ones.
    append(&mut s, folder, 4).await;
    append(&mut s, folder, 5).await;
    let h = recorder(&cfg);
    let out = s.poll(Some(out.cursor), &h).await.expect("poll");
    assert_eq!(out.delivered, [4, 5]);
    assert_eq!(out.cursor.last_uid, 5);

    // Nothing new: nothing delivered, cursor unchanged.
    let again = s
        .poll(Some(out.cursor), &recorder(&cfg))
        .await
        .expect("poll");
    assert!(again.delivered.is_empty());
    assert_eq!(again.cursor, out.cursor);

    // The store is down at message 6: stop there, leave it unseen, deliver it next time.
    append(&mut s, folder, 6).await;
    append(&mut s, folder, 7).await;
    let mut h = recorder(&cfg);
    h.retry_body = Some("body 6");
    let stopped = s.poll(Some(out.cursor), &h).await.expect("poll");
    assert_eq!(stopped.stopped.as_deref(), Some("store down"));
    assert!(stopped.delivered.is_empty());
    assert_eq!(stopped.cursor.last_uid, 5);
    let h = recorder(&cfg);
    let resumed = s.poll(Some(stopped.cursor), &h).await.expect("poll");
    assert_eq!(resumed.delivered, [6, 7]);

    // UIDVALIDITY changed: say so, fetch nothing.
    let wrong = Cursor {
        uid_validity: resumed.cursor.uid_validity.wrapping_add(1),
        last_uid: 7,
    };
    let changed = s.poll(Some(wrong), &recorder(&cfg)).await.expect("poll");
    assert!(changed.uid_validity_changed);
    assert!(changed.delivered.is_empty());
    assert_eq!(
        changed.cursor,
        Cursor {
            uid_validity: resumed.cursor.uid_validity,
            last_uid: 0
        }
    );
    s.logout().await;
}

#[tokio::test]
async fn leave_and_move() {
    let Some(d) = dovecot() else { return };
    let (inbox, done) = ("kefu-move", "kefu-done");
    let mut s = ImapSession::connect(&config(&d, inbox, AfterDelivery::Leave))
        .await
        .expect("connect");
    let _ = s.raw().create(inbox).await;
    let _ = s.raw().create(done).await;
    append(&mut s, inbox, 1).await;
    append(&mut s, inbox, 2).await;

    // Leave: delivered, but the mailbox looks untouched.
    let cfg = config(&d, inbox, AfterDelivery::Leave);
    let out = s.poll(None, &recorder(&cfg)).await.expect("poll");
    assert_eq!(out.delivered, [1, 2]);
    let f = flags(&cfg, inbox).await;
    assert!(
        f.values().all(|fl| !fl.iter().any(|x| x.contains("Seen"))),
        "{f:?}"
    );
    s.logout().await;

    // Move: a fresh poller (no cursor) moves both to the done folder.
    let cfg = config(&d, inbox, AfterDelivery::MoveTo(done.into()));
    let mut s = ImapSession::connect(&cfg).await.expect("connect");
    let out = s.poll(None, &recorder(&cfg)).await.expect("poll");
    assert_eq!(out.delivered, [1, 2]);
    assert!(flags(&cfg, inbox).await.is_empty());
    assert_eq!(flags(&cfg, done).await.len(), 2);
    s.logout().await;
}

#[tokio::test]
async fn idle_wakes_on_new_mail() {
    let Some(d) = dovecot() else { return };
    let folder = "kefu-idle";
    let cfg = config(&d, folder, AfterDelivery::Leave);
    let mut s = ImapSession::connect(&cfg).await.expect("connect");
    let _ = s.raw().create(folder).await;
    let out = s.poll(None, &recorder(&cfg)).await.expect("poll");
    assert!(s.supports_idle());

    let appender = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut other = ImapSession::connect(&cfg).await.expect("connect");
        append(&mut other, folder, 1).await;
        other.logout().await;
    };
    let (idle, ()) = tokio::join!(s.idle(Duration::from_secs(20)), appender);
    let (mut s, changed) = idle.expect("idle");
    assert!(changed);
    let out = s
        .poll(Some(out.cursor), &recorder(&cfg))
        .await
        .expect("poll");
    assert_eq!(out.delivered, [1]);
    s.logout().await;
}

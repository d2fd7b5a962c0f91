//! `kefu import wechat` as a process: killed with SIGKILL while staging and
//! again while placing, then run to the end, it leaves exactly what one
//! clean run leaves; pointed at an export folder with its media inside and
//! a Big5 customer list, it exits 0.

use sqlx::{Connection, SqliteConnection};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGES: usize = 50_000;
const CUSTOMERS: usize = 2_000;

/// kf `msg_list` items, one per line: every customer's messages 10 h apart
/// with a 30 h silence after every fifth (so conversations split), agents
/// answering every other message.
fn generate(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let base: i64 = 1_700_000_000;
    for i in 0..MESSAGES {
        let (customer, k) = (i % CUSTOMERS, (i / CUSTOMERS) as i64);
        let at = base + k * 36_000 + (k / 5) * 108_000 + customer as i64;
        let origin = if k % 2 == 0 { 3 } else { 5 };
        let line = serde_json::json!({
            "msgid": format!("msg-{i}"), "open_kfid": "wk-1",
            "external_userid": format!("wm-{customer}"), "send_time": at, "origin": origin,
            "servicer_userid": format!("agent{}", customer % 7), "msgtype": "text",
            "text": {"content": format!("第 {k} 条，客户 {customer}")},
        });
        writeln!(out, "{line}").expect("write");
    }
    out.flush().expect("flush");
}

fn start(data: &Path, input: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--data-dir")
        .arg(data)
        .args(["import", "wechat", "--batch", "500", "--actor", "test"])
        .arg(input)
        .current_dir(data)
        .env("KEFU_LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kefu")
}

async fn scalar(data: &Path, sql: &'static str) -> Option<i64> {
    let url = format!("sqlite://{}?mode=ro", data.join("kefu.db").display());
    let mut c = SqliteConnection::connect(&url).await.ok()?;
    sqlx::query_scalar(sql).fetch_one(&mut c).await.ok()
}

/// Runs until `sql` counts more than zero, then kills the process with
/// SIGKILL. Returns whether it was still running when killed.
async fn kill_when(data: &Path, input: &Path, sql: &'static str) -> bool {
    let mut child = start(data, input);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if scalar(data, sql).await.unwrap_or(0) > 0 || Instant::now() > deadline {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finish(data: &Path, input: &Path) {
    let status = start(data, input).wait().expect("run");
    assert!(status.success(), "{status}");
}

/// Everything an import decides, without the ids and times it makes:
/// contacts by their identities, and each conversation as its messages'
/// keys, texts and senders in seq order.
async fn content(data: &Path) -> (Vec<String>, Vec<String>) {
    let url = format!("sqlite://{}?mode=ro", data.join("kefu.db").display());
    let mut c = SqliteConnection::connect(&url).await.expect("open");
    let contacts: Vec<String> = sqlx::query_scalar(
        "SELECT group_concat(kind || ':' || value, ',') FROM
           (SELECT contact_id, kind, value FROM contact_identities ORDER BY contact_id, kind, value)
         GROUP BY contact_id",
    )
    .fetch_all(&mut c)
    .await
    .expect("contacts");
    let conversations: Vec<String> = sqlx::query_scalar(
        "SELECT group_concat(line, '|') FROM
           (SELECT m.conversation_id AS cid, m.seq || ' ' || m.external_id || ' ' || m.text || ' '
                   || m.direction || ' ' || coalesce(a.email, m.sender_kind) AS line
            FROM messages m LEFT JOIN agents a ON a.id = m.sender_id
            ORDER BY m.conversation_id, m.seq)
         GROUP BY cid",
    )
    .fetch_all(&mut c)
    .await
    .expect("conversations");
    let (mut contacts, mut conversations) = (contacts, conversations);
    contacts.sort();
    conversations.sort();
    (contacts, conversations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_import_resumes_to_the_same_result() {
    let root = tempfile::tempdir().expect("tempdir");
    let input: PathBuf = root.path().join("kf.ndjson");
    generate(&input);
    let (killed, clean) = (root.path().join("killed"), root.path().join("clean"));
    std::fs::create_dir_all(&killed).expect("mkdir");
    std::fs::create_dir_all(&clean).expect("mkdir");

    let staging = kill_when(
        &killed,
        &input,
        "SELECT COUNT(*) FROM import_files WHERE line > 0 AND NOT done",
    )
    .await;
    let placing = kill_when(&killed, &input, "SELECT COUNT(*) FROM messages").await;
    eprintln!("killed while staging: {staging}, while placing: {placing}");
    assert!(staging, "the first run was killed before it finished");
    finish(&killed, &input);
    finish(&clean, &input);

    let (a, b) = (content(&killed).await, content(&clean).await);
    assert_eq!(a.0.len(), CUSTOMERS);
    assert!(
        b.1.len() > CUSTOMERS * 3,
        "conversations split: {}",
        b.1.len()
    );
    let messages: usize = b.1.iter().map(|c| c.split('|').count()).sum();
    assert_eq!(messages, MESSAGES);
    assert!(a == b, "a resumed import differs from a clean one");
    // A third run adds nothing.
    finish(&killed, &input);
    assert!(content(&killed).await == a);
}

/// The README's command over an export folder holding `media/` (named by
/// `--media`) and a Big5 customer list read with `--encoding big5`: the
/// media files are skipped and counted, not rejected, and the exit code is
/// 0 (it was 2, with every media file a rejected source).
#[test]
fn export_folder_with_media_and_encoding() {
    let root = tempfile::tempdir().expect("tempdir");
    let export = root.path().join("export");
    let media = export.join("media");
    std::fs::create_dir_all(&media).expect("mkdir");
    let item = serde_json::json!({"msgid": "m1", "open_kfid": "wk-1", "external_userid": "wm-1",
        "send_time": 1_700_000_000, "origin": 3, "msgtype": "image", "image": {"media_id": "MEDIA1"}});
    std::fs::write(export.join("kf.ndjson"), format!("{item}\n")).expect("write");
    std::fs::write(media.join("MEDIA1"), b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00").expect("write");
    std::fs::write(media.join("VOICE1"), b"#!AMR\n\x3c\x91").expect("write");
    let big5 = big5("客戶名稱,手機\r\n陳大文,0912345678\r\n");
    std::fs::write(export.join("客戶名單.csv"), big5).expect("write");
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let report = root.path().join("report.json");
    let status = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--data-dir")
        .arg(&data)
        .args(["import", "wechat", "--actor", "test", "--encoding", "big5"])
        .arg(&export)
        .arg("--media")
        .arg(&media)
        .arg("--report")
        .arg(&report)
        .current_dir(&data)
        .env("KEFU_LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run kefu");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(status.code(), Some(0), "{report:#}");
    assert_eq!(report["rejected"], 0);
    assert_eq!(report["skipped_media_files"], 2);
    assert_eq!(report["media_found"], 1);
    let csv = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["format"] == "csv")
        .expect("csv file");
    assert_eq!(csv["encoding"], "Big5");
}

/// `text` in Big5, as Excel on Traditional Chinese Windows saves it.
fn big5(text: &str) -> Vec<u8> {
    let big5 = kefu_import::encoding_for_label("big5").expect("big5");
    let (bytes, _, unmappable) = big5.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

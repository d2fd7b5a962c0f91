//! `kefu import wechat …`: flags → `kefu_import::Options`, then the report.

use clap::{Args, Subcommand, ValueEnum};
use kefu_import::{Encoding, Format, Options, PiiMode, PiiPolicy};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import WeChat / WeCom history, contacts, tags and media. Safe to run
    /// again (adds nothing twice) and while the server is serving.
    Wechat(WechatArgs),
    /// Write a CSV with a personal link per imported customer (everyone with
    /// a WeChat identity) that opens the chat widget already identified as
    /// them, with their history. Send them through WeChat while moving over.
    ContinuityLinks(LinkArgs),
}

#[derive(Args)]
pub struct LinkArgs {
    /// Where to write the CSV (contact_id,name,identities,url,expires_at).
    #[arg(long, value_name = "FILE.csv", required_unless_present = "revoke_all")]
    out: Option<PathBuf>,
    /// The widget inbox the links open [default: the only widget inbox].
    #[arg(long)]
    inbox: Option<uuid::Uuid>,
    /// Days until the links expire.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Base of the links [default: server.public_url, else http://LISTEN].
    #[arg(long)]
    base_url: Option<String>,
    /// Revoke every link made so far instead (they stop working at once).
    #[arg(long)]
    revoke_all: bool,
}

#[derive(Args)]
pub struct WechatArgs {
    /// Files or directories (read recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Read every file as this format instead of detecting it (kf-sync,
    /// kf-messages, kf-customers, archive, oa-records, oa-users, oa-tags,
    /// contacts, corp-tags, csv, xlsx).
    #[arg(long)]
    format: Option<Format>,
    /// Read and report everything; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// A longer silence starts a new conversation.
    #[arg(long, default_value_t = 24.0)]
    gap_hours: f64,
    /// Keep tags WeCom marks as deleted.
    #[arg(long)]
    keep_deleted_tags: bool,
    /// Import group chats (one conversation thread per room).
    #[arg(long)]
    keep_groups: bool,
    /// CSV of `userid,email` mapping WeChat userids to kefu agents.
    #[arg(long, value_name = "FILE.csv")]
    agent_map: Option<PathBuf>,
    /// Directory of media files named by media_id, sdkfileid or md5sum.
    #[arg(long, value_name = "DIR")]
    media: Option<PathBuf>,
    /// Also match media files by the md5 of their content (reads them all).
    #[arg(long)]
    hash_media: bool,
    /// Mobile numbers in message texts.
    #[arg(long, value_enum, default_value = "keep")]
    pii_mobile: Mode,
    /// Resident ID numbers (masked by default: never needed to answer).
    #[arg(long, value_enum, default_value = "mask")]
    pii_id: Mode,
    /// Bank card numbers (masked by default).
    #[arg(long, value_enum, default_value = "mask")]
    pii_card: Mode,
    /// Email addresses.
    #[arg(long, value_enum, default_value = "keep")]
    pii_email: Mode,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Who runs the import [default: the OS user].
    #[arg(long)]
    actor: Option<String>,
    /// Messages staged per transaction (one sorted run in the data
    /// directory's `import/`, cut earlier at 32 MB) at most; placing takes
    /// as many per transaction, up to 50,000.
    #[arg(long, default_value_t = 100_000)]
    batch: usize,
    /// Inbox for the imported conversations [default: "微信导入", created].
    #[arg(long)]
    inbox: Option<uuid::Uuid>,
    /// Encoding of CSV files, any WHATWG label (gbk, gb18030, big5,
    /// shift_jis, utf-16le…) [default: detected per file].
    #[arg(long, value_name = "LABEL", value_parser = kefu_import::encoding_for_label)]
    encoding: Option<&'static Encoding>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Keep,
    Mask,
    Drop,
}

impl From<Mode> for PiiMode {
    fn from(m: Mode) -> PiiMode {
        match m {
            Mode::Keep => PiiMode::Keep,
            Mode::Mask => PiiMode::Mask,
            Mode::Drop => PiiMode::Drop,
        }
    }
}

impl WechatArgs {
    fn options(self) -> Options {
        let mut o = Options::new(self.paths);
        o.format = self.format;
        o.dry_run = self.dry_run;
        o.gap_hours = self.gap_hours;
        o.keep_deleted_tags = self.keep_deleted_tags;
        o.keep_groups = self.keep_groups;
        o.agent_map = self.agent_map;
        o.media_dir = self.media;
        o.hash_media = self.hash_media;
        o.pii = PiiPolicy {
            mobile: self.pii_mobile.into(),
            resident_id: self.pii_id.into(),
            bank_card: self.pii_card.into(),
            email: self.pii_email.into(),
        };
        o.batch = self.batch;
        o.actor = self.actor.unwrap_or_else(os_user);
        o.inbox = self.inbox;
        o.encoding = self.encoding;
        o.progress = true;
        o
    }
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the import and returns the process exit code: 0, or 2 when lines
/// were rejected (errors are 1, through `main`).
pub async fn run(
    store: &kefu_store::Store,
    blobs: &kefu_store::blobs::Blobs,
    command: ImportCommand,
    public_url: &str,
) -> anyhow::Result<i32> {
    let args = match command {
        ImportCommand::Wechat(args) => args,
        ImportCommand::ContinuityLinks(args) => return links(store, args, public_url).await,
    };
    let report_path = args.report.clone();
    let report = kefu_import::run(store, blobs, &args.options()).await?;
    print!("{report}");
    if let Some(path) = report_path {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report.exit_code())
}

async fn links(store: &kefu_store::Store, args: LinkArgs, public_url: &str) -> anyhow::Result<i32> {
    if args.revoke_all {
        let n = kefu_app::App::new(store.clone())
            .revoke_links(None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("revoked {n} continuity links");
        return Ok(0);
    }
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    let inbox = match args.inbox {
        Some(id) => id,
        None => {
            let widgets: Vec<_> = store
                .list_inboxes(None)
                .await?
                .into_iter()
                .filter(|i| i.kind == kefu_core::InboxKind::Widget)
                .collect();
            match widgets.as_slice() {
                [one] => one.id,
                [] => {
                    anyhow::bail!("no widget inbox: create one first (the links open its widget)")
                }
                _ => anyhow::bail!("several widget inboxes: choose one with --inbox"),
            }
        }
    };
    let expires = kefu_core::time::now().timestamp() + args.days * 86_400;
    let base = args.base_url.as_deref().unwrap_or(public_url);
    let out = args.out.unwrap_or_default();
    let file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let app = kefu_app::App::new(store.clone());
    let n = app.write_links_csv(inbox, expires, base, file).await?;
    println!(
        "wrote {n} links to {} (valid for {} days)",
        out.display(),
        args.days
    );
    Ok(0)
}

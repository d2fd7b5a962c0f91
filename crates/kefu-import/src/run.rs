//! [`run`]: the order of the work, staging per file and placing per source.

use crate::convert::{Ctx, Item, Prepared, Skip, source_label};
use crate::files::{self, Batch, Input};
use crate::progress::Progress;
use crate::report::{FileReport, Report};
use crate::tags::TagBook;
use crate::{ImportError, Options, agents};
use kefu_core::{InboxKind, NewInbox, SlaPolicy};
use kefu_store::blobs::Blobs;
use kefu_store::{
    EncodedMessage, FileProgress, ImportContact, ImportWork, NewAttachment, PlaceOptions,
    StagedMessage, Store,
};
use kefu_wechat::media::{MediaIndex, Resolution};
use kefu_wechat::{Format, MessageSource, SessionChangeKind};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The inbox imported conversations go to unless `--inbox` names one.
const INBOX_NAME: &str = "微信导入";

/// Records the reader thread parses and converts per batch.
const READ_BATCH: usize = 1000;

/// A staging batch (one sorted run, one transaction) is cut at this many
/// bytes of encoded messages, or at `Options::batch` messages, whichever
/// comes first. Two are in memory at a time: one written while the next
/// fills.
const RUN_BYTES: usize = 32 << 20;

/// Contacts upserted per transaction: each is a few statements.
const CONTACT_BATCH: usize = 2000;

/// Messages placed per transaction at most: larger ones write each page of
/// the message and conversation indexes fewer times, and hold more in
/// memory.
const PLACE_ROWS: usize = 50_000;

/// Runs the import described by `opts`. Lines and files that cannot be read
/// are rejected in the report; only store and I/O failures end the run.
pub async fn run(store: &Store, blobs: &Blobs, opts: &Options) -> Result<Report, ImportError> {
    let started = std::time::Instant::now();
    let mut job = Job::new(store, blobs, opts)?;
    let inputs = job.inputs()?;
    if !opts.dry_run {
        let dir = opts.work_dir.clone().unwrap_or_else(|| {
            let data = blobs.dir().parent().unwrap_or(std::path::Path::new("."));
            data.join("import")
        });
        job.work = Some(store.import_work(&dir).await?);
        let files = json!(
            inputs
                .iter()
                .map(|i| i.path.display().to_string())
                .collect::<Vec<_>>()
        );
        let id = store
            .create_import_run("wechat", &opts.actor, false, &files)
            .await?;
        job.report.run_id = Some(id);
    }
    let result = job.all(&inputs).await;
    job.progress.finish();
    job.report.elapsed_secs = started.elapsed().as_secs_f64();
    if let Some(id) = job.report.run_id {
        let status = if result.is_ok() {
            job.report.status()
        } else {
            "failed"
        };
        let report = serde_json::to_value(&job.report).unwrap_or(Value::Null);
        store.finish_import_run(id, status, &report).await?;
    }
    result.map(|()| job.report)
}

/// A batch being written.
type Staging = tokio::task::JoinHandle<kefu_store::Result<kefu_store::StageCounts>>;

/// What a run carries from file to file.
struct Job<'a> {
    store: &'a Store,
    blobs: &'a Blobs,
    opts: &'a Options,
    report: Report,
    progress: Progress,
    media: Option<MediaIndex>,
    agent_map: HashMap<String, String>,
    /// Agents resolved so far, by WeChat userid (a few hundred at most).
    agents: HashMap<String, Uuid>,
    inbox: Option<Uuid>,
    tag_names: HashSet<String>,
    dry: DryCounts,
    /// Rows staged by an earlier run waited to be placed when this one
    /// started.
    leftovers: bool,
    /// The agent references of the rows this run staged and has not placed.
    staged_refs: std::collections::BTreeSet<String>,
    /// Where staged messages wait for placing (`None` in a dry run).
    work: Option<ImportWork>,
}

/// What is read from a file and not yet staged.
#[derive(Default)]
struct Pending {
    contacts: Vec<ImportContact>,
    messages: Vec<EncodedMessage>,
    bytes: usize,
}

impl Pending {
    fn is_full(&self, max_messages: usize) -> bool {
        self.contacts.len() >= CONTACT_BATCH
            || self.messages.len() >= max_messages
            || self.bytes >= RUN_BYTES
    }
}

/// Dry runs count what placing would do. Memory grows with customers, not
/// messages.
#[derive(Default)]
struct DryCounts {
    /// Identity → person number, to count people once across sources.
    people: HashMap<(String, String), u64>,
    /// Person number → the kinds of WeChat id the person has: a phone or
    /// email joins a record to a person only without a clash (as the store
    /// does).
    kinds: HashMap<u64, HashSet<String>>,
    sessions: HashMap<(String, String, String), Tail>,
    agents: HashSet<String>,
}

/// The placing rule of `Store::import_place`, so a dry run predicts what a
/// real one makes. Not `kefu_wechat::Sessionizer`: that one stops splitting
/// on gaps once a stream has session events, which the store does not do,
/// and a dry run that disagrees with the real run misleads.
#[derive(Default)]
struct Tail {
    last: Option<i64>,
    ended: bool,
}

impl Tail {
    /// Whether the message starts a conversation (messages in time order).
    fn push(&mut self, at: i64, session: Option<SessionChangeKind>, gap_ms: i64) -> bool {
        let starts = self.ended || self.last.is_none_or(|l| at.saturating_sub(l) > gap_ms);
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        self.ended = session == Some(SessionChangeKind::Ended);
        starts
    }
}

fn phase(f: Format) -> Option<MessageSource> {
    match f {
        Format::KfSync | Format::KfMessages => Some(MessageSource::Kf),
        Format::Archive => Some(MessageSource::Archive),
        Format::OaRecords => Some(MessageSource::Oa),
        _ => None,
    }
}

fn is_tag_file(f: Format) -> bool {
    matches!(f, Format::OaTags | Format::CorpTags)
}

impl<'a> Job<'a> {
    fn new(store: &'a Store, blobs: &'a Blobs, opts: &'a Options) -> Result<Self, ImportError> {
        let media = match &opts.media_dir {
            Some(dir) => {
                let mut index = MediaIndex::scan(dir).map_err(|e| ImportError::io(dir, e))?;
                if opts.hash_media {
                    index.hash_files();
                }
                Some(index)
            }
            None => None,
        };
        let agent_map = match &opts.agent_map {
            Some(p) => agents::read_map(p)?,
            None => HashMap::new(),
        };
        Ok(Job {
            store,
            blobs,
            opts,
            report: Report {
                dry_run: opts.dry_run,
                ..Default::default()
            },
            progress: Progress::new(false, 0),
            media,
            agent_map,
            agents: HashMap::new(),
            inbox: opts.inbox,
            tag_names: HashSet::new(),
            dry: DryCounts::default(),
            leftovers: false,
            staged_refs: Default::default(),
            work: None,
        })
    }

    /// The files with their formats; undetectable ones are rejected here.
    fn inputs(&mut self) -> Result<Vec<Input>, ImportError> {
        let walk = files::walk(&self.opts.paths, self.opts.media_dir.as_deref()).map_err(|e| {
            ImportError::Io {
                path: "input".into(),
                source: e,
            }
        })?;
        self.report.skipped_media_files = walk.media_files;
        let mut inputs = Vec::new();
        for p in walk.files {
            match files::detect(&p, self.opts.format) {
                Ok(files::Found::Source(i)) => inputs.push(i),
                Ok(files::Found::Binary(kind)) => {
                    self.report.skipped_binary_files += 1;
                    tracing::debug!(path = %p.display(), kind, "not a source, skipped");
                }
                Err(e) => self.reject_file(&p.display().to_string(), None, e.to_string()),
            }
        }
        let total = inputs.iter().map(|i| i.size).sum();
        self.progress = Progress::new(self.opts.progress, total);
        Ok(inputs)
    }

    fn reject_file(&mut self, path: &str, format: Option<Format>, reason: String) {
        self.report.reject(path, 0, reason);
        self.report.files.push(FileReport {
            path: path.into(),
            format: format.map(|f| f.to_string()),
            status: "rejected".into(),
            records: 0,
            resumed_at: 0,
            encoding: None,
        });
    }

    /// Tag files, then contact files, then each source's messages followed
    /// by placing them (so each conversation gets its source's tag).
    async fn all(&mut self, inputs: &[Input]) -> Result<(), ImportError> {
        if !self.opts.dry_run {
            self.leftovers = self.store.import_has_pending().await?;
        }
        let book = self.read_tags(inputs.iter().filter(|i| is_tag_file(i.format)));
        self.report.tag_definitions = book.len() as u64;
        let live = book.live_names(self.opts.keep_deleted_tags);
        self.report.tag_list = live.len() as u64;
        if !self.opts.dry_run {
            self.report.tags_created = self.store.ensure_tags(&live).await?;
        }
        let ctx = Arc::new(Ctx {
            tags: Arc::new(book),
            keep_deleted_tags: self.opts.keep_deleted_tags,
            keep_groups: self.opts.keep_groups,
            pii: self.opts.pii,
            sheet: kefu_wechat::SheetOptions {
                encoding: self.opts.encoding,
                ..Default::default()
            },
        });
        for input in inputs
            .iter()
            .filter(|i| !is_tag_file(i.format) && phase(i.format).is_none())
        {
            self.file(input, &ctx).await?;
        }
        for source in [MessageSource::Kf, MessageSource::Archive, MessageSource::Oa] {
            let mine: Vec<&Input> = inputs
                .iter()
                .filter(|i| phase(i.format) == Some(source))
                .collect();
            for input in &mine {
                self.file(input, &ctx).await?;
            }
            if !mine.is_empty() {
                self.place(Some(source_label(source))).await?;
            }
        }
        // Rows left staged by an interrupted run over other files.
        self.place(None).await?;
        self.report.tags = self.tag_names.len() as u64;
        if self.opts.dry_run {
            self.report.contacts_created =
                self.dry.people.values().collect::<HashSet<_>>().len() as u64;
        }
        Ok(())
    }

    /// Tag files are read in full by every run, even when done before: a
    /// resumed run needs their names for the contacts it has left.
    fn read_tags<'i>(&mut self, inputs: impl Iterator<Item = &'i Input>) -> TagBook {
        let mut book = TagBook::default();
        for input in inputs {
            let path = input.path.display().to_string();
            let records =
                match kefu_wechat::open(&input.path, Some(input.format), Default::default()) {
                    Ok((_, r)) => r,
                    Err(e) => {
                        self.reject_file(&path, Some(input.format), e.to_string());
                        continue;
                    }
                };
            let mut n = 0;
            for r in records {
                n += 1;
                match r {
                    Ok(kefu_wechat::Record::TagGroup(g)) => book.add(&g),
                    Ok(_) => {}
                    Err(e) => self.report.reject(&path, e.line, e.reason),
                }
            }
            self.report.files.push(FileReport {
                path,
                format: Some(input.format.to_string()),
                status: "read".into(),
                records: n,
                resumed_at: 0,
                encoding: None,
            });
            self.progress.file_done(input.size);
        }
        book
    }

    /// Stages one file batch by batch, each batch committed with the file's
    /// progress; a file finished by an earlier run is skipped.
    async fn file(&mut self, input: &Input, ctx: &Arc<Ctx>) -> Result<(), ImportError> {
        let path = input.path.display().to_string();
        let fingerprint =
            files::fingerprint(&input.path).map_err(|e| ImportError::io(&input.path, e))?;
        let before = match self.opts.dry_run {
            true => None,
            false => self.store.import_progress(&fingerprint).await?,
        };
        let mut file = FileReport {
            path: path.clone(),
            format: Some(input.format.to_string()),
            status: if self.opts.dry_run {
                "read"
            } else {
                "imported"
            }
            .into(),
            records: 0,
            resumed_at: before.as_ref().map_or(0, |p| p.line),
            encoding: None,
        };
        if before.as_ref().is_some_and(|p| p.done) {
            file.status = "already_done".into();
            self.report.files.push(file);
            self.progress.file_done(input.size);
            return Ok(());
        }
        self.progress.file(&path);
        let mut progress = FileProgress {
            fingerprint,
            path: path.clone(),
            format: input.format.to_string(),
            byte_offset: 0,
            line: file.resumed_at,
            done: false,
        };
        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        let reader = {
            let (input, ctx, skip) = (input.clone(), ctx.clone(), file.resumed_at);
            tokio::task::spawn_blocking(move || files::read(&input, skip, READ_BATCH, &ctx, tx))
        };
        // A batch is written (sorted, its keys checked, the run file and the
        // file's progress recorded) while the next one is read and
        // converted. Batches commit in order, each with the progress up to
        // its end.
        let mut pending = Pending::default();
        let mut writing: Option<Staging> = None;
        while let Some(batch) = rx.recv().await {
            file.records += batch.consumed - progress.line;
            progress.line = batch.consumed;
            progress.byte_offset = batch.bytes;
            if file.encoding.is_none() {
                file.encoding = batch.encoding.map(str::to_string);
            }
            self.report.pii.merge(&batch.pii);
            self.take(&path, batch.items, &mut pending).await?;
            if !self.opts.dry_run && pending.is_full(self.opts.batch.max(1)) {
                if let Some(w) = writing.take() {
                    self.staged(&path, w).await?;
                }
                let batch = std::mem::take(&mut pending);
                writing = Some(self.stage(input.format, batch, progress.clone()));
            }
            self.progress.at(batch.bytes);
        }
        if let Some(w) = writing.take() {
            self.staged(&path, w).await?;
        }
        let opened = reader
            .await
            .map_err(|e| ImportError::Reader(e.to_string()))?;
        if let Err(e) = opened {
            file.status = "rejected".into();
            self.report.reject(&path, 0, e.to_string());
        } else if !self.opts.dry_run {
            progress.done = true;
            let last = self.stage(input.format, pending, progress);
            self.staged(&path, last).await?;
        }
        self.report.files.push(file);
        self.progress.file_done(input.size);
        Ok(())
    }

    /// Starts writing a batch of a file of `format`; [`Job::staged`] waits
    /// for it.
    fn stage(&self, format: Format, batch: Pending, progress: FileProgress) -> Staging {
        let store = self.store.clone();
        let work = self.work.clone();
        let source = phase(format).map_or("", source_label);
        tokio::spawn(async move {
            let Some(work) = work else {
                return Ok(Default::default());
            };
            store
                .import_stage(&work, source, &batch.contacts, batch.messages, &progress)
                .await
        })
    }

    /// Waits for a batch of the file at `path` to be written and counts it.
    async fn staged(&mut self, path: &str, writing: Staging) -> Result<(), ImportError> {
        let c = writing
            .await
            .map_err(|e| ImportError::Writer(e.to_string()))??;
        self.report.contact_matches(path, c.merges, c.conflicts);
        self.report.contacts_created += c.contacts_created;
        self.report.contacts_updated += c.contacts_updated;
        self.report.messages += c.messages_staged;
        self.report.messages_already_imported += c.messages_already_staged;
        Ok(())
    }

    /// Sorts a batch into contacts and messages (added to `pending`),
    /// counting the rest.
    async fn take(
        &mut self,
        path: &str,
        items: Vec<Item>,
        pending: &mut Pending,
    ) -> Result<(), ImportError> {
        for it in items {
            match it {
                Item::Rejected(r) => self.report.reject(path, r.line, r.reason),
                Item::Skipped(Skip::Group) => self.report.skipped_group_messages += 1,
                Item::Skipped(Skip::NoCustomer) => self.report.skipped_without_customer += 1,
                Item::Skipped(Skip::NoIdentity) => self.report.skipped_contacts_without_id += 1,
                Item::Skipped(Skip::TagGroup) => {}
                Item::Contact(c) => {
                    self.tag_names.extend(c.tags.iter().cloned());
                    match self.opts.dry_run {
                        true => self.count_person(&c),
                        false => pending.contacts.push(*c),
                    }
                }
                Item::Message(m) => {
                    let staged = self.message(*m).await?;
                    if self.opts.dry_run {
                        continue;
                    }
                    if let Some(a) = &staged.agent_ref
                        && !self.staged_refs.contains(a)
                    {
                        self.staged_refs.insert(a.clone());
                    }
                    let encoded = staged.encode()?;
                    pending.bytes += encoded.size();
                    pending.messages.push(encoded);
                }
            }
        }
        Ok(())
    }

    /// The dry run's `upsert_contact`: a person by a WeChat id, else by a
    /// phone or email unless that person has another id of a kind the
    /// record has.
    fn count_person(&mut self, c: &ImportContact) {
        let (people, kinds) = (&mut self.dry.people, &mut self.dry.kinds);
        let next = people.len() as u64;
        let key = |i: &kefu_core::Identity| (i.kind.clone(), i.value.clone());
        let mut person = c
            .identities
            .iter()
            .find_map(|i| people.get(&key(i)).copied());
        if person.is_none() {
            for w in &c.weak_identities {
                let Some(&p) = people.get(&key(w)) else {
                    continue;
                };
                let clash = c
                    .identities
                    .iter()
                    .any(|i| kinds.get(&p).is_some_and(|k| k.contains(&i.kind)));
                if clash {
                    self.report.contact_conflicts += 1;
                } else {
                    self.report.contacts_merged += 1;
                    person = Some(p);
                    break;
                }
            }
        }
        let person = person.unwrap_or(next);
        for i in &c.identities {
            kinds.entry(person).or_default().insert(i.kind.clone());
            people.entry(key(i)).or_insert(person);
        }
        for w in &c.weak_identities {
            people.entry(key(w)).or_insert(person);
        }
    }

    async fn message(&mut self, m: Prepared) -> Result<StagedMessage, ImportError> {
        let Prepared {
            mut staged,
            media,
            session,
        } = m;
        if self.opts.dry_run {
            self.report.messages += 1;
            let key = (
                staged.customer.kind.clone(),
                staged.customer.value.clone(),
                staged.account.clone(),
            );
            let gap = self.gap_ms();
            if self
                .dry
                .sessions
                .entry(key)
                .or_default()
                .push(staged.sent_at, session, gap)
            {
                self.report.conversations += 1;
            }
            if let Some(a) = &staged.agent_ref {
                self.dry.agents.insert(a.clone());
            }
            if !self
                .dry
                .people
                .contains_key(&(staged.customer.kind.clone(), staged.customer.value.clone()))
            {
                self.count_person(&ImportContact {
                    identities: vec![staged.customer.clone()],
                    ..Default::default()
                });
            }
        }
        if !media.is_empty() {
            self.attach(&mut staged, &media).await?;
        }
        Ok(staged)
    }

    fn gap_ms(&self) -> i64 {
        (self.opts.gap_hours * 3_600_000.0) as i64
    }

    /// Stores the message's files found in the media directory as unlinked
    /// attachments (placing links them); records the missing ones in the
    /// message's metadata. Never fails the message.
    async fn attach(
        &mut self,
        staged: &mut StagedMessage,
        media: &[kefu_wechat::MediaRef],
    ) -> Result<(), ImportError> {
        let Some(index) = &self.media else {
            return Ok(());
        };
        let mut missing = Vec::new();
        for m in media {
            match index.resolve(m) {
                Resolution::Found { path, mime, .. } => {
                    self.report.media_found += 1;
                    if self.opts.dry_run {
                        continue;
                    }
                    let bytes = tokio::fs::read(&path)
                        .await
                        .map_err(|e| ImportError::io(&path, e))?;
                    let sha = self
                        .blobs
                        .put(&bytes)
                        .await
                        .map_err(|e| ImportError::io(self.blobs.dir(), e))?;
                    let filename = m
                        .filename
                        .clone()
                        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .unwrap_or_default();
                    let a = self
                        .store
                        .create_attachment(NewAttachment {
                            sha256: &sha,
                            filename: &filename,
                            content_type: mime.unwrap_or("application/octet-stream"),
                            size: bytes.len() as i64,
                            uploaded_by: None,
                        })
                        .await?;
                    staged.body.attachment_ids.push(a.id);
                }
                Resolution::Missing { keys } => {
                    self.report.media_missing += 1;
                    missing.push(json!({"kind": m.kind, "keys": keys, "filename": m.filename}));
                }
            }
        }
        if !missing.is_empty()
            && let Value::Object(map) = &mut staged.body.metadata
        {
            map.insert("media_missing".into(), Value::Array(missing));
        }
        Ok(())
    }

    /// Places everything staged and not yet placed.
    async fn place(&mut self, source: Option<&str>) -> Result<(), ImportError> {
        if self.opts.dry_run {
            self.report.agents_mapped = self.dry.agents.len() as u64;
            return Ok(());
        }
        // Reading them back scans every staged row (a second a million):
        // only when an earlier run left rows behind.
        let refs = match self.leftovers {
            true => self.store.import_pending_agent_refs().await?,
            false => std::mem::take(&mut self.staged_refs).into_iter().collect(),
        };
        agents::resolve(
            self.store,
            &refs,
            &self.agent_map,
            &mut self.agents,
            &mut self.report,
        )
        .await?;
        // The store adds each run's source to the tags.
        let tags = vec!["imported".to_string()];
        let opts = PlaceOptions {
            inboxes: HashMap::new(),
            default_inbox: self.inbox().await?,
            agents: self.agents.clone(),
            gap_ms: self.gap_ms(),
            tags,
            source: source.map(str::to_string),
        };
        let Some(work) = &self.work else {
            return Ok(());
        };
        let limit = self.opts.batch.clamp(1, PLACE_ROWS);
        while let Some(c) = self.store.import_place(work, &opts, limit).await? {
            let r = &mut self.report;
            r.conversations += c.conversations;
            r.messages_placed += c.messages;
            r.contacts_created += c.contacts_created;
            r.recalls_marked += c.recalls_marked;
            r.recalls_missing += c.recalls_missing;
            self.progress.placing(r.messages_placed);
        }
        Ok(())
    }

    /// The import inbox, found by name or created (once: a resumed run finds
    /// the one the killed run made).
    async fn inbox(&mut self) -> Result<Uuid, ImportError> {
        if let Some(id) = self.inbox {
            return Ok(id);
        }
        let existing = self.store.list_inboxes(None).await?;
        let id = match existing.iter().find(|i| i.name == INBOX_NAME) {
            Some(i) => i.id,
            None => {
                let new = NewInbox {
                    kind: InboxKind::Api,
                    name: INBOX_NAME.into(),
                    sla: SlaPolicy::default(),
                    settings: json!({"source": "wechat-import"}),
                    member_ids: vec![],
                };
                self.store.create_inbox(&new).await?.id
            }
        };
        self.inbox = Some(id);
        Ok(id)
    }
}

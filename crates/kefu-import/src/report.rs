//! What a run did (or, with `--dry-run`, would do): printed as text, written
//! as JSON with `--report`, and stored with the run in `import_runs`.

use kefu_wechat::pii::PiiSummary;
use serde::Serialize;
use std::fmt;

/// At most this many rejected lines are listed; `rejected` counts them all.
pub const MAX_LISTED: usize = 1000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub run_id: Option<uuid::Uuid>,
    pub dry_run: bool,
    pub files: Vec<FileReport>,
    /// Dry run: distinct people in the input. Otherwise: contacts inserted
    /// (by contact files and by placing messages of unknown customers).
    pub contacts_created: u64,
    pub contacts_updated: u64,
    /// Records joined to a contact of another source (or an earlier one)
    /// by a phone number or email: included in `contacts_updated`.
    pub contacts_merged: u64,
    /// Records that shared a phone number or email with a contact holding
    /// another WeChat id, and became a contact of their own.
    pub contact_conflicts: u64,
    /// The merges (at most [`MAX_LISTED`]; not listed by a dry run).
    pub merges: Vec<MergeLine>,
    /// The conflicts (at most [`MAX_LISTED`]; not listed by a dry run).
    pub conflicts: Vec<ConflictLine>,
    /// Distinct tag names given to contacts.
    pub tags: u64,
    /// Tag definitions read from tag files.
    pub tag_definitions: u64,
    /// The live tags of the tag files (deleted ones left out): all of them
    /// become kefu tags, carried by someone or not.
    pub tag_list: u64,
    /// Of those, the tags kefu did not have yet.
    pub tags_created: u64,
    /// Messages read and kept (dry run) or newly staged.
    pub messages: u64,
    /// Staged by an earlier run: a re-run adds nothing.
    pub messages_already_imported: u64,
    pub messages_placed: u64,
    pub conversations: u64,
    pub recalls_marked: u64,
    pub recalls_missing: u64,
    pub skipped_group_messages: u64,
    pub skipped_without_customer: u64,
    pub skipped_contacts_without_id: u64,
    /// Files in media folders (`--media`'s, any folder named `media`): not
    /// read as sources.
    pub skipped_media_files: u64,
    /// Other files that cannot be sources by their bytes (images, audio,
    /// video, archives, other binaries): not read, not rejected.
    pub skipped_binary_files: u64,
    /// Agents by WeChat userid: found among kefu's agents (or the map)…
    pub agents_mapped: u64,
    /// …or created as inactive placeholders.
    pub agents_created: u64,
    pub media_found: u64,
    pub media_missing: u64,
    pub pii: PiiSummary,
    pub rejected: u64,
    pub rejected_lines: Vec<RejectedLine>,
    pub elapsed_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub format: Option<String>,
    /// `imported`, `already_done` (finished by an earlier run), `read` (dry
    /// run or tag file) or `rejected`.
    pub status: String,
    /// Records read in this run (after those a resumed run skipped).
    pub records: u64,
    /// Records committed by an earlier, interrupted run and skipped.
    pub resumed_at: u64,
    /// The text encoding a CSV was read in (detected or `--encoding`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MergeLine {
    pub file: String,
    #[serde(flatten)]
    pub merge: kefu_store::ContactMerge,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConflictLine {
    pub file: String,
    #[serde(flatten)]
    pub conflict: kefu_store::ContactConflict,
}

#[derive(Debug, Clone, Serialize)]
pub struct RejectedLine {
    pub file: String,
    /// 1-based; 0 when the whole file was rejected.
    pub line: u64,
    pub reason: String,
}

impl Report {
    /// 0 when everything was read, 2 when something was rejected (fatal
    /// errors, which end the run early, are the binary's 1).
    pub fn exit_code(&self) -> i32 {
        if self.rejected > 0 { 2 } else { 0 }
    }

    /// The status recorded in `import_runs`.
    pub fn status(&self) -> &'static str {
        if self.rejected > 0 {
            "finished_with_rejections"
        } else {
            "finished"
        }
    }

    /// Counts and lists what placing contacts by phone or email did.
    pub fn contact_matches(
        &mut self,
        file: &str,
        merges: Vec<kefu_store::ContactMerge>,
        conflicts: Vec<kefu_store::ContactConflict>,
    ) {
        self.contacts_merged += merges.len() as u64;
        self.contact_conflicts += conflicts.len() as u64;
        for merge in merges {
            if self.merges.len() < MAX_LISTED {
                self.merges.push(MergeLine {
                    file: file.into(),
                    merge,
                });
            }
        }
        for conflict in conflicts {
            if self.conflicts.len() < MAX_LISTED {
                self.conflicts.push(ConflictLine {
                    file: file.into(),
                    conflict,
                });
            }
        }
    }

    pub fn reject(&mut self, file: &str, line: u64, reason: String) {
        self.rejected += 1;
        if self.rejected_lines.len() < MAX_LISTED {
            self.rejected_lines.push(RejectedLine {
                file: file.into(),
                line,
                reason,
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(f, "WeChat import ({verb}) in {:.1}s", self.elapsed_secs)?;
        for file in &self.files {
            let format = file.format.as_deref().unwrap_or("?");
            write!(
                f,
                "  {} [{format}] {}: {} records",
                file.path, file.status, file.records
            )?;
            if let Some(e) = &file.encoding {
                write!(f, " ({e})")?;
            }
            if file.resumed_at > 0 {
                write!(f, " (resumed after {})", file.resumed_at)?;
            }
            writeln!(f)?;
        }
        let rows: [(&str, u64); 22] = [
            ("contacts created", self.contacts_created),
            ("contacts updated", self.contacts_updated),
            ("merged by phone/email", self.contacts_merged),
            ("kept apart (other WeChat id)", self.contact_conflicts),
            ("tags", self.tags),
            ("tag list (live tags)", self.tag_list),
            ("tags created", self.tags_created),
            ("messages", self.messages),
            ("messages already imported", self.messages_already_imported),
            ("messages placed", self.messages_placed),
            ("conversations", self.conversations),
            ("recalls marked", self.recalls_marked),
            ("recalls without original", self.recalls_missing),
            ("group messages skipped", self.skipped_group_messages),
            ("events without customer", self.skipped_without_customer),
            ("media folder files skipped", self.skipped_media_files),
            ("binary files skipped", self.skipped_binary_files),
            ("agents mapped", self.agents_mapped),
            ("agent placeholders created", self.agents_created),
            ("media found", self.media_found),
            ("media missing", self.media_missing),
            ("rejected", self.rejected),
        ];
        for (label, n) in rows {
            if n > 0 || matches!(label, "messages" | "conversations" | "rejected") {
                writeln!(f, "  {label:<28}{n:>10}")?;
            }
        }
        let p = &self.pii;
        for (label, c) in [
            ("mobile", p.mobile),
            ("resident id", p.resident_id),
            ("bank card", p.bank_card),
            ("email", p.email),
        ] {
            if c.found > 0 {
                writeln!(
                    f,
                    "  PII {label:<24}{:>10} found: {} kept, {} masked, {} dropped",
                    c.found, c.kept, c.masked, c.dropped
                )?;
            }
        }
        for c in &self.conflicts {
            let c2 = &c.conflict;
            let ids = |ids: &[kefu_core::Identity]| {
                ids.iter()
                    .map(|i| format!("{}:{}", i.kind, i.value))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            writeln!(
                f,
                "  kept apart {}: {}:{} is also {}'s ({}); not merged",
                c.file,
                c2.shared.kind,
                c2.shared.value,
                ids(&c2.existing_ids),
                ids(&c2.record)
            )?;
        }
        for r in &self.rejected_lines {
            writeln!(f, "  rejected {}:{}: {}", r.file, r.line, r.reason)?;
        }
        if self.rejected as usize > self.rejected_lines.len() {
            writeln!(
                f,
                "  … and {} more rejected",
                self.rejected as usize - self.rejected_lines.len()
            )?;
        }
        Ok(())
    }
}

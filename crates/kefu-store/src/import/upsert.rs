//! Upserting a source's contact while staging: what is decided, made once
//! for both backends. Each asks the database one statement at a time, in
//! `sqlite.rs` and `postgres.rs`, and hands the answers to [`Upsert`]:
//!
//! 1. The first of the record's identities (strongest first) that belongs
//!    to a contact picks it.
//! 2. Else a weak identity (phone, email) does, unless the contact it finds
//!    holds an id of a kind the record has: that is another person sharing
//!    a number, and the record is kept apart ([`Upsert::weak_hit`]).
//! 3. A contact found is completed ([`COMPLETE_CONTACT`],
//!    [`Upsert::attributes`]) and given the identities it lacks; else the
//!    record is inserted, with its weak identities where they are free.

use super::{ContactConflict, ContactMerge, ImportContact, StageCounts};
use kefu_core::{Identity, NewContact};
use serde_json::Value;
use std::collections::BTreeSet;
use uuid::Uuid;

pub(super) const CONTACT_ATTRIBUTES: &str = "SELECT attributes FROM contacts WHERE id = $1";
/// Fields a found contact lacks; `$6` is [`Upsert::attributes`].
pub(super) const COMPLETE_CONTACT: &str =
    "UPDATE contacts SET name = COALESCE(name, $2), phone = COALESCE(phone, $3),
       email = COALESCE(email, $4), avatar_url = COALESCE(avatar_url, $5),
       attributes = $6, updated_at = $7 WHERE id = $1";
/// A contact's ids of one kind ([`Upsert::kinds`]).
pub(super) const IDS_OF_KIND: &str =
    "SELECT value FROM contact_identities WHERE contact_id = $1 AND kind = $2 ORDER BY value";

/// One record's upsert under way.
pub(super) struct Upsert<'c> {
    pub c: &'c ImportContact,
    /// Contacts a weak identity found that hold another id of the record's
    /// kinds: reported once the record is a contact of its own.
    conflicts: Vec<ContactConflict>,
}

impl<'c> Upsert<'c> {
    pub fn new(c: &'c ImportContact) -> Upsert<'c> {
        Upsert {
            c,
            conflicts: Vec::new(),
        }
    }

    /// The kinds of the record's own ids: a contact found by a weak
    /// identity that holds ids of these kinds ([`IDS_OF_KIND`]) is someone
    /// else.
    pub fn kinds(&self) -> BTreeSet<&'c str> {
        self.c.identities.iter().map(|i| i.kind.as_str()).collect()
    }

    /// The weak identity `by` found contact `hit`, which holds `clash` (its
    /// ids of [`Upsert::kinds`]). True when the record joins it (a merge,
    /// counted now); with a clash it does not (a conflict, kept for
    /// [`Upsert::inserted`]), and the next weak identity is tried.
    pub fn weak_hit(
        &mut self,
        by: &Identity,
        hit: Uuid,
        clash: Vec<Identity>,
        counts: &mut StageCounts,
    ) -> bool {
        if clash.is_empty() {
            counts.merges.push(ContactMerge {
                contact_id: hit,
                by: by.clone(),
                record: self.c.identities.clone(),
            });
            return true;
        }
        self.conflicts.push(ContactConflict {
            shared: by.clone(),
            existing: hit,
            existing_ids: clash,
            created: Uuid::nil(),
            record: self.c.identities.clone(),
        });
        false
    }

    /// The contact to insert when none was found; its weak identities are
    /// added after it, where free (`ADD_IDENTITY`).
    pub fn new_contact(&self) -> NewContact {
        super::as_new_contact(self.c)
    }

    /// The record became contact `id`.
    pub fn inserted(self, id: Uuid, counts: &mut StageCounts) {
        for mut conflict in self.conflicts {
            conflict.created = id;
            counts.conflicts.push(conflict);
        }
        counts.contacts_created += 1;
    }

    /// The record completed the contact found.
    pub fn updated(self, counts: &mut StageCounts) {
        counts.contacts_updated += 1;
    }

    /// A found contact's attributes, `old`, with the record's for the keys
    /// it lacks (agents may have edited the others).
    pub fn attributes(&self, mut old: Value) -> Value {
        if let Value::Object(map) = &mut old {
            for (k, v) in &self.c.attributes {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        old
    }

    /// The identities a found contact is given where free: the record's
    /// own, then its weak ones.
    pub fn identities(&self) -> impl Iterator<Item = &'c Identity> + use<'c> {
        self.c.identities.iter().chain(&self.c.weak_identities)
    }
}

//! Contacts: the customers. A contact is found by its external identities
//! (email, WeChat openid/unionid/external_userid…), unique per kind, which is
//! how channels and the importer recognise a returning customer.

use crate::cursor::{self, Page};
use crate::rows::{Arg, Sql, like_pattern, ts};
use crate::{Result, Store, StoreError, Visibility};
use kefu_core::time::{now, to_millis};
use kefu_core::{Contact, ContactPatch, Event, Identity, NewContact, NewConversation};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: Uuid,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    avatar_url: Option<String>,
    language: Option<String>,
    attributes: Value,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str =
    "id, name, email, phone, avatar_url, language, attributes, created_at, updated_at";

pub(crate) const INSERT_CONTACT: &str = "INSERT INTO contacts (id, name, email, phone, avatar_url, language, attributes, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
pub(crate) const INSERT_IDENTITY: &str =
    "INSERT INTO contact_identities (kind, value, contact_id, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const INSERT_CONTACT_TAG: &str =
    "INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub(crate) const CONTACT_BY_IDENTITY: &str =
    "SELECT contact_id FROM contact_identities WHERE kind = $1 AND value = $2";
/// An identity for a contact found by another one; one that already belongs
/// to someone stays theirs.
pub(crate) const ADD_IDENTITY: &str =
    "INSERT INTO contact_identities (kind, value, contact_id, created_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT (kind, value) DO NOTHING";

/// Inside a sqlx transaction: inserts a validated contact with its
/// identities and tags and evaluates to its id. (SQLite's writer has its
/// own, `sqlite_hot::insert_contact`, for the transactions it runs.)
macro_rules! insert_contact {
    ($tx:expr, $new:expr, $at:expr) => {{
        let new: &kefu_core::NewContact = $new;
        let id = uuid::Uuid::now_v7();
        sqlx::query($crate::contacts::INSERT_CONTACT)
            .bind(id)
            .bind(&new.name)
            .bind(&new.email)
            .bind(&new.phone)
            .bind(&new.avatar_url)
            .bind(&new.language)
            .bind(&new.attributes)
            .bind($at)
            .execute(&mut *$tx)
            .await?;
        for i in &new.identities {
            sqlx::query($crate::contacts::INSERT_IDENTITY)
                .bind(&i.kind)
                .bind(&i.value)
                .bind(id)
                .bind($at)
                .execute(&mut *$tx)
                .await?;
        }
        for tag in ensure_tags!($tx, &new.tags, $at) {
            sqlx::query($crate::contacts::INSERT_CONTACT_TAG)
                .bind(id)
                .bind(tag)
                .execute(&mut *$tx)
                .await?;
        }
        id
    }};
}

pub(crate) const CONTACT_EXISTS: &str = "SELECT COUNT(*) FROM contacts WHERE id = $1";

/// How a new conversation finds its contact, on both backends.
pub(crate) enum ContactWay<'n> {
    /// Named by id: it must exist ([`CONTACT_EXISTS`]).
    Id(Uuid),
    /// Described: the first of its identities, tried in the order given
    /// (strongest first, [`CONTACT_BY_IDENTITY`] one at a time), that
    /// belongs to a contact picks that contact, which then gets the
    /// identities it lacks ([`ADD_IDENTITY`]); when none does, the contact
    /// is inserted ([`INSERT_CONTACT`], its identities and tags).
    Identities(&'n NewContact),
}

impl<'n> ContactWay<'n> {
    pub fn of(new: &'n NewConversation) -> Result<ContactWay<'n>> {
        match (&new.contact_id, &new.contact) {
            (Some(id), _) => Ok(ContactWay::Id(*id)),
            (None, Some(c)) => Ok(ContactWay::Identities(c)),
            (None, None) => Err(StoreError::Invalid("contact_id: required".into())),
        }
    }

    /// [`ContactWay::Id`] named no contact.
    pub fn no_such_contact() -> StoreError {
        StoreError::Invalid("contact_id: no such contact".into())
    }
}

/// Inside a PostgreSQL transaction: the contact holding the first of
/// `identities` that anyone holds (see [`ContactWay::Identities`]).
/// SQLite's writer has its own, `sqlite_hot::contact_by_identities`.
pub(crate) async fn contact_by_identities_pg(
    tx: &mut PgConnection,
    identities: &[Identity],
) -> Result<Option<Uuid>> {
    for i in identities {
        let hit: Option<Uuid> = sqlx::query_scalar(CONTACT_BY_IDENTITY)
            .bind(&i.kind)
            .bind(&i.value)
            .fetch_optional(&mut *tx)
            .await?;
        if hit.is_some() {
            return Ok(hit);
        }
    }
    Ok(None)
}

/// Inside a PostgreSQL transaction: gives contact `id` the identities it
/// lacks ([`ADD_IDENTITY`]).
pub(crate) async fn add_identities_pg(
    tx: &mut PgConnection,
    id: Uuid,
    identities: impl IntoIterator<Item = &Identity>,
    at: i64,
) -> Result<()> {
    for i in identities {
        sqlx::query(ADD_IDENTITY)
            .bind(&i.kind)
            .bind(&i.value)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Limits a query over `contacts c` to what `visibility` allows: for an
/// agent, contacts with a conversation in one of their inboxes (the
/// `conversations_contact` index makes this a probe per contact).
fn push_visibility(sql: &mut Sql, visibility: Visibility) {
    if let Visibility::MemberOf(agent) = visibility {
        sql.push(
            " AND EXISTS (SELECT 1 FROM conversations cv JOIN inbox_members m ON m.inbox_id = cv.inbox_id
               WHERE cv.contact_id = c.id AND m.agent_id = ",
        )
        .bind(Arg::Uuid(agent))
        .push(")");
    }
}

impl Store {
    pub async fn create_contact(&self, new: &NewContact) -> Result<Contact> {
        let at = to_millis(now());
        let id = on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let id = insert_contact!(tx, new, at);
            tx.commit().await?;
            id
        });
        self.contact(id).await
    }

    pub async fn contact(&self, id: Uuid) -> Result<Contact> {
        let sql = format!("SELECT {COLUMNS} FROM contacts WHERE id = $1");
        let row: ContactRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(self.load_contacts(vec![row]).await?.remove(0))
    }

    /// Attaches tags and identities to contact rows with two queries in all.
    async fn load_contacts(&self, rows: Vec<ContactRow>) -> Result<Vec<Contact>> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut tag_sql = Sql::new(
            "SELECT ct.contact_id, t.name FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id IN ",
        );
        tag_sql.bind_list(&ids).push(" ORDER BY t.name");
        let mut id_sql =
            Sql::new("SELECT contact_id, kind, value FROM contact_identities WHERE contact_id IN ");
        id_sql.bind_list(&ids).push(" ORDER BY kind, value");
        let tags: Vec<(Uuid, String)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(tag_sql.text.as_str())), tag_sql.args).fetch_all(p).await?);
        let idents: Vec<(Uuid, String, String)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(id_sql.text.as_str())), id_sql.args).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| Contact {
                tags: tags
                    .iter()
                    .filter(|(c, _)| *c == r.id)
                    .map(|(_, t)| t.clone())
                    .collect(),
                identities: idents
                    .iter()
                    .filter(|(c, _, _)| *c == r.id)
                    .map(|(_, k, v)| Identity {
                        kind: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                id: r.id,
                name: r.name,
                email: r.email,
                phone: r.phone,
                avatar_url: r.avatar_url,
                language: r.language,
                attributes: r.attributes,
                created_at: ts(r.created_at),
                updated_at: ts(r.updated_at),
            })
            .collect())
    }

    /// The contact, if `visibility` allows seeing it: an agent sees the
    /// contacts that have a conversation in one of their inboxes, as with
    /// conversations. A hidden contact is reported as not found, so ids
    /// cannot be probed.
    pub async fn visible_contact(&self, id: Uuid, visibility: Visibility) -> Result<Contact> {
        if !self.contact_visible(id, visibility).await? {
            return Err(StoreError::NotFound);
        }
        self.contact(id).await
    }

    /// Whether the contact exists and `visibility` allows seeing it.
    pub async fn contact_visible(&self, id: Uuid, visibility: Visibility) -> Result<bool> {
        let mut sql = Sql::new("SELECT COUNT(*) FROM contacts c WHERE c.id = ");
        sql.bind(Arg::Uuid(id));
        push_visibility(&mut sql, visibility);
        let n: i64 = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// Whether the contact is in no conversation at all (one just created
    /// through the API): its creator may open the first conversation.
    pub async fn contact_without_conversations(&self, id: Uuid) -> Result<bool> {
        let n: i64 = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT COUNT(*) FROM contacts c WHERE c.id = $1
                 AND NOT EXISTS (SELECT 1 FROM conversations cv WHERE cv.contact_id = c.id)")
                .bind(id).fetch_one(p).await?);
        Ok(n > 0)
    }

    pub async fn contact_by_identity(&self, kind: &str, value: &str) -> Result<Contact> {
        let id: Uuid = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT contact_id FROM contact_identities WHERE kind = $1 AND value = $2")
                .bind(kind).bind(value).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        self.contact(id).await
    }

    /// Newest-updated first, those `visibility` allows. `q` matches name,
    /// email or phone (case-insensitive).
    pub async fn list_contacts(
        &self,
        visibility: Visibility,
        q: Option<&str>,
        tag: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Contact>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM contacts c WHERE 1 = 1"));
        push_visibility(&mut sql, visibility);
        if let Some(q) = q {
            let pat = like_pattern(q);
            sql.push(" AND (LOWER(COALESCE(c.name, '')) LIKE ")
                .bind(Arg::Text(pat.clone()))
                .push(" ESCAPE '\\' OR LOWER(COALESCE(c.email, '')) LIKE ")
                .bind(Arg::Text(pat.clone()))
                .push(" ESCAPE '\\' OR COALESCE(c.phone, '') LIKE ")
                .bind(Arg::Text(pat))
                .push(" ESCAPE '\\')");
        }
        if let Some(tag) = tag {
            sql.push(" AND c.id IN (SELECT ct.contact_id FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE t.name = ")
                .bind(Arg::Text(tag.to_string())).push(")");
        }
        if let Some(c) = cursor {
            let (at, id) = cursor::decode(c)?;
            sql.push(" AND (c.updated_at, c.id) < (")
                .bind(Arg::I64(at))
                .push(", ")
                .bind(Arg::Uuid(id))
                .push(")");
        }
        sql.push(" ORDER BY c.updated_at DESC, c.id DESC LIMIT ")
            .bind(Arg::I64(limit as i64 + 1));
        let rows: Vec<ContactRow> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        let contacts = self.load_contacts(rows).await?;
        Ok(cursor::page(contacts, limit, |c| {
            (c.updated_at.timestamp_millis(), c.id)
        }))
    }

    pub async fn update_contact(&self, id: Uuid, patch: &ContactPatch) -> Result<Contact> {
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                // A field is set when the patch names it, to NULL when it was sent as null.
                "UPDATE contacts SET name = CASE WHEN $2 THEN $3 ELSE name END,
                   email = CASE WHEN $4 THEN $5 ELSE email END,
                   phone = CASE WHEN $6 THEN $7 ELSE phone END,
                   avatar_url = CASE WHEN $8 THEN $9 ELSE avatar_url END,
                   language = CASE WHEN $10 THEN $11 ELSE language END,
                   attributes = COALESCE($12, attributes), updated_at = $13
                 WHERE id = $1",
            )
            .bind(id)
            .bind(patch.name.is_some()).bind(patch.name.clone().flatten())
            .bind(patch.email.is_some()).bind(patch.email.clone().flatten())
            .bind(patch.phone.is_some()).bind(patch.phone.clone().flatten())
            .bind(patch.avatar_url.is_some()).bind(patch.avatar_url.clone().flatten())
            .bind(patch.language.is_some()).bind(patch.language.clone().flatten())
            .bind(&patch.attributes).bind(at)
            .execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(Some(email)) = &patch.email {
                // The new address finds this contact too; a conflict means it
                // already belongs to another contact.
                sqlx::query(
                    "INSERT INTO contact_identities (kind, value, contact_id, created_at) VALUES ('email', $1, $2, $3)
                     ON CONFLICT (kind, value) DO NOTHING",
                )
                .bind(email).bind(id).bind(at).execute(&mut *tx).await?;
                let owner: Uuid = sqlx::query_scalar("SELECT contact_id FROM contact_identities WHERE kind = 'email' AND value = $1")
                    .bind(email).fetch_one(&mut *tx).await?;
                if owner != id {
                    return Err(StoreError::Conflict { constraint: "contact_identities_kind_value_key".into() });
                }
            }
            if let Some(tags) = &patch.tags {
                sqlx::query("DELETE FROM contact_tags WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                for tag in ensure_tags!(tx, tags, at) {
                    sqlx::query("INSERT INTO contact_tags (contact_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(id).bind(tag).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        let contact = self.contact(id).await?;
        self.publish(Event::ContactUpdated {
            contact: contact.clone(),
        });
        Ok(contact)
    }

    pub async fn add_identity(&self, contact_id: Uuid, identity: &Identity) -> Result<Contact> {
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE contacts SET updated_at = $2 WHERE id = $1")
                .bind(contact_id).bind(at).execute(&mut *tx).await
                .map(|d| d.rows_affected()).and_then(|n| if n == 0 { Err(sqlx::Error::RowNotFound) } else { Ok(n) })?;
            sqlx::query("INSERT INTO contact_identities (kind, value, contact_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&identity.kind).bind(&identity.value).bind(contact_id).bind(at)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        self.contact(contact_id).await
    }

    pub async fn remove_identity(
        &self,
        contact_id: Uuid,
        kind: &str,
        value: &str,
    ) -> Result<Contact> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM contact_identities WHERE contact_id = $1 AND kind = $2 AND value = $3")
                .bind(contact_id).bind(kind).bind(value).execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.contact(contact_id).await
    }
}

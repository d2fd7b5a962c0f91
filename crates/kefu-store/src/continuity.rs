//! Continuity links: personal, expiring, revocable links that open the
//! widget already identified as a contact, so a customer brought over from
//! WeChat finds their history. The signed token is the server's business;
//! here are the rows that make a link revocable.

use crate::{Result, Store, StoreError};
use kefu_core::Identity;
use kefu_core::time::{now, to_millis};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuityLink {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub inbox_id: Uuid,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
    pub revoked: bool,
}

/// A contact to send a link to.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    pub contact_id: Uuid,
    pub name: Option<String>,
    pub identities: Vec<Identity>,
}

impl Store {
    /// One new link per contact, all expiring at `expires_at` (ms).
    pub async fn create_continuity_links(
        &self,
        inbox_id: Uuid,
        contacts: &[Uuid],
        expires_at: i64,
    ) -> Result<Vec<Uuid>> {
        let at = to_millis(now());
        let ids: Vec<Uuid> = contacts.iter().map(|_| Uuid::now_v7()).collect();
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            for (id, contact) in ids.iter().zip(contacts) {
                sqlx::query(
                    "INSERT INTO continuity_links (id, contact_id, inbox_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id).bind(contact).bind(inbox_id).bind(at).bind(expires_at)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(ids)
    }

    /// The link, and records its use.
    pub async fn use_continuity_link(&self, id: Uuid) -> Result<ContinuityLink> {
        let row: (Uuid, Uuid, i64, Option<i64>) = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT contact_id, inbox_id, expires_at, revoked_at FROM continuity_links WHERE id = $1")
                .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        let link = ContinuityLink {
            id,
            contact_id: row.0,
            inbox_id: row.1,
            expires_at: row.2,
            revoked: row.3.is_some(),
        };
        if !link.revoked {
            on_db!(self.db.writer(), p =>
                sqlx::query("UPDATE continuity_links SET last_used_at = $2 WHERE id = $1")
                    .bind(id).bind(to_millis(now())).execute(p).await?.rows_affected());
        }
        Ok(link)
    }

    /// Revokes the links of one contact, or every link; returns how many.
    pub async fn revoke_continuity_links(&self, contact_id: Option<Uuid>) -> Result<u64> {
        let n = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE continuity_links SET revoked_at = $1
                         WHERE revoked_at IS NULL AND ($2 IS NULL OR contact_id = $2)")
                .bind(to_millis(now())).bind(contact_id).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Contacts holding an identity whose kind starts with `kind_prefix`
    /// (`wechat_` for imported customers), by id after `after`, a page at a time.
    pub async fn contacts_with_identity(
        &self,
        kind_prefix: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<LinkTarget>> {
        let pattern = format!("{}%", crate::rows::like_escape(kind_prefix));
        let rows: Vec<(Uuid, Option<String>)> = on_db!(self.db.reader(), p =>
            sqlx::query_as(
                "SELECT c.id, c.name FROM contacts c
                 WHERE ($2 IS NULL OR c.id > $2)
                   AND EXISTS (SELECT 1 FROM contact_identities i WHERE i.contact_id = c.id AND i.kind LIKE $1 ESCAPE '\\')
                 ORDER BY c.id LIMIT $3",
            )
            .bind(&pattern).bind(after).bind(limit as i64).fetch_all(p).await?);
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let mut sql = crate::rows::Sql::new(
            "SELECT contact_id, kind, value FROM contact_identities WHERE contact_id IN ",
        );
        sql.bind_list(&ids).push(" ORDER BY kind, value");
        let identities: Vec<(Uuid, String, String)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(contact_id, name)| LinkTarget {
                contact_id,
                name,
                identities: identities
                    .iter()
                    .filter(|(c, _, _)| *c == contact_id)
                    .map(|(_, kind, value)| Identity {
                        kind: kind.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            })
            .collect())
    }
}

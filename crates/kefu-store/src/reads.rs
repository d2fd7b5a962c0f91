//! Read positions of agents, for unread counts, and the customer ratings
//! report. Incoming messages after an agent's read position are unread.

use crate::rows::{Arg, Sql, parse_enum};
use crate::{Result, Store};
use kefu_core::MessagePreview;
use kefu_core::time::{Timestamp, to_millis};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// Ratings of one group (an agent or an inbox).
#[derive(Debug, Clone, Serialize)]
pub struct CsatRow {
    /// The agent (assignee) or the inbox; `None` for unassigned conversations.
    pub id: Option<Uuid>,
    pub ratings: i64,
    pub average: f64,
    /// How many ratings of 1, 2, 3, 4 and 5.
    pub distribution: [i64; 5],
}

impl Store {
    /// Moves the agent's read position forward (never back).
    pub async fn mark_read(&self, agent_id: Uuid, conversation_id: Uuid, seq: i64) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO conversation_reads (agent_id, conversation_id, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (agent_id, conversation_id) DO UPDATE SET seq = excluded.seq
                 WHERE conversation_reads.seq < excluded.seq",
            )
            .bind(agent_id).bind(conversation_id).bind(seq).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Unread incoming messages per conversation for this agent.
    pub async fn unread_counts(
        &self,
        agent_id: Uuid,
        conversations: &[Uuid],
    ) -> Result<HashMap<Uuid, i64>> {
        let mut sql = Sql::new(
            "SELECT m.conversation_id, COUNT(*) FROM messages m
             LEFT JOIN conversation_reads r ON r.conversation_id = m.conversation_id AND r.agent_id = ",
        );
        sql.bind(Arg::Uuid(agent_id))
            .push(" WHERE m.direction = 'incoming' AND m.seq > COALESCE(r.seq, 0) AND m.conversation_id IN ")
            .bind_list(conversations)
            .push(" GROUP BY m.conversation_id");
        let rows: Vec<(Uuid, i64)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        Ok(rows.into_iter().collect())
    }

    /// The latest message (system lines aside) of each conversation, cut
    /// to 140 characters: one query for a whole list page.
    pub async fn last_messages(
        &self,
        conversations: &[Uuid],
    ) -> Result<HashMap<Uuid, MessagePreview>> {
        let mut sql = Sql::new(
            "SELECT m.conversation_id, m.seq, m.direction, m.sender_id, SUBSTR(m.text, 1, 140) FROM messages m
             WHERE m.conversation_id IN ",
        );
        sql.bind_list(conversations).push(
            " AND m.seq = (SELECT MAX(l.seq) FROM messages l
               WHERE l.conversation_id = m.conversation_id AND l.direction <> 'system')",
        );
        let rows: Vec<(Uuid, i64, String, Option<Uuid>, String)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        rows.into_iter()
            .map(|(id, seq, direction, sender_id, text)| {
                Ok((
                    id,
                    MessagePreview {
                        seq,
                        direction: parse_enum(&direction)?,
                        sender_id,
                        text,
                    },
                ))
            })
            .collect()
    }

    /// Ratings given between `from` and `to`, grouped by assignee or by inbox.
    pub async fn csat_report(
        &self,
        by_inbox: bool,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CsatRow>> {
        let column = if by_inbox { "inbox_id" } else { "assignee_id" };
        let sql = format!(
            "SELECT {column}, COUNT(*), AVG(CAST(csat_score AS DOUBLE PRECISION)),
               SUM(CASE WHEN csat_score = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN csat_score = 2 THEN 1 ELSE 0 END),
               SUM(CASE WHEN csat_score = 3 THEN 1 ELSE 0 END), SUM(CASE WHEN csat_score = 4 THEN 1 ELSE 0 END),
               SUM(CASE WHEN csat_score = 5 THEN 1 ELSE 0 END)
             FROM conversations WHERE csat_score IS NOT NULL AND csat_at >= $1 AND csat_at < $2
             GROUP BY {column} ORDER BY COUNT(*) DESC"
        );
        type Row = (Option<Uuid>, i64, Option<f64>, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(to_millis(from)).bind(to_millis(to)).fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|(id, ratings, avg, d1, d2, d3, d4, d5)| CsatRow {
                id,
                ratings,
                average: (avg.unwrap_or(0.0) * 100.0).round() / 100.0,
                distribution: [d1, d2, d3, d4, d5],
            })
            .collect())
    }
}

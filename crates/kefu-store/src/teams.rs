//! Teams: named groups of agents that conversations can be routed to.

use crate::rows::ts;
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{NewTeam, Team, TeamPatch};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct TeamRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    created_at: i64,
}

impl Store {
    pub async fn create_team(&self, new: &NewTeam) -> Result<Team> {
        let id = Uuid::now_v7();
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO teams (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                .bind(id).bind(&new.name).bind(&new.description).bind(at)
                .execute(&mut *tx).await?;
            for agent in &new.member_ids {
                sqlx::query("INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id).bind(agent).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.team(id).await
    }

    pub async fn team(&self, id: Uuid) -> Result<Team> {
        let row: TeamRow = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, name, description, created_at FROM teams WHERE id = $1")
                .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        let member_ids: Vec<Uuid> = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT agent_id FROM team_members WHERE team_id = $1 ORDER BY agent_id")
                .bind(id).fetch_all(p).await?);
        Ok(Team {
            id: row.id,
            name: row.name,
            description: row.description,
            member_ids,
            created_at: ts(row.created_at),
        })
    }

    pub async fn list_teams(&self) -> Result<Vec<Team>> {
        let rows: Vec<TeamRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, name, description, created_at FROM teams ORDER BY name").fetch_all(p).await?);
        let members: Vec<(Uuid, Uuid)> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT team_id, agent_id FROM team_members ORDER BY agent_id").fetch_all(p).await?);
        Ok(rows
            .into_iter()
            .map(|r| Team {
                member_ids: members
                    .iter()
                    .filter(|(t, _)| *t == r.id)
                    .map(|(_, a)| *a)
                    .collect(),
                id: r.id,
                name: r.name,
                description: r.description,
                created_at: ts(r.created_at),
            })
            .collect())
    }

    pub async fn update_team(&self, id: Uuid, patch: &TeamPatch) -> Result<Team> {
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE teams SET name = COALESCE($2, name),
                   description = CASE WHEN $3 THEN $4 ELSE description END, updated_at = $5 WHERE id = $1",
            )
            .bind(id).bind(&patch.name)
            .bind(patch.description.is_some()).bind(patch.description.clone().flatten()).bind(at)
            .execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(members) = &patch.member_ids {
                sqlx::query("DELETE FROM team_members WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
                for agent in members {
                    sqlx::query("INSERT INTO team_members (team_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(id).bind(agent).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        self.team(id).await
    }

    pub async fn delete_team(&self, id: Uuid) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM teams WHERE id = $1").bind(id).execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

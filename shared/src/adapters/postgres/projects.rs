//! Users and projects.

use super::Pool;
use super::cached::Cached;
use crate::domain::records::{Project, ProjectChanges, User};
use crate::domain::{ProjectId, UserId};
use crate::ports::{ProjectStore, StoreError};
use async_trait::async_trait;

/// `ProjectStore` on Postgres.
#[derive(Clone)]
pub struct PgProjectStore {
    pool: Pool,
}

impl PgProjectStore {
    pub fn new(pool: Pool) -> Self {
        PgProjectStore { pool }
    }
}

pub(super) const PROJECT_COLUMNS: &str = "id, user_id, name, description, created_at, archived_at";

pub(super) fn project_from(row: &tokio_postgres::Row) -> Result<Project, StoreError> {
    Ok(Project {
        id: ProjectId(row.try_get("id")?),
        user_id: UserId(row.try_get("user_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        archived_at: row.try_get("archived_at")?,
    })
}

/// A user's columns; the plan is derived from their subscriptions (`effective_plan`).
pub(super) const USER_COLUMNS: &str = "id, email, display_name, effective_plan(id), semantic_cache_threshold, created_at, email_verified_at, timezone";

pub(super) fn user_from(row: &tokio_postgres::Row) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(row.try_get(0)?),
        email: row.try_get(1)?,
        display_name: row.try_get(2)?,
        plan: crate::domain::PlanId(row.try_get(3)?),
        semantic_cache_threshold: row.try_get(4)?,
        created_at: row.try_get(5)?,
        email_verified_at: row.try_get(6)?,
        timezone: row.try_get(7)?,
    })
}

#[async_trait]
impl ProjectStore for PgProjectStore {
    async fn create_user(&self, email: &str, display_name: &str) -> Result<User, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!("INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3) RETURNING {USER_COLUMNS}"),
                &[&UserId::new().0, &email, &display_name],
            )
            .await?;
        user_from(&row)
    }

    async fn user(&self, id: UserId) -> Result<User, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
                &[&id.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: id.to_string(),
            })?;
        user_from(&row)
    }

    async fn set_semantic_cache(
        &self,
        id: UserId,
        threshold: Option<f32>,
    ) -> Result<User, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("UPDATE users SET semantic_cache_threshold = $2 WHERE id = $1 RETURNING {USER_COLUMNS}"),
                &[&id.0, &threshold],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound { what: "user", id: id.to_string() })?;
        user_from(&row)
    }

    async fn set_timezone(&self, id: UserId, timezone: &str) -> Result<User, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("UPDATE users SET timezone = $2 WHERE id = $1 RETURNING {USER_COLUMNS}"),
                &[&id.0, &timezone],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: id.to_string(),
            })?;
        user_from(&row)
    }

    async fn create_project(
        &self,
        user: UserId,
        name: &str,
        description: &str,
    ) -> Result<Project, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!("INSERT INTO projects (id, user_id, name, description) VALUES ($1, $2, $3, $4) RETURNING {PROJECT_COLUMNS}"),
                &[&ProjectId::new().0, &user.0, &name, &description],
            )
            .await?;
        project_from(&row)
    }

    async fn project(&self, id: ProjectId) -> Result<Project, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"),
                &[&id.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "project",
                id: id.to_string(),
            })?;
        project_from(&row)
    }

    async fn update_project(
        &self,
        user: UserId,
        id: ProjectId,
        changes: &ProjectChanges,
    ) -> Result<Project, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "UPDATE projects SET name = coalesce($3, name), description = coalesce($4, description),
                        archived_at = CASE WHEN $5::boolean IS NULL THEN archived_at
                                           WHEN $5 THEN coalesce(archived_at, now()) ELSE NULL END,
                        updated_at = now()
                     WHERE id = $1 AND user_id = $2 RETURNING {PROJECT_COLUMNS}"
                ),
                &[&id.0, &user.0, &changes.name, &changes.description, &changes.archived],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "project",
                id: id.to_string(),
            })?;
        project_from(&row)
    }

    async fn delete_project(&self, user: UserId, id: ProjectId) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.query_opt_cached(
            "SELECT 1 FROM projects WHERE id = $1 AND user_id = $2 FOR UPDATE",
            &[&id.0, &user.0],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "project",
            id: id.to_string(),
        })?;
        let active: i64 = tx
            .query_one_cached(
                "SELECT count(*) FROM runs WHERE project_id = $1
                   AND status NOT IN ('succeeded', 'failed', 'cancelled')",
                &[&id.0],
            )
            .await?
            .try_get(0)?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "project {id} has {active} run(s) not ended; cancel them first"
            )));
        }
        tx.execute_cached("DELETE FROM projects WHERE id = $1", &[&id.0])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

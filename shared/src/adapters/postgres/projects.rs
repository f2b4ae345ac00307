//! Users and projects.

use super::Pool;
use super::cached::Cached;
use crate::domain::records::{Project, User};
use crate::domain::{ProjectId, Tier, UserId};
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

pub(super) const USER_COLUMNS: &str =
    "id, email, display_name, tier, semantic_cache_threshold, created_at, email_verified_at";

pub(super) fn user_from(row: &tokio_postgres::Row) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(row.try_get(0)?),
        email: row.try_get(1)?,
        display_name: row.try_get(2)?,
        tier: row.try_get(3)?,
        semantic_cache_threshold: row.try_get(4)?,
        created_at: row.try_get(5)?,
        email_verified_at: row.try_get(6)?,
    })
}

#[async_trait]
impl ProjectStore for PgProjectStore {
    async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        tier: Tier,
    ) -> Result<User, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!("INSERT INTO users (id, email, display_name, tier) VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"),
                &[&UserId::new().0, &email, &display_name, &tier],
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

    async fn create_project(
        &self,
        user: UserId,
        name: &str,
        description: &str,
    ) -> Result<Project, StoreError> {
        let client = self.pool.get().await?;
        let id = ProjectId::new();
        let row = client
            .query_one_cached(
                "INSERT INTO projects (id, user_id, name, description) VALUES ($1, $2, $3, $4) RETURNING created_at",
                &[&id.0, &user.0, &name, &description],
            )
            .await?;
        Ok(Project {
            id,
            user_id: user,
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: row.try_get(0)?,
        })
    }

    async fn project(&self, id: ProjectId) -> Result<Project, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT user_id, name, description, created_at FROM projects WHERE id = $1",
                &[&id.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "project",
                id: id.to_string(),
            })?;
        Ok(Project {
            id,
            user_id: UserId(row.try_get(0)?),
            name: row.try_get(1)?,
            description: row.try_get(2)?,
            created_at: row.try_get(3)?,
        })
    }
}

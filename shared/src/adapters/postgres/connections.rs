//! `ConnectionStore` on Postgres (the `connections` table: sealed credentials only), and
//! `ToolPolicies` (the `tool_policies` table).

use super::Pool;
use super::cached::Cached;
use crate::domain::connections::Connection;
use crate::domain::{ConnectionId, ConnectionStatus, Service, UserId};
use crate::ports::{ConnectionStore, DeviceFlow, NewConnection, Sealed, StoreError, ToolPolicies};
use async_trait::async_trait;

#[derive(Clone)]
pub struct PgConnections {
    pool: Pool,
}

impl PgConnections {
    pub fn new(pool: Pool) -> Self {
        PgConnections { pool }
    }
}

const COLUMNS: &str =
    "id, user_id, service, account, hint, status, status_reason, created_at, last_used_at";

fn connection_from(row: &tokio_postgres::Row) -> Result<Connection, StoreError> {
    Ok(Connection {
        id: ConnectionId(row.try_get(0)?),
        user_id: UserId(row.try_get(1)?),
        service: row.try_get(2)?,
        account: row.try_get(3)?,
        hint: row.try_get(4)?,
        status: row.try_get(5)?,
        status_reason: row.try_get(6)?,
        created_at: row.try_get(7)?,
        last_used_at: row.try_get(8)?,
    })
}

#[async_trait]
impl ConnectionStore for PgConnections {
    async fn connect(&self, new: NewConnection) -> Result<Connection, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!(
                    "INSERT INTO connections (id, user_id, service, account, hint, sealed_secret, wrapped_key, key_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (user_id, service) DO UPDATE SET
                        account = EXCLUDED.account, hint = EXCLUDED.hint,
                        sealed_secret = EXCLUDED.sealed_secret, wrapped_key = EXCLUDED.wrapped_key,
                        key_id = EXCLUDED.key_id, status = 'active', status_reason = NULL,
                        created_at = now(), last_used_at = NULL
                     RETURNING {COLUMNS}"
                ),
                &[
                    &ConnectionId::new().0,
                    &new.user.0,
                    &new.service,
                    &new.account,
                    &new.hint,
                    &new.sealed.secret,
                    &new.sealed.wrapped_key,
                    &new.sealed.key_id,
                ],
            )
            .await?;
        connection_from(&row)
    }

    async fn connections(&self, user: UserId) -> Result<Vec<Connection>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                &format!("SELECT {COLUMNS} FROM connections WHERE user_id = $1 ORDER BY service"),
                &[&user.0],
            )
            .await?;
        rows.iter().map(connection_from).collect()
    }

    async fn disconnect(&self, user: UserId, id: ConnectionId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let deleted = client
            .execute_cached(
                "DELETE FROM connections WHERE id = $1 AND user_id = $2",
                &[&id.0, &user.0],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn credential(
        &self,
        user: UserId,
        service: Service,
    ) -> Result<Option<(Connection, Sealed)>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "UPDATE connections SET last_used_at = now() WHERE user_id = $1 AND service = $2
                     RETURNING {COLUMNS}, sealed_secret, wrapped_key, key_id"
                ),
                &[&user.0, &service],
            )
            .await?;
        row.map(|row| {
            Ok((
                connection_from(&row)?,
                Sealed {
                    secret: row.try_get(9)?,
                    wrapped_key: row.try_get(10)?,
                    key_id: row.try_get(11)?,
                },
            ))
        })
        .transpose()
    }

    async fn invalidate(&self, id: ConnectionId, reason: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE connections SET status = $2, status_reason = $3 WHERE id = $1",
                &[&id.0, &ConnectionStatus::Invalid, &reason],
            )
            .await?;
        Ok(())
    }

    async fn start_flow(&self, flow: &DeviceFlow) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        // Flows that expired are forgotten as new ones start.
        client
            .execute_cached("DELETE FROM device_flows WHERE expires_at < now()", &[])
            .await?;
        client
            .execute_cached(
                "INSERT INTO device_flows (id, user_id, service, sealed_secret, wrapped_key, key_id, user_code, verification_uri, interval_secs, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &flow.id,
                    &flow.user.0,
                    &flow.service,
                    &flow.sealed.secret,
                    &flow.sealed.wrapped_key,
                    &flow.sealed.key_id,
                    &flow.user_code,
                    &flow.verification_uri,
                    &i32::try_from(flow.interval_secs).unwrap_or(i32::MAX),
                    &flow.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn flow(&self, user: UserId, id: uuid::Uuid) -> Result<Option<DeviceFlow>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT id, user_id, service, sealed_secret, wrapped_key, key_id, user_code, verification_uri, interval_secs, expires_at
                 FROM device_flows WHERE id = $1 AND user_id = $2",
                &[&id, &user.0],
            )
            .await?;
        row.map(|row| {
            Ok(DeviceFlow {
                id: row.try_get(0)?,
                user: UserId(row.try_get(1)?),
                service: row.try_get(2)?,
                sealed: Sealed {
                    secret: row.try_get(3)?,
                    wrapped_key: row.try_get(4)?,
                    key_id: row.try_get(5)?,
                },
                user_code: row.try_get(6)?,
                verification_uri: row.try_get(7)?,
                interval_secs: u32::try_from(row.try_get::<_, i32>(8)?).unwrap_or(5),
                expires_at: row.try_get(9)?,
            })
        })
        .transpose()
    }

    async fn slow_flow(&self, id: uuid::Uuid, interval_secs: u32) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE device_flows SET interval_secs = $2 WHERE id = $1",
                &[&id, &i32::try_from(interval_secs).unwrap_or(i32::MAX)],
            )
            .await?;
        Ok(())
    }

    async fn end_flow(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached("DELETE FROM device_flows WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ToolPolicies for PgConnections {
    async fn auto_approves(&self, user: UserId, tool: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                "SELECT auto_approve FROM tool_policies WHERE user_id = $1 AND tool = $2",
                &[&user.0, &tool],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(false))
    }

    async fn policies(&self, user: UserId) -> Result<Vec<(String, bool)>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_cached(
                "SELECT tool, auto_approve FROM tool_policies WHERE user_id = $1 ORDER BY tool",
                &[&user.0],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn set_policy(
        &self,
        user: UserId,
        tool: &str,
        auto_approve: bool,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO tool_policies (user_id, tool, auto_approve) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, tool) DO UPDATE SET auto_approve = EXCLUDED.auto_approve, updated_at = now()",
                &[&user.0, &tool, &auto_approve],
            )
            .await?;
        Ok(())
    }
}

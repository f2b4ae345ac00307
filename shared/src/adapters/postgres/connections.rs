//! `ConnectionStore` on Postgres (the `connections` table: sealed credentials only), and
//! `ToolPolicies` (the `tool_policies` table).

use super::Pool;
use super::cached::Cached;
use crate::domain::connections::Connection;
use crate::domain::{ConnectionId, ConnectionStatus, Service, UserId};
use crate::ports::{
    ConnectionStore, Credential, DeviceFlow, NewConnection, Renewal, Sealed, StoreError,
    ToolPolicies, WebFlow, WebFlowStatus,
};
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

const COLUMNS: &str = "id, user_id, service, account, hint, status, status_reason, created_at, last_used_at, expires_at, refresh_sealed_secret IS NOT NULL";

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
        expires_at: row.try_get(9)?,
        renews: row.try_get(10)?,
    })
}

/// A sealed value from three columns starting at `at`, when the first is not null.
fn sealed_at(row: &tokio_postgres::Row, at: usize) -> Result<Option<Sealed>, StoreError> {
    let secret: Option<Vec<u8>> = row.try_get(at)?;
    let Some(secret) = secret else {
        return Ok(None);
    };
    Ok(Some(Sealed {
        secret,
        wrapped_key: row.try_get(at + 1)?,
        key_id: row.try_get(at + 2)?,
    }))
}

const WEB_FLOW_COLUMNS: &str = "id, user_id, service, state_hash, sealed_secret, wrapped_key, key_id, redirect_uri, return_to, status, reason, connection_id, expires_at";

fn web_flow_from(row: &tokio_postgres::Row) -> Result<WebFlow, StoreError> {
    let status: WebFlowStatus = row.try_get(9)?;
    Ok(WebFlow {
        id: row.try_get(0)?,
        user: UserId(row.try_get(1)?),
        service: row.try_get(2)?,
        state_hash: row.try_get(3)?,
        sealed: Sealed {
            secret: row.try_get(4)?,
            wrapped_key: row.try_get(5)?,
            key_id: row.try_get(6)?,
        },
        redirect_uri: row.try_get(7)?,
        return_to: row.try_get(8)?,
        status,
        reason: row.try_get(10)?,
        connection: row.try_get::<_, Option<uuid::Uuid>>(11)?.map(ConnectionId),
        expires_at: row.try_get(12)?,
    })
}

#[async_trait]
impl ConnectionStore for PgConnections {
    async fn connect(&self, new: NewConnection) -> Result<Connection, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one_cached(
                &format!(
                    "INSERT INTO connections (id, user_id, service, account, hint, sealed_secret, wrapped_key, key_id,
                                              expires_at, refresh_sealed_secret, refresh_wrapped_key, refresh_key_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (user_id, service) DO UPDATE SET
                        account = EXCLUDED.account, hint = EXCLUDED.hint,
                        sealed_secret = EXCLUDED.sealed_secret, wrapped_key = EXCLUDED.wrapped_key,
                        key_id = EXCLUDED.key_id, status = $13, status_reason = NULL,
                        created_at = now(), last_used_at = NULL,
                        expires_at = EXCLUDED.expires_at, refresh_sealed_secret = EXCLUDED.refresh_sealed_secret,
                        refresh_wrapped_key = EXCLUDED.refresh_wrapped_key, refresh_key_id = EXCLUDED.refresh_key_id,
                        renewing_until = NULL
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
                    &new.renewal.expires_at,
                    &new.renewal.refresh.as_ref().map(|r| &r.secret),
                    &new.renewal.refresh.as_ref().map(|r| &r.wrapped_key),
                    &new.renewal.refresh.as_ref().map(|r| &r.key_id),
                    &ConnectionStatus::Active,
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
    ) -> Result<Option<Credential>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "UPDATE connections SET last_used_at = now() WHERE user_id = $1 AND service = $2
                     RETURNING {COLUMNS}, sealed_secret, wrapped_key, key_id,
                               refresh_sealed_secret, refresh_wrapped_key, refresh_key_id"
                ),
                &[&user.0, &service],
            )
            .await?;
        row.map(|row| {
            let connection = connection_from(&row)?;
            Ok(Credential {
                renewal: Renewal {
                    expires_at: connection.expires_at,
                    refresh: sealed_at(&row, 14)?,
                },
                sealed: Sealed {
                    secret: row.try_get(11)?,
                    wrapped_key: row.try_get(12)?,
                    key_id: row.try_get(13)?,
                },
                connection,
            })
        })
        .transpose()
    }

    async fn claim_renewal(
        &self,
        id: ConnectionId,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let claimed = client
            .execute_cached(
                "UPDATE connections SET renewing_until = now() + make_interval(secs => $2)
                 WHERE id = $1 AND (renewing_until IS NULL OR renewing_until < now())",
                &[&id.0, &lease.as_secs_f64()],
            )
            .await?;
        Ok(claimed == 1)
    }

    async fn renewed(
        &self,
        id: ConnectionId,
        sealed: &Sealed,
        renewal: &Renewal,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE connections SET sealed_secret = $2, wrapped_key = $3, key_id = $4, expires_at = $5,
                        refresh_sealed_secret = COALESCE($6, refresh_sealed_secret),
                        refresh_wrapped_key = COALESCE($7, refresh_wrapped_key),
                        refresh_key_id = COALESCE($8, refresh_key_id),
                        renewing_until = NULL, status = $9, status_reason = NULL
                 WHERE id = $1",
                &[
                    &id.0,
                    &sealed.secret,
                    &sealed.wrapped_key,
                    &sealed.key_id,
                    &renewal.expires_at,
                    &renewal.refresh.as_ref().map(|r| &r.secret),
                    &renewal.refresh.as_ref().map(|r| &r.wrapped_key),
                    &renewal.refresh.as_ref().map(|r| &r.key_id),
                    &ConnectionStatus::Active,
                ],
            )
            .await?;
        Ok(())
    }

    async fn release_renewal(&self, id: ConnectionId) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "UPDATE connections SET renewing_until = NULL WHERE id = $1",
                &[&id.0],
            )
            .await?;
        Ok(())
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

    async fn start_web_flow(&self, flow: &WebFlow) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        // Flows a day past their expiry are forgotten as new ones start (the app may still
        // ask how a recent one ended).
        client
            .execute_cached(
                "DELETE FROM web_flows WHERE expires_at < now() - interval '1 day'",
                &[],
            )
            .await?;
        client
            .execute_cached(
                &format!(
                    "INSERT INTO web_flows ({WEB_FLOW_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ),
                &[
                    &flow.id,
                    &flow.user.0,
                    &flow.service,
                    &flow.state_hash,
                    &flow.sealed.secret,
                    &flow.sealed.wrapped_key,
                    &flow.sealed.key_id,
                    &flow.redirect_uri,
                    &flow.return_to,
                    &flow.status,
                    &flow.reason,
                    &flow.connection.map(|c| c.0),
                    &flow.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn web_flow(&self, user: UserId, id: uuid::Uuid) -> Result<Option<WebFlow>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("SELECT {WEB_FLOW_COLUMNS} FROM web_flows WHERE id = $1 AND user_id = $2"),
                &[&id, &user.0],
            )
            .await?;
        row.as_ref().map(web_flow_from).transpose()
    }

    async fn claim_web_flow(&self, state_hash: &[u8]) -> Result<Option<WebFlow>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "UPDATE web_flows SET status = $2
                     WHERE state_hash = $1 AND status = $3 AND expires_at > now()
                     RETURNING {WEB_FLOW_COLUMNS}"
                ),
                &[
                    &state_hash,
                    &WebFlowStatus::Exchanging,
                    &WebFlowStatus::Pending,
                ],
            )
            .await?;
        row.as_ref().map(web_flow_from).transpose()
    }

    async fn end_web_flow(
        &self,
        id: uuid::Uuid,
        outcome: Result<ConnectionId, &str>,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let (status, connection, reason) = match outcome {
            Ok(connection) => (WebFlowStatus::Connected, Some(connection.0), None),
            Err(reason) => (WebFlowStatus::Failed, None, Some(reason)),
        };
        // The verifier is no use once the flow ended: it is wiped with the outcome.
        client
            .execute_cached(
                "UPDATE web_flows SET status = $2, connection_id = $3, reason = $4,
                        sealed_secret = ''::bytea, wrapped_key = ''::bytea
                 WHERE id = $1",
                &[&id, &status, &connection, &reason],
            )
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

//! Credentials, refresh token families and email tokens on Postgres. Tokens are random
//! 256-bit values; only their sha-256 is stored.

use super::Pool;
use super::cached::Cached;
use super::projects::{USER_COLUMNS, user_from};
use crate::domain::records::User;
use crate::domain::{MicroUsd, UserId};
use crate::ports::accounts::REFRESH_TTL;
use crate::ports::{AccountStore, EmailPurpose, Rotation, StoreError};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `AccountStore` on Postgres.
#[derive(Clone)]
pub struct PgAccountStore {
    pool: Pool,
}

impl PgAccountStore {
    pub fn new(pool: Pool) -> Self {
        PgAccountStore { pool }
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token with a prefix saying what it is (`acr_` refresh, `ace_` email).
fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (token_sha256, family_id, user_id, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4))";

/// Records a new user's trial credit (none when it is zero), inside their creation.
async fn grant_trial(
    tx: &deadpool_postgres::Transaction<'_>,
    user: UserId,
    trial: MicroUsd,
) -> Result<(), StoreError> {
    if trial.0 > 0 {
        tx.execute_cached(
            "INSERT INTO billing_credits (user_id, kind, amount_micro_usd) VALUES ($1, 'trial', $2)
             ON CONFLICT (user_id, kind) DO NOTHING",
            &[&user.0, &trial.0],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl AccountStore for PgAccountStore {
    async fn sign_up(
        &self,
        email: &str,
        display_name: &str,
        trial: MicroUsd,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one_cached(
                &format!(
                    "INSERT INTO users (id, email, display_name, password_hash)
                     VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
                ),
                &[&UserId::new().0, &email, &display_name, &password_hash],
            )
            .await?;
        let user = user_from(&row)?;
        grant_trial(&tx, user.id, trial).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"),
                &[&email],
            )
            .await?;
        row.map(|row| Ok((user_from(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    async fn open_session(&self, user: UserId) -> Result<String, StoreError> {
        let token = new_token("acr_");
        let client = self.pool.get().await?;
        client
            .execute_cached(
                INSERT_REFRESH,
                &[
                    &digest(&token),
                    &Uuid::new_v4(),
                    &user.0,
                    &REFRESH_TTL.as_secs_f64(),
                ],
            )
            .await?;
        Ok(token)
    }

    async fn rotate(&self, refresh_token: &str) -> Result<Rotation, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt_cached(
                "SELECT family_id, user_id, expires_at > now(), replaced_at IS NOT NULL, revoked_at IS NOT NULL
                 FROM refresh_tokens WHERE token_sha256 = $1 FOR UPDATE",
                &[&digest(refresh_token)],
            )
            .await?
        else {
            return Ok(Rotation::Refused);
        };
        let family: Uuid = row.try_get(0)?;
        let user = UserId(row.try_get(1)?);
        let (live, replaced, revoked): (bool, bool, bool) =
            (row.try_get(2)?, row.try_get(3)?, row.try_get(4)?);
        if revoked || !live {
            return Ok(Rotation::Refused);
        }
        if replaced {
            tx.execute_cached(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
                &[&family],
            )
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Reused { user });
        }
        tx.execute_cached(
            "UPDATE refresh_tokens SET replaced_at = now() WHERE token_sha256 = $1",
            &[&digest(refresh_token)],
        )
        .await?;
        let next = new_token("acr_");
        tx.execute_cached(
            INSERT_REFRESH,
            &[&digest(&next), &family, &user.0, &REFRESH_TTL.as_secs_f64()],
        )
        .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated {
            user,
            refresh_token: next,
        })
    }

    async fn revoke_session(&self, refresh_token: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        // The whole family: every token a session rotated through (one row each).
        let revoked = client
            .execute_cached(
                "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
                 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_sha256 = $1)",
                &[&digest(refresh_token)],
            )
            .await?;
        Ok(revoked > 0)
    }

    async fn issue_email_token(
        &self,
        user: UserId,
        purpose: EmailPurpose,
    ) -> Result<String, StoreError> {
        let token = new_token("ace_");
        let client = self.pool.get().await?;
        client
            .execute_cached(
                "INSERT INTO email_tokens (token_sha256, user_id, purpose, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                &[
                    &digest(&token),
                    &user.0,
                    &purpose,
                    &purpose.ttl().as_secs_f64(),
                ],
            )
            .await?;
        Ok(token)
    }

    async fn verify_email(&self, token: &str) -> Result<Option<UserId>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(user) = use_email_token(&tx, token, EmailPurpose::VerifyEmail).await? else {
            return Ok(None);
        };
        tx.execute_cached(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1",
            &[&user.0],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn export(&self, user: UserId) -> Result<serde_json::Value, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(EXPORT, &[&user.0])
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            })?;
        Ok(row.try_get(0)?)
    }

    async fn delete_account(
        &self,
        user: UserId,
    ) -> Result<Vec<crate::domain::ProjectId>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let projects = tx
            .query_cached(
                "SELECT id FROM projects WHERE user_id = $1 FOR UPDATE",
                &[&user.0],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0).map(crate::domain::ProjectId))
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = tx
            .execute_cached("DELETE FROM users WHERE id = $1", &[&user.0])
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: "user",
                id: user.to_string(),
            });
        }
        tx.commit().await?;
        Ok(projects)
    }

    async fn reset_password(
        &self,
        token: &str,
        password_hash: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(user) = use_email_token(&tx, token, EmailPurpose::ResetPassword).await? else {
            return Ok(None);
        };
        // Receiving the email proves the address too.
        tx.execute_cached(
            "UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now())
             WHERE id = $1",
            &[&user.0, &password_hash],
        )
        .await?;
        tx.execute_cached(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user.0],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
    async fn external_user(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
        trial: MicroUsd,
    ) -> Result<UserId, StoreError> {
        const KNOWN: &str =
            "SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2";
        let mut client = self.pool.get().await?;
        if let Some(row) = client.query_opt_cached(KNOWN, &[&issuer, &subject]).await? {
            return Ok(UserId(row.try_get(0)?));
        }
        let tx = client.transaction().await?;
        // Two first requests of one subject make one user: the second waits, then finds it.
        tx.execute_cached(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("{issuer}\n{subject}")],
        )
        .await?;
        if let Some(row) = tx.query_opt_cached(KNOWN, &[&issuer, &subject]).await? {
            tx.commit().await?;
            return Ok(UserId(row.try_get(0)?));
        }
        // The verified address when no account has it (never someone else's account: a
        // password account with that address stays separate); else one made from the
        // subject, which no one can sign up with.
        let made = format!(
            "oidc-{}@users.invalid",
            &crate::domain::sha256_hex(format!("{issuer}\n{subject}").as_bytes())[..24]
        );
        let wanted = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| e.len() <= 254 && e.find('@').is_some_and(|at| at > 0));
        let id = UserId::new();
        let mut inserted = 0;
        if let Some(address) = &wanted {
            inserted = tx
                .execute_cached(
                    "INSERT INTO users (id, email, display_name, email_verified_at)
                     VALUES ($1, $2, '', now()) ON CONFLICT (email) DO NOTHING",
                    &[&id.0, address],
                )
                .await?;
        }
        if inserted == 0 {
            tx.execute_cached(
                "INSERT INTO users (id, email, display_name) VALUES ($1, $2, '')",
                &[&id.0, &made],
            )
            .await?;
        }
        grant_trial(&tx, id, trial).await?;
        tx.execute_cached(
            "INSERT INTO external_identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
            &[&issuer, &subject, &id.0],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// Marks an unused, unexpired email token of `purpose` used; its user, or `None`.
async fn use_email_token(
    tx: &deadpool_postgres::Transaction<'_>,
    token: &str,
    purpose: EmailPurpose,
) -> Result<Option<UserId>, StoreError> {
    let row = tx
        .query_opt_cached(
            "UPDATE email_tokens SET used_at = now()
             WHERE token_sha256 = $1 AND purpose = $2
               AND used_at IS NULL AND expires_at > now()
             RETURNING user_id",
            &[&digest(token), &purpose],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.map(UserId))
}

/// One JSON document of everything kept about user `$1`. Left out on purpose: the password
/// hash, refresh and email tokens, Step Functions task tokens, the budget's internal
/// reservations, and connected accounts' sealed tokens (their service and account are in).
const EXPORT: &str = "
SELECT json_build_object(
  'exported_at', now(),
  'user', json_build_object('id', u.id, 'email', u.email, 'display_name', u.display_name,
          'plan', effective_plan(u.id), 'created_at', u.created_at, 'email_verified_at', u.email_verified_at,
          'semantic_cache_threshold', u.semantic_cache_threshold),
  'connections', (SELECT coalesce(json_agg(c ORDER BY c.service), '[]')
                  FROM (SELECT id, service, account, hint, status, status_reason, created_at,
                               last_used_at
                        FROM connections WHERE user_id = u.id) c),
  'projects', (SELECT coalesce(json_agg(p ORDER BY p.created_at), '[]')
               FROM (SELECT id, name, description, created_at, updated_at, archived_at
                     FROM projects WHERE user_id = u.id) p),
  'runs', (SELECT coalesce(json_agg(r ORDER BY r.created_at), '[]')
           FROM (SELECT id, project_id, command, status, plan, budget_micro_usd, spent_micro_usd,
                        error, created_at, started_at, completed_at, schedule_id
                 FROM runs WHERE user_id = u.id) r),
  'tasks', (SELECT coalesce(json_agg(t ORDER BY t.created_at), '[]')
            FROM (SELECT t.id, t.run_id, t.task_key, t.agent, t.title, t.description, t.status,
                         t.result, t.error_log, t.created_at, t.started_at, t.completed_at
                  FROM tasks t JOIN runs r ON r.id = t.run_id WHERE r.user_id = u.id) t),
  'task_attempts', (SELECT coalesce(json_agg(a ORDER BY a.started_at), '[]')
                    FROM (SELECT a.task_id, a.attempt_no, a.status, a.error, a.started_at, a.finished_at
                          FROM task_attempts a JOIN tasks t ON t.id = a.task_id
                          JOIN runs r ON r.id = t.run_id WHERE r.user_id = u.id) a),
  'events', (SELECT coalesce(json_agg(e ORDER BY e.project_id, e.seq), '[]')
             FROM (SELECT e.project_id, e.run_id, e.seq, e.kind, e.payload, e.created_at
                   FROM events e JOIN projects p ON p.id = e.project_id WHERE p.user_id = u.id) e),
  'llm_calls', (SELECT coalesce(json_agg(c ORDER BY c.created_at), '[]')
                FROM (SELECT id, project_id, run_id, task_id, agent, provider, model, outcome,
                             input_tokens, output_tokens, cache_write_tokens, cache_read_tokens,
                             cost_micro_usd, latency_ms, created_at
                      FROM llm_calls WHERE user_id = u.id) c),
  'artifacts', (SELECT coalesce(json_agg(a ORDER BY a.created_at), '[]')
                FROM (SELECT a.id, a.project_id, a.run_id, a.task_id, a.key, a.content_type,
                             a.size_bytes, a.checksum_sha256, a.created_at
                      FROM artifacts a JOIN projects p ON p.id = a.project_id WHERE p.user_id = u.id) a),
  'approvals', (SELECT coalesce(json_agg(a ORDER BY a.created_at), '[]')
                FROM (SELECT a.id, a.run_id, a.task_id, a.tool, a.payload, a.payload_hash, a.status,
                             a.expires_at, a.decided_at, a.reason, a.result, a.created_at
                      FROM approvals a JOIN projects p ON p.id = a.project_id WHERE p.user_id = u.id) a),
  'schedules', (SELECT coalesce(json_agg(s ORDER BY s.created_at), '[]')
                FROM (SELECT id, project_id, expression, timezone, command, budget_micro_usd,
                             overlap, catch_up, enabled, next_fire_at, created_at, updated_at
                      FROM schedules WHERE user_id = u.id) s),
  'schedule_fires', (SELECT coalesce(json_agg(f ORDER BY f.scheduled_at), '[]')
                     FROM (SELECT f.schedule_id, f.scheduled_at, f.outcome, f.run_id, f.reason, f.fired_at
                           FROM schedule_fires f JOIN schedules s ON s.id = f.schedule_id
                           WHERE s.user_id = u.id) f),
  'memories', (SELECT coalesce(json_agg(m ORDER BY m.created_at), '[]')
               FROM (SELECT id, project_id, kind, content, agent, run_id, task_id, embedding_model,
                            mentions, created_at, updated_at
                     FROM agent_memory WHERE user_id = u.id) m)
)
FROM users u WHERE u.id = $1";

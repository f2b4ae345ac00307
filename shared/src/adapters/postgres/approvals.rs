//! The approvals table, and the task transitions around a decision: parking a task at a
//! critical call, making it ready again once decided or expired, recording the execution.
//! Locks follow the engine's order: run, then user, then tasks, then project (events).

use super::Pool;
use super::cached::Cached;
use super::effects::emit;
use super::runs::lock_run;
use super::tasks::{expect_running, lock_run_and_task, lock_task};
use super::transitions;
use crate::domain::approvals::{ActionRequest, Approval, Decision};
use crate::domain::events::{
    ActionExecuted, ApprovalDecided, ApprovalRequested, EventBody, TaskRef,
};
use crate::domain::{
    ApprovalId, ApprovalStatus, AttemptStatus, ProjectId, RunId, RunStatus, TaskId, TaskStatus,
    UserId,
};
use crate::ports::{ApprovalStore, Changed, Effects, StoreError};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use uuid::Uuid;

pub(super) const COLUMNS: &str = "a.id, a.project_id, a.run_id, a.task_id, a.tool, a.payload, a.payload_hash, a.status, \
     a.expires_at, a.decided_at, a.decided_by, a.reason, a.executed_at, a.result, a.created_at";

/// `ApprovalStore` on Postgres.
#[derive(Clone)]
pub struct PgApprovalStore {
    pool: Pool,
}

impl PgApprovalStore {
    pub fn new(pool: Pool) -> Self {
        PgApprovalStore { pool }
    }
}

pub(super) fn from_row(row: &Row) -> Result<Approval, StoreError> {
    Ok(Approval {
        id: ApprovalId(row.try_get("id")?),
        project_id: ProjectId(row.try_get("project_id")?),
        run_id: RunId(row.try_get("run_id")?),
        task_id: TaskId(row.try_get("task_id")?),
        tool: row.try_get("tool")?,
        payload: serde_json::from_value(row.try_get("payload")?).map_err(|e| {
            StoreError::Backend(format!("an approval's action does not fit its type: {e}").into())
        })?,
        payload_hash: row.try_get("payload_hash")?,
        status: row.try_get("status")?,
        expires_at: row.try_get("expires_at")?,
        decided_at: row.try_get("decided_at")?,
        decided_by: row.try_get::<_, Option<Uuid>>("decided_by")?.map(UserId),
        reason: row.try_get("reason")?,
        executed_at: row.try_get("executed_at")?,
        result: row.try_get("result")?,
        created_at: row.try_get("created_at")?,
    })
}

fn not_found(id: ApprovalId) -> StoreError {
    StoreError::NotFound {
        what: "approval",
        id: id.to_string(),
    }
}

/// The approval, locked for the rest of the transaction.
async fn lock(tx: &Transaction<'_>, id: ApprovalId) -> Result<Approval, StoreError> {
    let row = tx
        .query_opt_cached(
            &format!("SELECT {COLUMNS} FROM approvals a WHERE a.id = $1 FOR UPDATE"),
            &[&id.0],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    from_row(&row)
}

/// Ends a pending approval as `status` and makes its parked task ready again (with one
/// more attempt: the parked one did not fail), then dispatches. The caller holds the run.
async fn resolve(
    tx: &Transaction<'_>,
    effects: &mut Effects,
    approval: &Approval,
    status: ApprovalStatus,
    by: Option<UserId>,
    reason: Option<&str>,
) -> Result<Approval, StoreError> {
    let row = tx
        .query_one_cached(
            &format!(
                "UPDATE approvals a SET status = $2, decided_at = now(), decided_by = $3, reason = $4
                 WHERE a.id = $1 RETURNING {COLUMNS}"
            ),
            &[&approval.id.0, &status, &by.map(|u| u.0), &reason],
        )
        .await?;
    let decided = from_row(&row)?;
    let task = lock_task(tx, approval.task_id).await?;
    if task.status == TaskStatus::AwaitingApproval {
        tx.execute_cached(
            "UPDATE tasks SET status = $2, max_attempts = max_attempts + 1 WHERE id = $1",
            &[&task.id.0, &TaskStatus::Ready],
        )
        .await?;
    }
    let event = EventBody::ApprovalDecided(ApprovalDecided {
        approval_id: decided.id,
        task: TaskRef::of(&task),
        tool: decided.tool.clone(),
        status: decided.status,
        reason: decided.reason.clone(),
        decided_by: decided.decided_by,
    });
    emit(tx, effects, decided.project_id, Some(decided.run_id), event).await?;
    transitions::dispatch(tx, effects, decided.run_id).await?;
    Ok(decided)
}

#[async_trait]
impl ApprovalStore for PgApprovalStore {
    async fn request(
        &self,
        task: TaskId,
        attempt: u32,
        checkpoint: &serde_json::Value,
        action: &ActionRequest,
    ) -> Result<Changed<Approval>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let locked = lock_run_and_task(&tx, task).await?;
        expect_running(&locked, attempt)?;
        let mut effects = Effects::default();
        let existing = tx
            .query_opt_cached(
                &format!(
                    "SELECT {COLUMNS} FROM approvals a WHERE a.task_id = $1 AND a.call_key = $2 FOR UPDATE"
                ),
                &[&task.0, &action.call_key],
            )
            .await?
            .map(|row| from_row(&row))
            .transpose()?;
        let approval = match existing {
            // Decided before (a resumed run reached the call again): the caller acts on it.
            Some(decided) if decided.status != ApprovalStatus::Pending => {
                tx.commit().await?;
                return Ok(Changed {
                    value: decided,
                    effects,
                });
            }
            Some(pending) if pending.expires_at <= chrono::Utc::now() => {
                let expired = resolve(
                    &tx,
                    &mut effects,
                    &pending,
                    ApprovalStatus::Expired,
                    None,
                    Some("expired before a decision"),
                )
                .await?;
                tx.commit().await?;
                return Ok(Changed {
                    value: expired,
                    effects,
                });
            }
            Some(pending) => pending,
            None => {
                let hash = action.payload.hash();
                let row = tx
                    .query_one_cached(
                        &format!(
                            "INSERT INTO approvals AS a (id, project_id, run_id, task_id, tool, payload, payload_hash, expires_at, call_key)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
                        ),
                        &[
                            &Uuid::new_v4(),
                            &locked.project_id.0,
                            &locked.run_id.0,
                            &task.0,
                            &action.tool,
                            &action.payload.to_value(),
                            &hash,
                            &action.expires_at,
                            &action.call_key,
                        ],
                    )
                    .await?;
                from_row(&row)?
            }
        };
        tx.execute_cached(
            "UPDATE tasks SET status = $2, checkpoint = $3 WHERE id = $1",
            &[&task.0, &TaskStatus::AwaitingApproval, checkpoint],
        )
        .await?;
        transitions::finish_attempt(&tx, task, attempt, AttemptStatus::Parked, None).await?;
        super::budgets::release_held(&tx, "b.task_id = $2", &task.0).await?;
        let event = EventBody::ApprovalRequested(ApprovalRequested {
            approval_id: approval.id,
            task: TaskRef::of(&locked),
            tool: approval.tool.clone(),
            payload: approval.payload.clone(),
            payload_hash: approval.payload_hash.clone(),
            expires_at: approval.expires_at,
        });
        emit(
            &tx,
            &mut effects,
            locked.project_id,
            Some(locked.run_id),
            event,
        )
        .await?;
        // The parked task no longer counts as in flight: others may start.
        transitions::dispatch(&tx, &mut effects, locked.run_id).await?;
        tx.commit().await?;
        Ok(Changed {
            value: approval,
            effects,
        })
    }

    async fn for_call(&self, task: TaskId, call_key: &str) -> Result<Option<Approval>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_opt_cached(
                &format!(
                    "SELECT {COLUMNS} FROM approvals a WHERE a.task_id = $1 AND a.call_key = $2"
                ),
                &[&task.0, &call_key],
            )
            .await?
            .map(|row| from_row(&row))
            .transpose()
    }

    async fn run_approvals(&self, run: RunId) -> Result<Vec<Approval>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_cached(
                &format!("SELECT {COLUMNS} FROM approvals a WHERE a.run_id = $1 ORDER BY a.created_at, a.id"),
                &[&run.0],
            )
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    async fn approval(&self, id: ApprovalId, user: UserId) -> Result<Approval, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt_cached(
                &format!(
                    "SELECT {COLUMNS} FROM approvals a JOIN projects p ON p.id = a.project_id
                     WHERE a.id = $1 AND p.user_id = $2"
                ),
                &[&id.0, &user.0],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        from_row(&row)
    }

    async fn decide(
        &self,
        id: ApprovalId,
        user: UserId,
        decision: Decision,
        payload_hash: &str,
        reason: Option<&str>,
    ) -> Result<Changed<Approval>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let run: Uuid = tx
            .query_opt_cached(
                "SELECT a.run_id FROM approvals a JOIN projects p ON p.id = a.project_id
                 WHERE a.id = $1 AND p.user_id = $2",
                &[&id.0, &user.0],
            )
            .await?
            .ok_or_else(|| not_found(id))?
            .try_get(0)?;
        let run = lock_run(&tx, RunId(run)).await?;
        transitions::lock_user_of(&tx, run.id).await?;
        let approval = lock(&tx, id).await?;
        if approval.status != ApprovalStatus::Pending {
            let when = approval
                .decided_at
                .map(|t| format!(" at {}", t.to_rfc3339()))
                .unwrap_or_default();
            return Err(StoreError::Conflict(format!(
                "approval {id} was already {}{when}; a decision is final",
                approval.status
            )));
        }
        if approval.expires_at <= chrono::Utc::now() {
            return Err(StoreError::Conflict(format!(
                "approval {id} expired at {} before a decision; the action will not run",
                approval.expires_at.to_rfc3339()
            )));
        }
        if payload_hash != approval.payload_hash {
            return Err(StoreError::Conflict(format!(
                "payload_hash {payload_hash:?} is not the hash of the payload approval {id} holds ({}); read the approval again and decide on what it says",
                approval.payload_hash
            )));
        }
        if run.status != RunStatus::Running {
            return Err(StoreError::Conflict(format!(
                "run {} is {}; resume it before deciding",
                run.id, run.status
            )));
        }
        let mut effects = Effects::default();
        let decided = resolve(
            &tx,
            &mut effects,
            &approval,
            decision.status(),
            Some(user),
            reason,
        )
        .await?;
        tx.commit().await?;
        Ok(Changed {
            value: decided,
            effects,
        })
    }

    async fn expire_due(&self, limit: u32) -> Result<Changed<usize>, StoreError> {
        let due: Vec<(Uuid, Uuid)> = {
            let client = self.pool.get().await?;
            client
                .query_cached(
                    "SELECT id, run_id FROM approvals WHERE status = $1 AND expires_at <= now()
                     ORDER BY expires_at LIMIT $2",
                    &[&ApprovalStatus::Pending, &i64::from(limit)],
                )
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, StoreError>>()?
        };
        let mut effects = Effects::default();
        let mut expired = 0;
        for (id, run) in due {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            lock_run(&tx, RunId(run)).await?;
            transitions::lock_user_of(&tx, RunId(run)).await?;
            let approval = lock(&tx, ApprovalId(id)).await?;
            // Decided since the query: nothing to expire.
            if approval.status != ApprovalStatus::Pending {
                continue;
            }
            resolve(
                &tx,
                &mut effects,
                &approval,
                ApprovalStatus::Expired,
                None,
                Some("expired before a decision"),
            )
            .await?;
            tx.commit().await?;
            expired += 1;
        }
        Ok(Changed {
            value: expired,
            effects,
        })
    }

    async fn executed(
        &self,
        id: ApprovalId,
        result: &serde_json::Value,
    ) -> Result<Effects, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut effects = Effects::default();
        let Some(row) = tx
            .query_opt_cached(
                &format!(
                    "UPDATE approvals a SET executed_at = now(), result = $2
                     WHERE a.id = $1 AND a.status = $3 AND a.executed_at IS NULL
                     RETURNING {COLUMNS}, a.call_key"
                ),
                &[&id.0, result, &ApprovalStatus::Approved],
            )
            .await?
        else {
            return Ok(effects);
        };
        let approval = from_row(&row)?;
        let call_key: String = row.try_get("call_key")?;
        tx.execute_cached(
            "INSERT INTO idempotency_keys (scope, key, result, completed_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (scope, key) DO UPDATE SET result = EXCLUDED.result, completed_at = now()",
            &[&crate::crew::tools::IDEMPOTENCY_SCOPE, &call_key, result],
        )
        .await?;
        let event = EventBody::ActionExecuted(ActionExecuted {
            approval_id: Some(approval.id),
            auto_approved: false,
            task_id: approval.task_id,
            tool: approval.tool.clone(),
            result: result.clone(),
        });
        emit(
            &tx,
            &mut effects,
            approval.project_id,
            Some(approval.run_id),
            event,
        )
        .await?;
        tx.commit().await?;
        Ok(effects)
    }
}

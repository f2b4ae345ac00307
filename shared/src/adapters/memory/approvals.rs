//! Approvals, in memory, over the runs twin's tasks.

use super::MemRuns;
use crate::domain::approvals::{ActionRequest, Approval, Decision};
use crate::domain::{ApprovalId, ApprovalStatus, RunId, RunStatus, TaskId, TaskStatus, UserId};
use crate::ports::{ApprovalStore, Changed, Effects, RunStore, StoreError, TaskReads};
use async_trait::async_trait;
use chrono::Utc;
use std::sync::{Arc, Mutex};

/// The `ApprovalStore` twin. It keeps the promises a decision relies on: an approval is its
/// project owner's alone (another user's is `NotFound`), a decision quotes the hash of the
/// payload and is final, an approval past its expiry cannot be approved, and a decision
/// waits for its run to be running. The parked task is the runs twin's.
pub struct MemApprovals {
    runs: Arc<MemRuns>,
    state: Mutex<Vec<(String, Approval)>>,
}

impl MemApprovals {
    pub fn new(runs: Arc<MemRuns>) -> MemApprovals {
        MemApprovals {
            runs,
            state: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Approval)>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The approval, if its run is `user`'s.
    async fn owned(&self, id: ApprovalId, user: UserId) -> Result<Approval, StoreError> {
        let found = self.lock().iter().find(|(_, a)| a.id == id).cloned();
        let not_found = || StoreError::NotFound {
            what: "approval",
            id: id.to_string(),
        };
        let (_, approval) = found.ok_or_else(not_found)?;
        match self.runs.run(approval.run_id).await? {
            run if run.user_id == user => Ok(approval),
            _ => Err(not_found()),
        }
    }

    fn put(&self, approval: &Approval) {
        for (_, kept) in self.lock().iter_mut() {
            if kept.id == approval.id {
                *kept = approval.clone();
            }
        }
    }
}

#[async_trait]
impl ApprovalStore for MemApprovals {
    async fn request(
        &self,
        task: TaskId,
        _attempt: u32,
        _checkpoint: &serde_json::Value,
        action: &ActionRequest,
    ) -> Result<Changed<Approval>, StoreError> {
        if let Some(asked) = self.for_call(task, &action.call_key).await? {
            return Ok(Changed {
                value: asked,
                effects: Effects::default(),
            });
        }
        let parked = self.runs.task(task).await?;
        self.runs
            .set_task_status(task, TaskStatus::AwaitingApproval);
        let approval = Approval {
            id: ApprovalId::new(),
            project_id: parked.project_id,
            run_id: parked.run_id,
            task_id: task,
            tool: action.tool.clone(),
            payload_hash: action.payload.hash(),
            payload: action.payload.clone(),
            status: ApprovalStatus::Pending,
            expires_at: action.expires_at,
            decided_at: None,
            decided_by: None,
            reason: None,
            executed_at: None,
            result: None,
            created_at: Utc::now(),
        };
        self.lock()
            .push((action.call_key.clone(), approval.clone()));
        Ok(Changed {
            value: approval,
            effects: Effects::default(),
        })
    }

    async fn for_call(&self, task: TaskId, call_key: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .find(|(key, a)| a.task_id == task && key == call_key)
            .map(|(_, a)| a.clone()))
    }

    async fn run_approvals(&self, run: RunId) -> Result<Vec<Approval>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .filter(|(_, a)| a.run_id == run)
            .map(|(_, a)| a.clone())
            .collect())
    }

    async fn approval(&self, id: ApprovalId, user: UserId) -> Result<Approval, StoreError> {
        self.owned(id, user).await
    }

    async fn decide(
        &self,
        id: ApprovalId,
        user: UserId,
        decision: Decision,
        payload_hash: &str,
        reason: Option<&str>,
    ) -> Result<Changed<Approval>, StoreError> {
        let mut approval = self.owned(id, user).await?;
        if approval.status != ApprovalStatus::Pending {
            return Err(StoreError::Conflict(format!(
                "approval {id} was already {}; a decision is final",
                approval.status
            )));
        }
        if approval.expires_at <= Utc::now() {
            approval.status = ApprovalStatus::Expired;
            self.put(&approval);
            return Err(StoreError::Conflict(format!(
                "approval {id} expired at {} before a decision; the action will not run",
                approval.expires_at.to_rfc3339()
            )));
        }
        if approval.payload_hash != payload_hash {
            return Err(StoreError::Conflict(format!(
                "payload_hash {payload_hash:?} is not the hash of the payload approval {id} holds ({}); read the approval again and decide on what it says",
                approval.payload_hash
            )));
        }
        let run = self.runs.run(approval.run_id).await?;
        if run.status != RunStatus::Running {
            return Err(StoreError::Conflict(format!(
                "run {} is {}; resume it before deciding",
                run.id, run.status
            )));
        }
        approval.status = decision.status();
        approval.decided_at = Some(Utc::now());
        approval.decided_by = Some(user);
        approval.reason = reason.map(str::to_owned);
        self.put(&approval);
        self.runs
            .set_task_status(approval.task_id, TaskStatus::Ready);
        Ok(Changed {
            value: approval,
            effects: Effects::default(),
        })
    }

    async fn expire_due(&self, limit: u32) -> Result<Changed<usize>, StoreError> {
        let now = Utc::now();
        let mut expired = Vec::new();
        for (_, approval) in self.lock().iter_mut() {
            if expired.len() < limit as usize
                && approval.status == ApprovalStatus::Pending
                && approval.expires_at <= now
            {
                approval.status = ApprovalStatus::Expired;
                expired.push(approval.task_id);
            }
        }
        for task in &expired {
            self.runs.set_task_status(*task, TaskStatus::Ready);
        }
        Ok(Changed {
            value: expired.len(),
            effects: Effects::default(),
        })
    }

    async fn executed(
        &self,
        id: ApprovalId,
        result: &serde_json::Value,
    ) -> Result<Effects, StoreError> {
        for (_, approval) in self.lock().iter_mut() {
            if approval.id == id && approval.executed_at.is_none() {
                approval.executed_at = Some(Utc::now());
                approval.result = Some(result.clone());
            }
        }
        Ok(Effects::default())
    }
}

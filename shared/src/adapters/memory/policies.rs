//! Approval policies, in memory.

use crate::domain::UserId;
use crate::ports::{StoreError, ToolPolicies};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The `ToolPolicies` twin: each user's tools that run without asking.
#[derive(Default)]
pub struct MemPolicies(Mutex<BTreeMap<(UserId, String), bool>>);

impl MemPolicies {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(UserId, String), bool>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ToolPolicies for MemPolicies {
    async fn auto_approves(&self, user: UserId, tool: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .get(&(user, tool.to_owned()))
            .copied()
            .unwrap_or(false))
    }

    async fn policies(&self, user: UserId) -> Result<Vec<(String, bool)>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .filter(|((owner, _), _)| *owner == user)
            .map(|((_, tool), auto)| (tool.clone(), *auto))
            .collect())
    }

    async fn set_policy(
        &self,
        user: UserId,
        tool: &str,
        auto_approve: bool,
    ) -> Result<(), StoreError> {
        self.lock().insert((user, tool.to_owned()), auto_approve);
        Ok(())
    }
}

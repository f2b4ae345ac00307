//! Users and their projects, in memory.

use crate::domain::records::{Project, ProjectChanges, User};
use crate::domain::{ProjectId, UserId};
use crate::ports::{ProjectStore, StoreError};
use async_trait::async_trait;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Mutex;

/// The `ProjectStore` twin. A project with a run not ended cannot be deleted; the twin
/// holds no runs, so `with_active_run` marks a project as having one.
#[derive(Default)]
pub struct MemProjects {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, User>,
    projects: HashMap<ProjectId, Project>,
    active_runs: Vec<ProjectId>,
}

impl MemProjects {
    /// Marks `project` as having a run that has not ended.
    pub fn with_active_run(&self, project: ProjectId) {
        self.lock().active_runs.push(project);
    }

    /// The user with `email`, if there is one.
    pub fn user_by_email(&self, email: &str) -> Option<User> {
        self.lock()
            .users
            .values()
            .find(|u| u.email == email)
            .cloned()
    }

    /// Marks `user`'s email as verified now; false when there is no such user.
    pub fn verify(&self, user: UserId) -> bool {
        match self.lock().users.get_mut(&user) {
            Some(found) => {
                found.email_verified_at = Some(Utc::now());
                true
            }
            None => false,
        }
    }

    /// Every project.
    pub(super) fn all(&self) -> Vec<Project> {
        self.lock().projects.values().cloned().collect()
    }

    /// Deletes `user` and their projects, as erasing the account does; their ids.
    pub fn forget_user(&self, user: UserId) -> Vec<ProjectId> {
        let mut state = self.lock();
        state.users.remove(&user);
        let theirs: Vec<ProjectId> = state
            .projects
            .values()
            .filter(|p| p.user_id == user)
            .map(|p| p.id)
            .collect();
        for id in &theirs {
            state.projects.remove(id);
        }
        theirs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves data that is still whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn not_found(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

#[async_trait]
impl ProjectStore for MemProjects {
    async fn create_user(&self, email: &str, display_name: &str) -> Result<User, StoreError> {
        let mut state = self.lock();
        if state.users.values().any(|u| u.email == email) {
            return Err(StoreError::Conflict(format!("{email} is taken")));
        }
        let user = User {
            id: UserId::new(),
            email: email.to_owned(),
            display_name: display_name.to_owned(),
            plan: crate::domain::PlanId::free(),
            semantic_cache_threshold: None,
            email_verified_at: None,
            created_at: Utc::now(),
            timezone: "UTC".to_owned(),
        };
        state.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn create_project(
        &self,
        user: UserId,
        name: &str,
        description: &str,
    ) -> Result<Project, StoreError> {
        let project = Project {
            id: ProjectId::new(),
            user_id: user,
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: Utc::now(),
            archived_at: None,
        };
        self.lock().projects.insert(project.id, project.clone());
        Ok(project)
    }

    async fn project(&self, id: ProjectId) -> Result<Project, StoreError> {
        self.lock()
            .projects
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("project", id))
    }

    async fn update_project(
        &self,
        user: UserId,
        id: ProjectId,
        changes: &ProjectChanges,
    ) -> Result<Project, StoreError> {
        let mut state = self.lock();
        let project = state
            .projects
            .get_mut(&id)
            .filter(|p| p.user_id == user)
            .ok_or_else(|| not_found("project", id))?;
        if let Some(name) = &changes.name {
            project.name = name.clone();
        }
        if let Some(description) = &changes.description {
            project.description = description.clone();
        }
        match changes.archived {
            Some(true) => project.archived_at = project.archived_at.or(Some(Utc::now())),
            Some(false) => project.archived_at = None,
            None => {}
        }
        Ok(project.clone())
    }

    async fn delete_project(&self, user: UserId, id: ProjectId) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.projects.get(&id).is_none_or(|p| p.user_id != user) {
            return Err(not_found("project", id));
        }
        if state.active_runs.contains(&id) {
            return Err(StoreError::Conflict(format!(
                "project {id} has a run not ended"
            )));
        }
        state.projects.remove(&id);
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<User, StoreError> {
        self.lock()
            .users
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("user", id))
    }

    async fn set_semantic_cache(
        &self,
        id: UserId,
        threshold: Option<f32>,
    ) -> Result<User, StoreError> {
        let mut state = self.lock();
        let user = state
            .users
            .get_mut(&id)
            .ok_or_else(|| not_found("user", id))?;
        user.semantic_cache_threshold = threshold;
        Ok(user.clone())
    }

    async fn set_timezone(&self, id: UserId, timezone: &str) -> Result<User, StoreError> {
        let mut state = self.lock();
        let user = state
            .users
            .get_mut(&id)
            .ok_or_else(|| not_found("user", id))?;
        user.timezone = timezone.to_owned();
        Ok(user.clone())
    }
}

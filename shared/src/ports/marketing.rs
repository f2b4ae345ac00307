//! The daily marketing loop's records: posts the tools published (with their engagement),
//! a project's launch, and the day's topics.

use super::store::StoreError;
use crate::domain::marketing::{PostMetrics, SocialPost, Topic};
use crate::domain::{ProjectId, RunId, Service, UserId};
use async_trait::async_trait;

/// A post just published.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSocialPost {
    pub service: Service,
    pub provider_id: String,
    pub project: ProjectId,
    pub user: UserId,
    pub run: RunId,
    pub link: String,
    pub text: String,
}

/// A project that has just launched: its owner and their time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub user: UserId,
    pub timezone: String,
}

#[async_trait]
pub trait MarketingStore: Send + Sync {
    /// Keeps a published post; the same post again (a retried call) is kept once.
    async fn record_post(&self, post: &NewSocialPost) -> Result<(), StoreError>;
    /// The project's latest posts, newest first.
    async fn project_posts(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> Result<Vec<SocialPost>, StoreError>;
    /// The posts a run published, oldest first.
    async fn run_posts(&self, run: RunId) -> Result<Vec<SocialPost>, StoreError>;
    /// Keeps a post's engagement as just fetched.
    async fn set_metrics(
        &self,
        service: Service,
        provider_id: &str,
        metrics: &PostMetrics,
    ) -> Result<(), StoreError>;
    /// Marks the project launched if it has a ready site or a published post and was not
    /// launched before: `Some` exactly once per project.
    async fn launch(&self, project: ProjectId) -> Result<Option<Launched>, StoreError>;
}

/// Where the day's topics come from (a fixture file locally; a trends feed or an editorial
/// calendar elsewhere).
#[async_trait]
pub trait TopicSource: Send + Sync {
    /// The topics for `project` on `day` (`YYYY-MM-DD` in the user's time zone).
    async fn topics(&self, project: ProjectId, day: &str) -> Result<Vec<Topic>, String>;
}

//! Ports: the capabilities handlers depend on, named by what they do. Adapters in
//! `crate::adapters` implement them; handlers take the narrowest one they need.

pub mod accounts;
pub mod analytics;
pub mod approvals;
pub mod billing;
pub mod blob;
pub mod browse;
pub mod budget;
pub mod connections;
pub mod control;
pub mod conversations;
pub mod dashboard;
pub mod events;
pub mod gateway;
pub mod idempotency;
pub mod ledger;
pub mod limits;
pub mod llm;
pub mod mail;
pub mod marketing;
pub mod memory;
pub mod notices;
pub mod outbox;
pub mod queue;
pub mod realtime;
pub mod retention;
pub mod schedules;
pub mod secrets;
pub mod state_machine;
pub mod store;
pub mod timers;
pub mod uploads;
pub mod vault;

pub use accounts::{AccountStore, EmailPurpose, Rotation};
pub use analytics::{AnalyticsStore, IngestKey, KeyHolder};
pub use approvals::ApprovalStore;
pub use billing::{
    Applied, ApplyError, BillingStore, BillingTerms, Fetch, OverageDue, PaymentError, Payments,
    PendingReport, ReceivedEvent,
};
pub use blob::{BlobError, BlobStore, StoredBlob};
pub use browse::{AgentActivity, Analytics, ArtifactEntry, Browse, RunsOnDay, TaskDetail};
pub use budget::{BudgetError, BudgetScope, BudgetStore, PeriodBudget, Reservation};
pub use connections::{
    ConnectionStore, Credential, DeploymentChange, DeploymentStore, DeviceFlow, JobPark,
    NewConnection, NewDeployment, Renewal, Sealed, ToolPolicies, WebFlow, WebFlowStatus,
};
pub use control::RunControl;
pub use conversations::{Conversations, PendingReply};
pub use dashboard::Dashboard;
pub use events::EventLog;
pub use gateway::{
    CallBook, Embedding, Lease, OpenCall, ResponseCache, SemanticCache, SemanticHit, Slots,
};
pub use idempotency::{Claim, IdempotencyStore};
pub use ledger::{CostGroup, CostQuery, CostRollup, Ledger};
pub use limits::{Bucket, RateLimiter, Standing};
pub use llm::{Embedder, ImageMaker, ImageRequest, LlmClient, LlmError};
pub use mail::{Email, MailError, Mailer};
pub use marketing::{Launched, MarketingStore, NewSocialPost, TopicSource};
pub use memory::{MemorySource, MemoryStore, NewMemory, Remembered};
pub use notices::{
    NewDevice, NewWebhook, NoticeStore, PushService, PushServiceError, WebhookSender,
};
pub use outbox::{Effects, OutboxStore, Publisher};
pub use queue::{Queue, QueueError, QueueMessage};
pub use realtime::{
    ConnectionRegistry, Follower, MAX_SUBSCRIPTIONS, PushError, RealtimePush, RegistryError,
    Session,
};
pub use retention::Retention;
pub use schedules::{Fired, NewSchedule, ScheduleFields, ScheduleStore};
pub use secrets::{SecretError, Secrets};
pub use state_machine::{ExecutionStatus, StateMachine, StateMachineError};
pub use store::{
    ArtifactStore, AttemptFailure, Changed, Completion, Failure, PlanLease, ProjectStore, RunStore,
    Start, Started, StoreError, TaskReads, TaskStore, Written,
};
pub use timers::{ScheduleTimers, TimerError};
pub use uploads::{Upload, UploadStore};
pub use vault::{DataKey, KeyKeeper, VaultError};

/// A backend's own error, kept whole as the source so the cause chain reaches the log.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

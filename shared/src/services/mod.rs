//! Services the functions share: the LLM gateway, emitting events (log then push), and
//! relaying what committed state changes send out.

pub mod access;
pub mod accounts;
pub mod backoff;
pub mod billing;
pub mod gateway;
pub mod memory;
pub mod notices;
pub mod notifier;
pub mod oidc;
pub mod passwords;
pub mod relay;
pub mod scheduler;
pub mod vault;
pub mod web_flows;

pub use crate::domain::messages::{
    CallbackMessage, OutboxEntry, Outgoing, RunOutcome, TaskMessage,
};
pub use accounts::{AccountError, ConnectedAccounts, FlowStep, Opened};
pub use backoff::backoff;
pub use billing::Billing;
pub use gateway::{
    Acceptance, Answer, Call, Gateway, GatewayError, GatewayModels, GatewaySettings, GatewayStores,
    Source,
};
pub use memory::{Memories, PLAN_RECALL, Recall, RecallLimits, TASK_RECALL};
pub use notifier::Notifier;
pub use relay::{AgentQueues, Relay, RelayError};
pub use vault::Vault;

//! Services the functions share: the messages on the queues, emitting events (log then
//! push), and dispatching ready tasks to their agents' queues.

pub mod backoff;
pub mod dispatch;
pub mod gateway;
pub mod messages;
pub mod notifier;

pub use backoff::backoff;
pub use dispatch::{AgentQueues, DispatchError, Dispatcher};
pub use gateway::{
    Acceptance, Answer, Call, Gateway, GatewayError, GatewayModels, GatewaySettings, GatewayStores,
    Source,
};
pub use messages::{CallbackMessage, RunOutcome, TaskMessage};
pub use notifier::Notifier;

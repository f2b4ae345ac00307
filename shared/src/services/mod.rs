//! Services the functions share: the messages on the queues, emitting events (log then
//! push), and dispatching ready tasks to their agents' queues.

pub mod dispatch;
pub mod messages;
pub mod notifier;

pub use dispatch::{AgentQueues, DispatchError, Dispatcher};
pub use messages::{CallbackMessage, RunOutcome, TaskMessage};
pub use notifier::Notifier;

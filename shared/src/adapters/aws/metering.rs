//! Counts what this process asks of AWS: every SDK call by service and operation (an
//! interceptor on each client), and every function invocation the local runner makes, with
//! its duration. The runner serves the counts (`GET /metering`), so a run's AWS cost is
//! priced from counted calls rather than guessed.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Invocations of one function and their total duration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocations {
    pub count: u64,
    pub total_ms: u64,
}

/// Everything counted so far in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metered {
    /// `"<service>.<operation>"` (e.g. `"SQS.SendMessage"`) → calls.
    pub calls: BTreeMap<String, u64>,
    /// Function name → invocations.
    pub invocations: BTreeMap<String, Invocations>,
}

static METERED: LazyLock<Mutex<Metered>> = LazyLock::new(Default::default);

fn metered() -> std::sync::MutexGuard<'static, Metered> {
    METERED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The counts so far.
pub fn snapshot() -> Metered {
    metered().clone()
}

/// Counts one invocation of `function` that took `took`.
pub fn invoked(function: &str, took: Duration) {
    let mut m = metered();
    let entry = m.invocations.entry(function.to_owned()).or_default();
    entry.count += 1;
    entry.total_ms += u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
}

/// The SDK interceptor that counts each call, by the operation's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metering;

impl Intercept for Metering {
    fn name(&self) -> &'static str {
        "Metering"
    }

    // Not `read_before_execution`: a client's interceptors see that one before the
    // operation's metadata is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(op) = cfg.load::<Metadata>() {
            let key = format!("{}.{}", op.service(), op.name());
            *metered().calls.entry(key).or_default() += 1;
        }
        Ok(())
    }
}

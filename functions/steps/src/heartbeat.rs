//! Proving a working step is alive. Every beat records the heartbeat in Postgres and hides
//! the step's SQS message a little longer; if the worker dies, the message comes back soon
//! after the heartbeat goes stale, and whoever receives it takes the work over. A beat that
//! finds the work taken away (the task cancelled, or reclaimed as dead) tells the step to
//! stop at its next model turn or tool call.

use crate::StepContext;
use autocrew_shared::config::Liveness;
use autocrew_shared::ports::{Queue, StoreError};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

/// The SQS message a step is working on.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub queue_url: String,
    pub receipt: String,
}

type Beat = Arc<dyn Fn() -> BoxFuture<'static, Result<bool, StoreError>> + Send + Sync>;

/// Beats until dropped.
pub(crate) struct Heartbeat {
    alive: Arc<AtomicBool>,
    beat: Beat,
    beating: JoinHandle<()>,
}

impl Heartbeat {
    /// Starts beating: `beat` records the heartbeat and answers whether the work is still
    /// this worker's.
    pub(crate) fn start<F, Fut>(ctx: &StepContext, delivery: Option<Delivery>, beat: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, StoreError>> + Send + 'static,
    {
        let beat: Beat = Arc::new(move || beat().boxed());
        let alive = Arc::new(AtomicBool::new(true));
        let (flag, queue, liveness) = (alive.clone(), ctx.queue.clone(), ctx.liveness);
        let beats = beat.clone();
        let beating = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(liveness.every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match beats().await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(
                            "the work was taken away (cancelled, or presumed dead); stopping"
                        );
                        flag.store(false, Ordering::SeqCst);
                        return;
                    }
                    // A missed beat is not fatal: the next one may land; past the limit the
                    // work is reclaimed, and this worker learns it at its next beat.
                    Err(e) => tracing::warn!(error = %e, "a heartbeat was not recorded"),
                }
                hide(&*queue, delivery.as_ref(), liveness).await;
            }
        });
        Heartbeat {
            alive,
            beat,
            beating,
        }
    }

    /// Whether the work was still this worker's at the last beat.
    pub(crate) fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Beats now and says whether the work is still this worker's: asked before effects
    /// (tool calls), where a beat-old answer is not good enough. A beat that cannot be
    /// recorded counts as alive, as in the background.
    pub(crate) async fn confirm(&self) -> bool {
        if !self.alive() {
            return false;
        }
        match (self.beat)().await {
            Ok(mine) => {
                if !mine {
                    self.alive.store(false, Ordering::SeqCst);
                }
                mine
            }
            Err(e) => {
                tracing::warn!(error = %e, "a heartbeat was not recorded");
                true
            }
        }
    }
}

/// Hides the message for one more stretch of `liveness.visibility()`. A step calls it
/// first thing: the queue's own visibility (the function's timeout) would keep a message
/// whose worker died at once hidden for minutes.
pub(crate) async fn hide(queue: &dyn Queue, delivery: Option<&Delivery>, liveness: Liveness) {
    let Some(d) = delivery else { return };
    let hidden = queue
        .change_visibility(&d.queue_url, &d.receipt, liveness.visibility())
        .await;
    if let Err(e) = hidden {
        tracing::warn!(error = %e, "could not extend the message's visibility");
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.beating.abort();
    }
}

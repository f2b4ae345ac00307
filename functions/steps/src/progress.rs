//! Streams model output to the clients as live messages while the model writes it (an
//! agent's as `task_progress`, a conversation reply's as `reply_progress`): pieces are gathered and sent at most every 250 ms, in chunks small
//! enough for one WebSocket frame. They are pushed, not logged: no chunk is a row, and the
//! task's result keeps the whole output.

use crate::StepContext;
use autocrew_shared::domain::events::{EventBody, ProgressStage, TaskProgress, TaskRef};
use autocrew_shared::domain::records::{Run, Task};
use autocrew_shared::domain::{ProjectId, RunId};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const EVERY: Duration = Duration::from_millis(250);
/// Characters of output per event at most.
const CHUNK: usize = 8 * 1024;

pub(crate) struct Progress {
    tx: mpsc::UnboundedSender<String>,
    sender: JoinHandle<()>,
}

impl Progress {
    /// Starts the sender for one model turn (`step`) of `task`, in the attempt's
    /// `invocation`-th invocation.
    pub(crate) fn start(
        ctx: &StepContext,
        run: &Run,
        task: &Task,
        (step, invocation): (u32, u32),
    ) -> Self {
        let task = TaskRef::of(task);
        Self::start_with(ctx, run.project_id, Some(run.id), move |delta, chars| {
            EventBody::TaskProgress(TaskProgress {
                task: task.clone(),
                step,
                invocation,
                stage: ProgressStage::Streaming {
                    delta: Some(delta),
                    chars,
                    compacted: false,
                    whole_turn: false,
                },
            })
        })
    }

    /// Starts a sender of live events for `project` (and `run`); `event` makes each one
    /// from its piece of text and the characters sent so far.
    pub(crate) fn start_with(
        ctx: &StepContext,
        project: ProjectId,
        run: Option<RunId>,
        event: impl Fn(String, u64) -> EventBody + Send + 'static,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let ctx = ctx.clone();
        let sender = tokio::spawn(async move {
            let mut pending = String::new();
            let mut sent = 0u64;
            let mut next_send = tokio::time::Instant::now();
            loop {
                // Wait for output; while some is pending, only until it is due.
                let piece = if pending.is_empty() {
                    rx.recv().await
                } else {
                    match tokio::time::timeout_at(next_send, rx.recv()).await {
                        Ok(piece) => piece,
                        Err(_) => Some(String::new()),
                    }
                };
                let closed = piece.is_none();
                pending.push_str(&piece.unwrap_or_default());
                let due = tokio::time::Instant::now() >= next_send;
                if (due || closed) && !pending.is_empty() {
                    while !pending.is_empty() {
                        let cut = floor_char_boundary(&pending, CHUNK);
                        let delta: String = pending.drain(..cut).collect();
                        sent += delta.chars().count() as u64;
                        ctx.notifier.flash(project, run, event(delta, sent)).await;
                    }
                    next_send = tokio::time::Instant::now() + EVERY;
                }
                if closed {
                    break;
                }
            }
        });
        Progress { tx, sender }
    }

    /// Where the model's output pieces go.
    pub(crate) fn sink(&self) -> impl Fn(&str) + Send + Sync + use<> {
        let tx = self.tx.clone();
        move |piece: &str| {
            let _ = tx.send(piece.to_owned());
        }
    }

    /// Sends what is left and waits for it to be sent.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.sender.await;
    }
}

/// Tells the app when a turn's model call waits (for a concurrency slot, or for as long
/// as the provider asked): a `task_progress` of stage `waiting`, saying why.
pub(crate) fn waiting(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    (step, invocation): (u32, u32),
) -> impl Fn(&str) + Send + Sync + use<> {
    let ctx = ctx.clone();
    let (project, run_id) = (run.project_id, run.id);
    let task = TaskRef::of(task);
    move |why: &str| {
        let event = EventBody::TaskProgress(TaskProgress {
            task: task.clone(),
            step,
            invocation,
            stage: ProgressStage::Waiting {
                waiting: why.to_owned(),
            },
        });
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.notifier.flash(project, Some(run_id), event).await;
        });
    }
}

/// The largest index at most `max` that falls on a character boundary.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

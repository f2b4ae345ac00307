//! The orchestrator answers a conversation: the pending reply is written through the LLM
//! gateway (priced, in the user's budget) from the project's brief and the thread, streamed
//! live as `reply_progress`, then stored with its `message_posted` event.

use crate::callback::{call_model, retry};
use crate::progress::Progress;
use crate::{RecordError, StepContext};
use autocrew_shared::crew::chat;
use autocrew_shared::domain::events::{EventBody, ReplyProgress};
use autocrew_shared::domain::messages::ReplyMessage;
use autocrew_shared::domain::records::Attribution;
use autocrew_shared::domain::{AgentKind, Complexity};
use autocrew_shared::services::Call;

/// Deliveries of a reply message before a provider outage fails the reply instead of
/// waiting for the next delivery (the queue's redrive limit is higher).
const DELIVERIES: u32 = 3;

#[tracing::instrument(name = "reply", skip_all)]
pub(crate) async fn handle(
    ctx: &StepContext,
    message: ReplyMessage,
    delivery: u32,
) -> Result<(), RecordError> {
    // Answered already (a redelivered message): nothing to do.
    let Some(pending) = ctx
        .conversations
        .pending(message.message_id, chat::HISTORY)
        .await?
    else {
        return Ok(());
    };
    let reply = &pending.reply;
    let attribution = Attribution {
        user_id: pending.user_id,
        project_id: reply.project_id,
        run_id: None,
        task_id: None,
        agent: AgentKind::Orchestrator,
    };
    let profile = ctx.profiles.get(AgentKind::Orchestrator);
    let request = chat::reply_request(&pending.brief, &pending.history);
    let id = reply.id;
    let progress = Progress::start_with(ctx, reply.project_id, None, move |delta, chars| {
        EventBody::ReplyProgress(ReplyProgress {
            message_id: id,
            delta,
            chars,
        })
    });
    let sink = progress.sink();
    let answer = call_model(
        ctx,
        Call {
            attribution,
            tier: profile.model_policy.tier_for(Complexity::Simple),
            request,
            on_text: ctx.stream.then_some(&sink as _),
            semantic_scope: None,
            accept: None,
            share_cache: false,
            wait_until: None,
            on_wait: None,
        },
    )
    .await;
    // The sink holds a sender: drop it, or the progress never sees the end of the output.
    drop(sink);
    progress.finish().await;
    let outcome = match answer? {
        Ok(answer) => Ok(answer.response.text()),
        Err(e) if e.is_retryable() && delivery < DELIVERIES => return Err(retry(e)),
        Err(e) => Err(format!("the orchestrator could not answer: {e}")),
    };
    let result = match &outcome {
        Ok(text) if text.trim().is_empty() => Err("the model gave an empty answer"),
        Ok(text) => Ok(text.trim()),
        Err(error) => Err(error.as_str()),
    };
    let answered = ctx.conversations.answer(id, result).await?;
    ctx.relay.publish(answered.effects).await;
    Ok(())
}

//! The plan step: the orchestrator turns the command into a checked plan. The answer must
//! match the plan schema and form a valid graph; a plan that does not gets one repair
//! round, then the run fails with the validation error recorded. A rejected plan stores
//! no task and dispatches nothing.

use crate::callback::{answered, call_model, retry};
use crate::heartbeat::{Delivery, Heartbeat, hide};
use crate::outputs::Planned;
use crate::{RecordError, StepContext};
use autocrew_shared::crew::planner::{self, PlanReply, Recalled, SimilarProjectNote};
use autocrew_shared::domain::events::{EventBody, MemoryRecalled, RecalledMemory, RunEnded};
use autocrew_shared::domain::memory::RecalledNote;
use autocrew_shared::domain::messages::as_json;
use autocrew_shared::domain::records::{Attribution, Run};
use autocrew_shared::domain::{AgentKind, Complexity, PlanLimits, RunStatus, TaskGraph};
use autocrew_shared::ports::PlanLease;
use autocrew_shared::ports::llm::{LlmRequest, LlmResponse};
use autocrew_shared::services::{Call, CallbackMessage, Outgoing, PLAN_RECALL};

/// The semantic cache scope of plans: a user who opted in gets the plan of a close enough
/// earlier command.
const PLAN_SCOPE: &str = "plan";

#[tracing::instrument(name = "plan", skip_all)]
pub(crate) async fn handle(
    ctx: &StepContext,
    message: CallbackMessage,
    receipt: Option<&str>,
) -> Result<(), RecordError> {
    if let Some(reason) = message.revise.clone() {
        return crate::revise::handle(ctx, message.run_id, reason).await;
    }
    let stale_after = ctx.liveness.stale_after;
    let delivery = receipt.and_then(|receipt| {
        Some(Delivery {
            queue_url: ctx.relay.queues.url(AgentKind::Orchestrator)?.to_owned(),
            receipt: receipt.to_owned(),
        })
    });
    hide(&*ctx.queue, delivery.as_ref(), ctx.liveness).await;
    let run = match ctx
        .runs
        .begin_planning(message.run_id, &message.task_token, stale_after)
        .await?
    {
        PlanLease::Granted(run) => run,
        // Its planner is alive: look again once it could be presumed dead.
        PlanLease::Busy => {
            return Err(RecordError::Retry {
                error: format!("run {} is being planned elsewhere", message.run_id),
                backoff: stale_after,
            });
        }
        PlanLease::Done(run) => return answer_again(ctx, &message, &run).await,
    };
    let heartbeat = {
        let (runs, id) = (ctx.runs.clone(), run.id);
        Heartbeat::start(ctx, delivery, move || {
            let runs = runs.clone();
            async move { runs.plan_heartbeat(id).await }
        })
    };
    let limits = PlanLimits {
        budget: run.budget,
        ..ctx.plan_limits
    };
    // The daily loop's plan is fixed; its tasks carry the day's briefing.
    if crate::daily::is_daily_loop(ctx, &run).await? {
        let product = ctx.projects.project(run.project_id).await?.name;
        let day = crate::daily::local_day(ctx, &run).await;
        let briefing = crate::daily::briefing(ctx, &run, &day).await?;
        let reply = crate::daily::plan(&product, &day, &briefing);
        return match TaskGraph::build(&reply.tasks, limits) {
            Ok(graph) => accept_plan(ctx, &message, &run, reply, graph).await,
            Err(e) => reject(ctx, &message, format!("the daily loop's plan: {e}")).await,
        };
    }
    let attribution = Attribution {
        user_id: run.user_id,
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: None,
        agent: AgentKind::Orchestrator,
    };
    let profile = ctx.profiles.get(AgentKind::Orchestrator);
    let tier = profile.model_policy.tier_for(Complexity::Complex);
    let accept = move |r: &LlmResponse| planner::parse_plan(r, limits).is_ok();
    let ask = |request: LlmRequest, scope: Option<&'static str>| Call {
        attribution,
        tier,
        request,
        on_text: None,
        semantic_scope: scope,
        accept: Some(&accept),
        share_cache: false,
        wait_until: None,
        on_wait: None,
    };
    let recalled = recall(ctx, &run, &attribution).await;
    let first = planner::plan_request(profile, &run.command, &recalled);
    let mut parsed = None;
    let mut request = first.clone();
    let mut scope = Some(PLAN_SCOPE);
    for round in 0..2 {
        if !heartbeat.alive() {
            tracing::info!(run = %run.id, "planning stopped: the run was cancelled or taken over");
            return Ok(());
        }
        let response = match call_model(ctx, ask(request.clone(), scope)).await? {
            Ok(answer) => answer.response,
            Err(e) if e.is_retryable() => return Err(retry(e)),
            Err(e) => {
                let error = format!("the orchestrator could not plan: {e}");
                return reject(ctx, &message, error).await;
            }
        };
        match planner::parse_plan(&response, limits) {
            Ok(plan) => {
                parsed = Some(plan);
                break;
            }
            Err(e) if round == 0 => {
                tracing::info!(run = %run.id, error = %e, "plan invalid; one repair round");
                request = planner::repair_request(&first, &response, &e);
                scope = None;
            }
            Err(e) => {
                let error = format!("the plan was still invalid after one repair round: {e}");
                return reject(ctx, &message, error).await;
            }
        }
    }
    let Some((reply, graph)) = parsed else {
        return reject(ctx, &message, "no plan".into()).await;
    };
    // The project's gist finds it among the user's similar projects later; it replaces the
    // earlier one, so a redelivered plan writes it again harmlessly.
    let gist = format!("{}: {}", reply.product, run.command);
    if let Err(e) = ctx.memories().remember_gist(&attribution, &gist).await {
        tracing::warn!(run = %run.id, error = %e, "the project's gist was not kept");
    }
    accept_plan(ctx, &message, &run, reply, graph).await
}

/// The memories and similar projects nearest the command, for the planner, and an event
/// saying which. Memory helps, it is not the plan: if it cannot be read, planning goes on.
async fn recall(ctx: &StepContext, run: &Run, who: &Attribution) -> Recalled {
    let recall = match ctx.memories().recall(who, &run.command, PLAN_RECALL).await {
        Ok(recall) => recall,
        Err(e) => {
            tracing::warn!(run = %run.id, error = %e, "memories not recalled; planning goes on without them");
            return Recalled::default();
        }
    };
    if recall.is_empty() {
        return Recalled::default();
    }
    let event = EventBody::MemoryRecalled(MemoryRecalled {
        task: None,
        memories: recall.memories.iter().map(RecalledMemory::from).collect(),
        projects: recall.projects.clone(),
    });
    if let Err(e) = ctx.notifier.emit(run.project_id, Some(run.id), event).await {
        tracing::warn!(run = %run.id, error = %e, "the recall was not logged");
    }
    Recalled {
        memories: recall.memories.iter().map(RecalledNote::from).collect(),
        similar_projects: recall
            .projects
            .into_iter()
            .map(|p| SimilarProjectNote {
                name: p.name,
                gist: p.gist,
                similarity: (p.similarity * 100.0).round() / 100.0,
            })
            .collect(),
    }
}

/// Answers a plan message whose run is past planning (a redelivery, or a planner that died
/// after its commit): first whatever the run still has in the outbox, then the token again
/// as the run stands (a stale token is fine).
async fn answer_again(
    ctx: &StepContext,
    message: &CallbackMessage,
    run: &Run,
) -> Result<(), RecordError> {
    crate::callback::send_leftovers(ctx, run.id).await;
    let answer = if matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
        let cause = run.error.as_deref().unwrap_or("the run ended");
        ctx.state_machine
            .task_failure(&message.task_token, "PlanRejected", cause)
            .await
    } else {
        let tasks = ctx.tasks.run_tasks(run.id).await?.len();
        ctx.state_machine
            .task_success(
                &message.task_token,
                &as_json(&Planned {
                    run_id: run.id,
                    tasks,
                }),
            )
            .await
    };
    answered(answer)
}

/// Stores the plan and its tasks, announces them and answers the state machine, in one
/// transaction.
async fn accept_plan(
    ctx: &StepContext,
    message: &CallbackMessage,
    run: &Run,
    reply: PlanReply,
    graph: TaskGraph,
) -> Result<(), RecordError> {
    let answer = Outgoing::TaskSuccess {
        token: message.task_token.clone(),
        output: as_json(&Planned {
            run_id: run.id,
            tasks: graph.tasks().len(),
        }),
    };
    let accepted = ctx
        .tasks
        .accept_plan(run, &as_json(&reply), &graph, &reply.product, answer)
        .await?;
    ctx.relay.publish(accepted.effects).await;
    Ok(())
}

/// Records why the plan was rejected and fails the run and the state machine's step, in
/// one transaction.
async fn reject(
    ctx: &StepContext,
    message: &CallbackMessage,
    error: String,
) -> Result<(), RecordError> {
    tracing::warn!(run = %message.run_id, error, "plan rejected");
    let answer = Outgoing::TaskFailure {
        token: message.task_token.clone(),
        error: "PlanRejected".into(),
        cause: error.clone(),
    };
    let event = EventBody::RunFailed(RunEnded {
        error: Some(error.clone()),
        ..RunEnded::default()
    });
    let effects = ctx
        .runs
        .end_run(
            message.run_id,
            RunStatus::Failed,
            Some(&error),
            event,
            answer,
        )
        .await?;
    ctx.relay.publish(effects).await;
    Ok(())
}

//! The revise step (on the plan queue): the orchestrator replaces the part of a running
//! plan that has not started (`domain::revision`), after a task failed for good, an agent
//! said the plan must change, or the user amended the plan by message. Its answer is
//! checked against the run's tasks as they stand (one repair round); the revision is made
//! only if they have not moved on since (else it is checked again against the new state).
//! An answer that cannot be used, or a model that cannot be reached for good, gives the
//! revision up: the failed tasks then block what waits on them, as without one.

use crate::callback::{call_model, retry};
use crate::{RecordError, StepContext};
use autocrew_shared::crew::planner::{self, RevisionContext, TaskState};
use autocrew_shared::domain::records::{Attribution, Run, Task};
use autocrew_shared::domain::{AgentKind, Complexity, PlanLimits, RunId, RunStatus};
use autocrew_shared::ports::llm::LlmRequest;
use autocrew_shared::services::Call;
use std::collections::HashMap;

/// How many times the tasks may move on under a revision before it is checked again no more.
const RECHECKS: usize = 3;

fn states(tasks: &[Task]) -> Vec<TaskState> {
    let keys: HashMap<_, _> = tasks.iter().map(|t| (t.id, t.key.as_str())).collect();
    tasks
        .iter()
        .map(|t| TaskState {
            key: t.key.clone(),
            agent: t.agent.as_str().to_owned(),
            title: t.title.clone(),
            description: t.description.clone(),
            status: t.status.as_str().to_owned(),
            priority: t.priority.as_str().to_owned(),
            complexity: t.complexity.as_str().to_owned(),
            depends_on: t
                .depends_on
                .iter()
                .filter_map(|d| keys.get(d).map(|k| (*k).to_owned()))
                .collect(),
            outcome: match t.status {
                autocrew_shared::domain::TaskStatus::Completed => t
                    .result
                    .as_ref()
                    .and_then(|r| r["summary"].as_str())
                    .map(|s| s.chars().take(400).collect()),
                _ => t.error_log.clone(),
            },
        })
        .collect()
}

#[tracing::instrument(name = "revise", skip_all)]
pub(crate) async fn handle(
    ctx: &StepContext,
    run: RunId,
    reason: String,
) -> Result<(), RecordError> {
    let run: Run = ctx.runs.run(run).await?;
    if run.status != RunStatus::Running || ctx.tasks.pending_revision(run.id).await?.is_none() {
        // Made already (a second delivery), or the run ended meanwhile.
        return Ok(());
    }
    let limits = PlanLimits {
        budget: run.budget,
        ..ctx.plan_limits
    };
    let attribution = Attribution {
        user_id: run.user_id,
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: None,
        agent: AgentKind::Orchestrator,
    };
    let profile = ctx.profiles.get(AgentKind::Orchestrator);
    let tier = profile.model_policy.tier_for(Complexity::Complex);
    let product = run
        .plan
        .as_ref()
        .and_then(|p| p["product"].as_str())
        .unwrap_or_default()
        .to_owned();
    // The orchestrator's last answer: checked again, without asking again, when the tasks
    // moved on under it.
    let mut answered: Option<planner::PlanReply> = None;
    for _ in 0..RECHECKS {
        let tasks = ctx.tasks.run_tasks(run.id).await?;
        let again = answered.as_ref().and_then(|reply| {
            autocrew_shared::domain::revision::revise(&tasks, &reply.tasks, limits).ok()
        });
        if let Some(revision) = again {
            if apply(ctx, &run, &tasks, &revision).await? {
                return Ok(());
            }
            continue;
        }
        let context = RevisionContext {
            command: run.command.clone(),
            product: product.clone(),
            reason: reason.clone(),
            tasks: states(&tasks),
        };
        let first = planner::revision_request(profile, &context);
        let ask = |request: LlmRequest| Call {
            attribution,
            tier,
            request,
            on_text: None,
            semantic_scope: None,
            // The answer is checked against the run below; the cache keeps what it got.
            accept: None,
            share_cache: false,
            wait_until: None,
            on_wait: None,
        };
        let mut request = first.clone();
        let mut parsed = None;
        for round in 0..2 {
            let response = match call_model(ctx, ask(request.clone())).await? {
                Ok(answer) => answer.response,
                Err(e) if e.is_retryable() => return Err(retry(e)),
                Err(e) => {
                    return give_up(
                        ctx,
                        &run,
                        &format!("the orchestrator could not revise the plan: {e}"),
                    )
                    .await;
                }
            };
            match planner::parse_revision(&response, &tasks, limits) {
                Ok(revision) => {
                    parsed = Some(revision);
                    break;
                }
                Err(e) if round == 0 => {
                    tracing::info!(run = %run.id, error = %e, "revision invalid; one repair round");
                    request = planner::repair_request(&first, &response, &e);
                }
                Err(e) => {
                    return give_up(
                        ctx,
                        &run,
                        &format!("the revised plan was still invalid: {e}"),
                    )
                    .await;
                }
            }
        }
        let Some((reply, revision)) = parsed else {
            return give_up(ctx, &run, "no revision").await;
        };
        if apply(ctx, &run, &tasks, &revision).await? {
            return Ok(());
        }
        // A task started or ended meanwhile: check the answer against the tasks now.
        answered = Some(reply);
    }
    give_up(
        ctx,
        &run,
        "the run's tasks kept moving while the plan was revised",
    )
    .await
}

/// Makes the revision against `tasks` as read: true when it is done with (made, or no
/// longer pending), false when the tasks moved on.
async fn apply(
    ctx: &StepContext,
    run: &Run,
    tasks: &[Task],
    revision: &autocrew_shared::domain::revision::Revision,
) -> Result<bool, RecordError> {
    let expected: Vec<_> = tasks.iter().map(|t| (t.id, t.status)).collect();
    let made = ctx.tasks.revise(run.id, &expected, revision).await?;
    ctx.relay.publish(made.effects).await;
    if let Some(revised) = made.value {
        tracing::info!(run = %run.id, round = revised.round, added = ?revised.added, changed = ?revised.changed, removed = ?revised.removed, "plan revised");
        return Ok(true);
    }
    Ok(ctx.tasks.pending_revision(run.id).await?.is_none())
}

async fn give_up(ctx: &StepContext, run: &Run, why: &str) -> Result<(), RecordError> {
    tracing::warn!(run = %run.id, why, "plan revision given up");
    let effects = ctx.tasks.abandon_revision(run.id, why).await?;
    ctx.relay.publish(effects).await;
    Ok(())
}

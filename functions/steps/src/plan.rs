//! The plan step: the orchestrator turns the command into a checked plan. The answer must
//! match the plan schema and form a valid graph; a plan that does not gets one repair
//! round, then the run fails with the validation error recorded. A rejected plan stores
//! no task and dispatches nothing.

use crate::callback::{answered, call_model, retry};
use crate::{RecordError, StepContext};
use autocrew_shared::crew::planner::{self, PlanReply};
use autocrew_shared::domain::records::Attribution;
use autocrew_shared::domain::{AgentKind, Complexity, EventKind, PlanLimits, RunStatus, TaskGraph};
use autocrew_shared::ports::llm::{LlmRequest, LlmResponse};
use autocrew_shared::services::{Call, CallbackMessage};
use serde_json::json;

/// The semantic cache scope of plans: a user who opted in gets the plan of a close enough
/// earlier command.
const PLAN_SCOPE: &str = "plan";

pub(crate) async fn handle(ctx: &StepContext, message: CallbackMessage) -> Result<(), RecordError> {
    let run = ctx.runs.run(message.run_id).await?;
    if !matches!(run.status, RunStatus::Pending | RunStatus::Planning) {
        // A redelivery after the plan was accepted: answer again (a stale token is fine).
        let tasks = ctx.tasks.run_tasks(run.id).await?.len();
        return answered(
            ctx.state_machine
                .task_success(
                    &message.task_token,
                    &json!({"run_id": run.id, "tasks": tasks}),
                )
                .await,
        );
    }
    ctx.runs
        .set_status(run.id, RunStatus::Planning, None)
        .await?;
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
    let accept = move |r: &LlmResponse| planner::parse_plan(r, limits).is_ok();
    let ask = |request: LlmRequest, scope: Option<&'static str>| Call {
        attribution,
        tier,
        request,
        on_text: None,
        semantic_scope: scope,
        accept: Some(&accept),
    };
    let first = planner::plan_request(profile, &run.command);
    let mut parsed = None;
    let mut request = first.clone();
    let mut scope = Some(PLAN_SCOPE);
    for round in 0..2 {
        let response = match call_model(ctx, ask(request.clone(), scope)).await? {
            Ok(answer) => answer.response,
            Err(e) if e.is_retryable() => return Err(retry(e)),
            Err(e) => {
                let error = format!("the orchestrator could not plan: {e}");
                return reject(ctx, &message, run.project_id, error).await;
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
                return reject(ctx, &message, run.project_id, error).await;
            }
        }
    }
    let Some((reply, graph)) = parsed else {
        return reject(ctx, &message, run.project_id, "no plan".into()).await;
    };
    accept_plan(ctx, &message, &run, reply, graph).await
}

/// Stores the plan and its tasks, announces them and answers the state machine.
async fn accept_plan(
    ctx: &StepContext,
    message: &CallbackMessage,
    run: &autocrew_shared::domain::records::Run,
    reply: PlanReply,
    graph: TaskGraph,
) -> Result<(), RecordError> {
    ctx.runs.record_plan(run.id, &json!(reply)).await?;
    let tasks = match ctx.tasks.run_tasks(run.id).await? {
        existing if !existing.is_empty() => existing,
        _ => ctx.tasks.insert_graph(run, &graph).await?,
    };
    ctx.runs
        .set_status(run.id, RunStatus::Running, None)
        .await?;
    let by_id: std::collections::HashMap<_, _> =
        tasks.iter().map(|t| (t.id, t.key.clone())).collect();
    let listed: Vec<_> = tasks
        .iter()
        .map(|t| {
            json!({
                "task_id": t.id, "key": t.key, "agent": t.agent, "title": t.title,
                "priority": t.priority, "complexity": t.complexity,
                "depends_on": t.depends_on.iter().filter_map(|d| by_id.get(d)).collect::<Vec<_>>()
            })
        })
        .collect();
    ctx.notifier
        .emit(
            run.project_id,
            Some(run.id),
            EventKind::RunPlanned,
            json!({"product": reply.product, "tasks": listed}),
        )
        .await?;
    answered(
        ctx.state_machine
            .task_success(
                &message.task_token,
                &json!({"run_id": run.id, "tasks": tasks.len()}),
            )
            .await,
    )
}

/// Records why the plan was rejected, fails the run and the state machine's step.
async fn reject(
    ctx: &StepContext,
    message: &CallbackMessage,
    project: autocrew_shared::domain::ProjectId,
    error: String,
) -> Result<(), RecordError> {
    tracing::warn!(run = %message.run_id, error, "plan rejected");
    match ctx
        .runs
        .set_status(message.run_id, RunStatus::Failed, Some(&error))
        .await
    {
        Ok(_) => {
            ctx.notifier
                .emit(
                    project,
                    Some(message.run_id),
                    EventKind::RunFailed,
                    json!({"error": error}),
                )
                .await?;
        }
        Err(autocrew_shared::ports::StoreError::RunEnded { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    answered(
        ctx.state_machine
            .task_failure(&message.task_token, "PlanRejected", &error)
            .await,
    )
}

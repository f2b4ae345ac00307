//! The plan step: the orchestrator turns the command into a checked plan. A rejected plan
//! fails the run cleanly: nothing is stored as tasks and nothing is dispatched.

use crate::callback::{answered, call_llm, retry};
use crate::{RecordError, StepContext};
use autocrew_shared::crew::planner;
use autocrew_shared::domain::records::Attribution;
use autocrew_shared::domain::{AgentKind, EventKind, PlanLimits, RunStatus};
use autocrew_shared::services::CallbackMessage;
use serde_json::json;

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
    let attribution = Attribution {
        user_id: run.user_id,
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: None,
        agent: AgentKind::Orchestrator,
    };
    let request = planner::plan_request(&ctx.model, &run.command);
    let response = match call_llm(ctx, attribution, &request).await? {
        Ok(response) => response,
        Err(e) if e.is_retryable() => return Err(retry(e)),
        Err(e) => {
            return reject(
                ctx,
                &message,
                run.project_id,
                format!("the orchestrator could not plan: {e}"),
            )
            .await;
        }
    };
    let limits = PlanLimits {
        budget: run.budget,
        ..ctx.plan_limits
    };
    let (reply, graph) = match planner::parse_plan(&response, limits) {
        Ok(parsed) => parsed,
        Err(e) => return reject(ctx, &message, run.project_id, e.to_string()).await,
    };
    ctx.runs.record_plan(run.id, &json!(reply)).await?;
    let tasks = match ctx.tasks.run_tasks(run.id).await? {
        existing if !existing.is_empty() => existing,
        _ => ctx.tasks.insert_graph(&run, &graph).await?,
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

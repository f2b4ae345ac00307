//! The agent loop: model → tool calls → tool results → model, until the agent calls
//! `finish`, bounded by its profile's steps and time, and by the budget (every turn goes
//! through the gateway, which refuses what the budget cannot cover). Tool arguments are
//! checked against each tool's schema: a bad call gets its errors back as the one repair
//! round; a second bad call fails the task with the errors recorded.

use crate::callback::{call_model, store_artifact};
use crate::heartbeat::Heartbeat;
use crate::progress::Progress;
use crate::{RecordError, StepContext};
use autocrew_shared::crew::agents::{self, AgentTaskContext};
use autocrew_shared::crew::tools;
use autocrew_shared::domain::records::{Attribution, Run, Task};
use autocrew_shared::ports::llm::{Content, LlmResponse, Message, Role};
use autocrew_shared::services::Call;
use serde_json::{Value, json};
use std::time::Instant;

/// How one attempt's loop ended well.
pub(crate) struct Finished {
    pub summary: String,
    /// Object keys of the files written, in order.
    pub artifacts: Vec<String>,
    pub steps: u32,
}

pub(crate) enum LoopError {
    /// The model failed, or misbehaved past its repair round, or a bound was hit.
    Model { error: String, retryable: bool },
    /// The work was taken away (the task cancelled, or the attempt presumed dead): stop
    /// without recording anything.
    Stopped,
    /// Our own infrastructure failed.
    Infrastructure(RecordError),
}

impl From<RecordError> for LoopError {
    fn from(e: RecordError) -> Self {
        LoopError::Infrastructure(e)
    }
}

fn stop(error: String) -> LoopError {
    LoopError::Model {
        error,
        retryable: false,
    }
}

/// Runs the loop for `task` while the work is still this worker's: the heartbeat's last
/// word is asked before every model turn (a cancelled run's turn is also refused by its
/// budget), and a fresh beat before a turn's tool calls run.
pub(crate) async fn run(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    context: &AgentTaskContext,
    upstream: &[Task],
    heartbeat: &Heartbeat,
) -> Result<Finished, LoopError> {
    let profile = ctx.profiles.get(task.agent);
    let tier = profile.model_policy.tier_for(task.complexity);
    let attribution = Attribution {
        user_id: run.user_id,
        project_id: run.project_id,
        run_id: Some(run.id),
        task_id: Some(task.id),
        agent: task.agent,
    };
    let started = Instant::now();
    let mut messages = vec![agents::first_message(context)];
    let mut artifacts: Vec<String> = Vec::new();
    let mut bad_calls = 0u32;
    for step in 1..=profile.max_steps {
        if !heartbeat.alive() {
            return Err(LoopError::Stopped);
        }
        if started.elapsed() > profile.time_limit() {
            return Err(stop(format!(
                "time limit: {} s passed after {} model turn(s) without finish",
                profile.max_seconds,
                step - 1
            )));
        }
        let request = agents::turn_request(profile, messages.clone());
        // An answer the loop cannot use (no text, no tool call) is neither cached nor
        // served from the cache: a retry must ask the model again.
        let usable = |r: &LlmResponse| {
            r.content
                .iter()
                .any(|c| matches!(c, Content::ToolUse { .. }))
                || !r.text().trim().is_empty()
        };
        let progress = ctx.stream.then(|| Progress::start(ctx, run, task, step));
        let sink = progress.as_ref().map(|p| p.sink());
        let result = call_model(
            ctx,
            Call {
                attribution,
                tier,
                request,
                on_text: sink.as_ref().map(|s| s as _),
                semantic_scope: None,
                accept: Some(&usable),
                share_cache: false,
            },
        )
        .await;
        drop(sink);
        if let Some(progress) = progress {
            progress.finish().await;
        }
        let answer = match result? {
            Ok(answer) => answer,
            Err(e) => {
                return Err(LoopError::Model {
                    retryable: e.is_retryable(),
                    error: e.to_string(),
                });
            }
        };
        let content = answer.response.content.clone();
        messages.push(Message {
            role: Role::Assistant,
            content: content.clone(),
        });
        let calls: Vec<(String, String, Value)> = content
            .iter()
            .filter_map(|c| match c {
                Content::ToolUse { id, name, input } => {
                    Some((id.clone(), name.clone(), input.clone()))
                }
                _ => None,
            })
            .collect();
        if calls.is_empty() {
            // Ending the turn with text is taken as finishing with that summary.
            let text = answer.response.text();
            if text.trim().is_empty() {
                return Err(stop(format!(
                    "the model ended turn {step} with neither text nor a tool call"
                )));
            }
            return Ok(Finished {
                summary: text.trim().to_owned(),
                artifacts,
                steps: step,
            });
        }
        let mut results = Vec::with_capacity(calls.len());
        let mut summary = None;
        if !heartbeat.confirm().await {
            return Err(LoopError::Stopped);
        }
        for (position, (id, name, input)) in calls.into_iter().enumerate() {
            let once = tools::call_key(run.id, task.id, step, position, &input);
            let outcome = match tools::check_arguments(&name, &input) {
                Err(violations) => {
                    bad_calls += 1;
                    if bad_calls > 1 {
                        return Err(stop(format!(
                            "tool call {name} had invalid arguments after one repair round: {violations}"
                        )));
                    }
                    Err(format!(
                        "invalid arguments for {name}: {violations}. Call it again with arguments matching its schema."
                    ))
                }
                Ok(()) => match name.as_str() {
                    tools::FINISH => {
                        summary = input["summary"].as_str().map(str::to_owned);
                        Ok("finished".to_owned())
                    }
                    tools::WRITE_FILE => {
                        write_file(ctx, run, task, (&input, &once), &mut artifacts).await?
                    }
                    tools::READ_UPSTREAM => read_upstream(ctx, &input, upstream).await?,
                    other => Err(format!("unknown tool {other:?}")),
                },
            };
            let (content, is_error) = match outcome {
                Ok(text) => (text, false),
                Err(text) => (text, true),
            };
            results.push(Content::ToolResult {
                tool_use_id: id,
                content,
                is_error,
            });
        }
        if let Some(summary) = summary {
            return Ok(Finished {
                summary,
                artifacts,
                steps: step,
            });
        }
        messages.push(Message {
            role: Role::User,
            content: results,
        });
    }
    Err(stop(format!(
        "step limit: {} model turns without finish",
        profile.max_steps
    )))
}

/// Stores the file as an artifact under the task's folder.
async fn write_file(
    ctx: &StepContext,
    run: &Run,
    task: &Task,
    (input, once): (&Value, &str),
    artifacts: &mut Vec<String>,
) -> Result<Result<String, String>, RecordError> {
    let (Some(path), Some(content)) = (input["path"].as_str(), input["content"].as_str()) else {
        return Ok(Err("path and content are required".into()));
    };
    if !tools::safe_path(path) {
        return Ok(Err(format!(
            "path {path:?} must be relative and stay inside the task's folder"
        )));
    }
    let key = format!(
        "projects/{}/runs/{}/{}/{}",
        run.project_id, run.id, task.key, path
    );
    let bytes = content.len();
    let written = (
        key.as_str(),
        content.as_bytes().to_vec(),
        agents::content_type(path),
    );
    let stored =
        store_artifact(ctx, run, Some((task.id, task.key.as_str())), written, once).await?;
    if !artifacts.contains(&stored) {
        artifacts.push(stored);
    }
    Ok(Ok(format!("stored {path} ({bytes} bytes)")))
}

/// The summary and files of a task this one depends on.
async fn read_upstream(
    ctx: &StepContext,
    input: &Value,
    upstream: &[Task],
) -> Result<Result<String, String>, RecordError> {
    let key = input["task_key"].as_str().unwrap_or_default();
    let Some(task) = upstream.iter().find(|t| t.key == key) else {
        let known: Vec<&str> = upstream.iter().map(|t| t.key.as_str()).collect();
        return Ok(Err(format!(
            "{key:?} is not a task this one depends on; those are {known:?}"
        )));
    };
    let result = task.result.clone().unwrap_or(Value::Null);
    let mut files = Vec::new();
    let mut budget = 48 * 1024usize;
    for object in result["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let bytes = ctx
            .blobs
            .get(object)
            .await
            .map_err(crate::callback::retry)?;
        let text = String::from_utf8_lossy(&bytes);
        let cut: String = text.chars().take(budget).collect();
        budget = budget.saturating_sub(cut.len());
        let name = object
            .rsplit_once(&format!("/{}/", task.key))
            .map(|(_, p)| p)
            .unwrap_or(object);
        files.push(json!({"path": name, "content": cut, "truncated": cut.len() < text.len()}));
    }
    Ok(Ok(
        json!({"task_key": key, "summary": result["summary"], "files": files}).to_string(),
    ))
}

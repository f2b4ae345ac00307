//! Approvals from the terminal: show what an action will do, then approve or reject it
//! quoting the hash of exactly that payload.

use crate::client::Client;
use anyhow::Context;
use autocrew_shared::domain::Decision;
use autocrew_shared::domain::actions::ApprovedAction;
use autocrew_shared::domain::events::ApprovalRequested;
use autocrew_shared::domain::requests::DecisionBody;
use serde_json::Value;

/// The decision a person gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    fn decision(self) -> Decision {
        match self {
            Verdict::Approve => Decision::Approve,
            Verdict::Reject => Decision::Reject,
        }
    }
}

/// Sends the decision on `approval_id` for the payload whose sha-256 is `payload_hash`;
/// returns the approval as decided. The API refuses (409) a hash that is not the payload's,
/// an expired approval and a second decision.
pub async fn decide(
    client: &Client,
    approval_id: &str,
    verdict: Verdict,
    payload_hash: &str,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    let body = DecisionBody {
        decision: verdict.decision(),
        payload_hash: payload_hash.to_owned(),
        reason: reason.map(str::to_owned),
    };
    let answer = client
        .post(
            &format!("/approvals/{approval_id}"),
            &body,
            &format!("{} approval {approval_id}", verdict.word()),
        )
        .await?;
    Ok(answer["approval"].clone())
}

/// Reads the approval, prints what it would do, and decides on it. With `hash` (as `autocrew
/// run` printed it) the decision is bound to the payload the person saw there; without,
/// to the payload printed here.
pub async fn review_and_decide(
    client: &Client,
    approval_id: &str,
    verdict: Verdict,
    hash: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    let approval = client
        .get(&format!("/approvals/{approval_id}"), "read the approval")
        .await?["approval"]
        .clone();
    let shown = approval["payload_hash"]
        .as_str()
        .context("the approval has no payload_hash")?;
    println!(
        "approval {approval_id}: {} ({}, expires {})",
        approval["tool"].as_str().unwrap_or("?"),
        approval["status"].as_str().unwrap_or("?"),
        approval["expires_at"].as_str().unwrap_or("?")
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&approval["payload"]).unwrap_or_default()
    );
    println!("payload sha-256 {shown}");
    let decided = decide(client, approval_id, verdict, hash.unwrap_or(shown), reason).await?;
    println!(
        "{}: {}",
        decided["status"].as_str().unwrap_or("?"),
        match verdict {
            Verdict::Approve => "the task goes on and the action runs once",
            Verdict::Reject => "the task goes on without the action",
        }
    );
    Ok(decided)
}

/// The lines `autocrew run` prints for an `approval_requested` event.
pub fn request_lines(request: &ApprovalRequested) -> Vec<String> {
    let (id, hash) = (request.approval_id, &request.payload_hash);
    let what = match &request.payload {
        ApprovedAction::Publish(publish) => format!("publish {} at {}", publish.file, publish.link),
        other => other.to_value().to_string(),
    };
    vec![
        format!(
            "approval needed: {} [{}] wants to {what}",
            request.task.key, request.task.agent
        ),
        format!(
            "  approval {id}, payload sha-256 {hash}, expires {}",
            request
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
        format!("  answer with: autocrew approve {id} --hash {hash}   (or: autocrew reject {id})"),
    ]
}

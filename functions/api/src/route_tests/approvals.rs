//! Deciding an approval, and the files published under a project's link.

use super::field_of;
use crate::ApiError;
use crate::approvals::{decided, published};
use crate::routes::{RunLimits, run_started};
use autocrew_shared::adapters::memory::{MemApprovals, MemBlobs, MemRuns};
use autocrew_shared::domain::actions::{ApprovedAction, Post};
use autocrew_shared::domain::approvals::{ActionRequest, Approval, Decision};
use autocrew_shared::domain::records::{Project, Task};
use autocrew_shared::domain::requests::DecisionBody;
use autocrew_shared::domain::{
    AgentKind, ApprovalStatus, Complexity, MicroUsd, Priority, ProjectId, RunStatus, Service,
    TaskId, TaskStatus, UserId,
};
use autocrew_shared::ports::{ApprovalStore, BlobStore, RunStore, TaskReads};
use chrono::{Duration, Utc};
use std::sync::Arc;

/// A running run of `user`'s with one task parked at a post to X, and its approval.
async fn parked(runs: &Arc<MemRuns>, approvals: &MemApprovals, user: UserId) -> (Task, Approval) {
    let project = Project {
        id: ProjectId::new(),
        user_id: user,
        name: "Keto".into(),
        description: String::new(),
        created_at: Utc::now(),
        archived_at: None,
    };
    let command = ("Launch", "command");
    let run = run_started(
        &**runs,
        (user, &project),
        command,
        RunLimits::default(),
        Ok(None),
    )
    .await
    .expect("started")
    .value;
    runs.with_status(run.id, RunStatus::Running, MicroUsd::ZERO);
    let task = Task {
        id: TaskId::new(),
        run_id: run.id,
        project_id: project.id,
        parent_task_id: None,
        key: "launch".into(),
        agent: AgentKind::Marketer,
        title: "Launch post".into(),
        description: String::new(),
        status: TaskStatus::Running,
        priority: Priority::Normal,
        complexity: Complexity::Simple,
        budget: MicroUsd::from_dollars(1),
        depends_on: vec![],
        attempts: 1,
        max_attempts: 3,
        result: None,
        error_log: None,
        created_at: Utc::now(),
        started_at: None,
        completed_at: None,
    };
    runs.with_task(task.clone());
    let action = ActionRequest {
        tool: "post_to_x".into(),
        call_key: "call-1".into(),
        payload: ApprovedAction::PostToX(Post {
            service: Service::X,
            account: "@keto".into(),
            text: "Keto, fast".into(),
        }),
        expires_at: Utc::now() + Duration::hours(1),
    };
    let asked = approvals
        .request(task.id, 1, &serde_json::Value::Null, &action)
        .await
        .expect("asked");
    (task, asked.value)
}

fn decision(decision: Decision, payload_hash: &str, reason: Option<&str>) -> DecisionBody {
    DecisionBody {
        decision,
        payload_hash: payload_hash.into(),
        reason: reason.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_decision_quotes_the_hash_of_the_payload_it_was_shown() {
    let runs = Arc::new(MemRuns::default());
    let approvals = MemApprovals::new(runs.clone());
    let ana = UserId::new();
    let (task, asked) = parked(&runs, &approvals, ana).await;
    assert_eq!(asked.payload_hash, asked.payload.hash());
    for malformed in ["", "abc", &"A".repeat(64), &"0".repeat(63)] {
        let refused = decided(
            &approvals,
            ana,
            asked.id,
            &decision(Decision::Approve, malformed, None),
        )
        .await;
        assert_eq!(field_of(refused.expect_err("refused")), "payload_hash");
    }
    let long = "r".repeat(501);
    let refused = decided(
        &approvals,
        ana,
        asked.id,
        &decision(Decision::Reject, &asked.payload_hash, Some(&long)),
    )
    .await;
    assert_eq!(field_of(refused.expect_err("refused")), "reason");
    let other = "0".repeat(64);
    let changed = decided(
        &approvals,
        ana,
        asked.id,
        &decision(Decision::Approve, &other, None),
    )
    .await;
    assert!(matches!(changed, Err(ApiError::Conflict(_))), "{changed:?}");
    let approved = decided(
        &approvals,
        ana,
        asked.id,
        &decision(Decision::Approve, &asked.payload_hash, Some("  ")),
    )
    .await
    .expect("approved");
    assert_eq!(approved.value.status, ApprovalStatus::Approved);
    assert_eq!(
        (approved.value.decided_by, approved.value.reason),
        (Some(ana), None)
    );
    assert_eq!(
        runs.task(task.id).await.expect("kept").status,
        TaskStatus::Ready
    );
    let again = decided(
        &approvals,
        ana,
        asked.id,
        &decision(Decision::Reject, &asked.payload_hash, None),
    )
    .await;
    assert!(
        matches!(again, Err(ApiError::Conflict(_))),
        "a decision is final: {again:?}"
    );
}

#[tokio::test]
async fn another_users_approval_is_not_found_and_stays_pending() {
    let runs = Arc::new(MemRuns::default());
    let approvals = MemApprovals::new(runs.clone());
    let (_, asked) = parked(&runs, &approvals, UserId::new()).await;
    let ben = UserId::new();
    let theirs = decided(
        &approvals,
        ben,
        asked.id,
        &decision(Decision::Approve, &asked.payload_hash, None),
    )
    .await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("approval"))),
        "{theirs:?}"
    );
    let read = approvals.approval(asked.id, ben).await;
    assert!(read.is_err());
    let owner = runs.run(asked.run_id).await.expect("kept").user_id;
    let kept = approvals.approval(asked.id, owner).await.expect("read");
    assert_eq!(kept.status, ApprovalStatus::Pending);
}

#[tokio::test]
async fn a_run_that_is_not_running_takes_no_decision() {
    let runs = Arc::new(MemRuns::default());
    let approvals = MemApprovals::new(runs.clone());
    let ana = UserId::new();
    let (_, asked) = parked(&runs, &approvals, ana).await;
    runs.with_status(asked.run_id, RunStatus::Cancelled, MicroUsd::ZERO);
    let refused = decided(
        &approvals,
        ana,
        asked.id,
        &decision(Decision::Approve, &asked.payload_hash, None),
    )
    .await;
    assert!(matches!(refused, Err(ApiError::Conflict(_))), "{refused:?}");
}

#[tokio::test]
async fn a_published_file_is_served_by_its_safe_path_only() {
    let blobs = MemBlobs::default();
    let project = ProjectId::new();
    blobs
        .put(
            &format!("sites/{project}/index.html"),
            b"<h1>Keto</h1>".to_vec(),
            "text/html",
        )
        .await
        .expect("put");
    let page = published(&blobs, project, "index.html")
        .await
        .expect("served");
    assert_eq!(page, b"<h1>Keto</h1>");
    for unsafe_path in ["", "../index.html", "/etc/passwd", "a//b"] {
        let refused = published(&blobs, project, unsafe_path).await;
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "path",
            "{unsafe_path:?}"
        );
    }
    let missing = published(&blobs, project, "about.html").await;
    assert!(matches!(missing, Err(ApiError::NotFound(_))), "{missing:?}");
    let elsewhere = published(&blobs, ProjectId::new(), "index.html").await;
    assert!(
        matches!(elsewhere, Err(ApiError::NotFound(_))),
        "{elsewhere:?}"
    );
}

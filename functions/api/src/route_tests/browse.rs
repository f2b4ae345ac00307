//! Lists and details, deleting a project and erasing an account: against the browse twin
//! over the projects, runs, artifacts and ledger twins.

use crate::ApiError;
use crate::auth::{Erasure, erased};
use crate::browse::{artifacts_listed, project_deleted, projects_listed, run_tasks_of, task_of};
use crate::routes::{RunLimits, run_started};
use autocrew_shared::adapters::memory::{
    MemAccounts, MemArtifacts, MemBlobs, MemBrowse, MemLedger, MemProjects, MemPublished, MemRuns,
};
use autocrew_shared::domain::messages::Outgoing;
use autocrew_shared::domain::paging::{Cursor, Page};
use autocrew_shared::domain::records::{Artifact, Project, Run, Task};
use autocrew_shared::domain::{
    AgentKind, ArtifactId, Complexity, MicroUsd, Priority, RunStatus, TaskId, TaskStatus, UserId,
};
use autocrew_shared::ports::{ArtifactStore, BlobStore, Browse, ProjectStore, RunStore};
use chrono::Utc;
use std::sync::Arc;

struct Twins {
    projects: Arc<MemProjects>,
    runs: Arc<MemRuns>,
    artifacts: Arc<MemArtifacts>,
    browse: MemBrowse,
    blobs: MemBlobs,
}

impl Twins {
    fn new() -> Twins {
        let projects = Arc::new(MemProjects::default());
        let runs = Arc::new(MemRuns::default());
        let artifacts = Arc::new(MemArtifacts::default());
        let browse = MemBrowse {
            projects: projects.clone(),
            runs: runs.clone(),
            artifacts: artifacts.clone(),
            ledger: Arc::new(MemLedger::default()),
        };
        Twins {
            projects,
            runs,
            artifacts,
            browse,
            blobs: MemBlobs::default(),
        }
    }

    async fn user(&self, email: &str) -> UserId {
        self.projects
            .create_user(email, "Ana")
            .await
            .expect("created")
            .id
    }

    async fn project(&self, user: UserId, name: &str) -> Project {
        self.projects
            .create_project(user, name, "")
            .await
            .expect("created")
    }

    async fn run(&self, user: UserId, project: &Project) -> Run {
        let command = ("Build it", "command");
        run_started(
            &*self.runs,
            (user, project),
            command,
            RunLimits::default(),
            Ok(None),
        )
        .await
        .expect("started")
        .value
    }

    /// A file of `run`'s, stored and recorded.
    async fn file(&self, run: &Run, key: &str) {
        let stored = self
            .blobs
            .put(key, b"export {}".to_vec(), "text/plain")
            .await
            .expect("put");
        self.artifacts
            .record(&Artifact {
                id: ArtifactId::new(),
                project_id: run.project_id,
                run_id: Some(run.id),
                task_id: None,
                bucket: stored.bucket,
                key: key.into(),
                content_type: "text/plain".into(),
                size_bytes: stored.size_bytes,
                checksum_sha256: stored.checksum_sha256,
            })
            .await
            .expect("recorded");
    }
}

fn first(limit: u32) -> Page {
    Page { after: None, limit }
}

fn a_task(run: &Run, key: &str) -> Task {
    Task {
        id: TaskId::new(),
        run_id: run.id,
        project_id: run.project_id,
        parent_task_id: None,
        key: key.into(),
        agent: AgentKind::Designer,
        title: key.into(),
        description: String::new(),
        status: TaskStatus::Pending,
        priority: Priority::Normal,
        complexity: Complexity::Simple,
        budget: MicroUsd::from_dollars(1),
        depends_on: vec![],
        attempts: 0,
        max_attempts: 3,
        result: None,
        error_log: None,
        created_at: Utc::now(),
        started_at: None,
        completed_at: None,
    }
}

#[tokio::test]
async fn projects_are_listed_newest_first_page_by_page_archived_apart() {
    let twins = Twins::new();
    let ana = twins.user("ana@example.com").await;
    let mut made = Vec::new();
    for name in ["one", "two", "three"] {
        made.push(twins.project(ana, name).await.id);
    }
    twins
        .project(twins.user("ben@example.com").await, "bens")
        .await;
    let page = projects_listed(&twins.browse, ana, None, first(2))
        .await
        .expect("listed");
    let names: Vec<&str> = page.items.iter().map(|p| p.name.as_str()).collect();
    let cursor = page.next_cursor.expect("a next page");
    let after = Cursor::decode(&cursor).expect("our cursor");
    let next = Page {
        after: Some(after),
        limit: 2,
    };
    let rest = projects_listed(&twins.browse, ana, Some("false"), next)
        .await
        .expect("listed");
    let mut seen: Vec<&str> = names.clone();
    seen.extend(rest.items.iter().map(|p| p.name.as_str()));
    seen.sort();
    assert_eq!(seen, ["one", "three", "two"]);
    assert!(rest.next_cursor.is_none());
    let archived = projects_listed(&twins.browse, ana, Some("true"), first(20))
        .await
        .expect("listed");
    assert!(archived.items.is_empty());
    let refused = projects_listed(&twins.browse, ana, Some("yes"), first(20)).await;
    assert!(matches!(refused, Err(ApiError::BadRequest { ref field, .. }) if field == "archived"));
}

#[tokio::test]
async fn a_runs_tasks_and_a_task_are_their_owners_alone() {
    let twins = Twins::new();
    let ana = twins.user("ana@example.com").await;
    let project = twins.project(ana, "Keto").await;
    let run = twins.run(ana, &project).await;
    let task = a_task(&run, "logo");
    twins.runs.with_task(task.clone());
    let listed = run_tasks_of(&twins.browse, ana, run.id)
        .await
        .expect("listed");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        task_of(&twins.browse, ana, task.id)
            .await
            .expect("read")
            .task,
        task
    );
    let ben = twins.user("ben@example.com").await;
    let theirs = run_tasks_of(&twins.browse, ben, run.id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("run"))),
        "{theirs:?}"
    );
    let theirs = task_of(&twins.browse, ben, task.id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("task"))),
        "{theirs:?}"
    );
}

#[tokio::test]
async fn artifacts_come_with_links_and_another_users_project_is_not_found() {
    let twins = Twins::new();
    let ana = twins.user("ana@example.com").await;
    let project = twins.project(ana, "Keto").await;
    let ports = || {
        (
            &twins.browse as &dyn Browse,
            &*twins.projects as &dyn ProjectStore,
            &twins.blobs as &dyn BlobStore,
        )
    };
    let empty = artifacts_listed(ports(), ana, (project.id, None), first(20))
        .await
        .expect("listed");
    assert!(empty.items.is_empty(), "no artifacts yet is an empty page");
    let first_run = twins.run(ana, &project).await;
    let second_run = twins.run(ana, &project).await;
    twins.file(&first_run, "projects/a/app.tsx").await;
    twins.file(&second_run, "projects/a/site.html").await;
    let all = artifacts_listed(ports(), ana, (project.id, None), first(20))
        .await
        .expect("listed");
    assert_eq!(all.items.len(), 2);
    assert!(all.items.iter().all(|a| a.url.contains(&a.artifact.key)));
    let one = artifacts_listed(ports(), ana, (project.id, Some(second_run.id)), first(20))
        .await
        .expect("listed");
    let keys: Vec<&str> = one.items.iter().map(|a| a.artifact.key.as_str()).collect();
    assert_eq!(keys, ["projects/a/site.html"]);
    let ben = twins.user("ben@example.com").await;
    let theirs = artifacts_listed(ports(), ben, (project.id, None), first(20)).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("project"))),
        "{theirs:?}"
    );
}

#[tokio::test]
async fn a_project_with_a_run_going_is_kept_and_a_deleted_one_leaves_no_file() {
    let twins = Twins::new();
    let ana = twins.user("ana@example.com").await;
    let project = twins.project(ana, "Keto").await;
    let run = twins.run(ana, &project).await;
    let key = format!("projects/{}/app.tsx", project.id);
    twins.file(&run, &key).await;
    let ports = || {
        (
            &*twins.projects as &dyn ProjectStore,
            &twins.browse as &dyn Browse,
            &twins.blobs as &dyn BlobStore,
        )
    };
    let going = project_deleted(ports(), ana, project.id).await;
    assert!(matches!(going, Err(ApiError::Conflict(_))), "{going:?}");
    assert_eq!(twins.blobs.keys(), vec![key], "nothing was deleted");
    let ben = twins.user("ben@example.com").await;
    twins
        .runs
        .with_status(run.id, RunStatus::Succeeded, MicroUsd::ZERO);
    let theirs = project_deleted(ports(), ben, project.id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("project"))),
        "{theirs:?}"
    );
    project_deleted(ports(), ana, project.id)
        .await
        .expect("deleted");
    assert!(twins.blobs.keys().is_empty());
    assert!(twins.projects.project(project.id).await.is_err());
}

#[tokio::test]
async fn an_erased_account_has_its_runs_cancelled_and_its_files_and_rows_gone() {
    let twins = Twins::new();
    let accounts = MemAccounts::new(twins.projects.clone());
    let published = MemPublished::default();
    let ana = twins.user("ana@example.com").await;
    let ben = twins.user("ben@example.com").await;
    let project = twins.project(ana, "Keto").await;
    let archived = twins.project(ana, "Old").await;
    twins
        .projects
        .update_project(
            ana,
            archived.id,
            &autocrew_shared::domain::records::ProjectChanges {
                name: None,
                description: None,
                archived: Some(true),
            },
        )
        .await
        .expect("archived");
    let going = twins.run(ana, &project).await;
    let bens_project = twins.project(ben, "Bens").await;
    let bens_run = twins.run(ben, &bens_project).await;
    for key in [
        format!("projects/{}/app.tsx", project.id),
        format!("sites/{}/index.html", archived.id),
        format!("exports/{ana}/x.json"),
        format!("projects/{}/theirs.tsx", bens_project.id),
    ] {
        twins
            .blobs
            .put(&key, vec![1], "text/plain")
            .await
            .expect("put");
    }
    let ports = Erasure {
        projects: &*twins.projects,
        accounts: &accounts,
        browse: &twins.browse,
        control: &*twins.runs,
        blobs: &twins.blobs,
        publisher: &published,
    };
    erased(&ports, ana).await.expect("erased");
    assert_eq!(
        twins.runs.run(going.id).await.expect("kept").status,
        RunStatus::Cancelled
    );
    assert_eq!(
        twins.runs.run(bens_run.id).await.expect("kept").status,
        RunStatus::Pending
    );
    let stops: Vec<String> = published
        .published()
        .into_iter()
        .flat_map(|e| e.outbox)
        .filter_map(|e| match e.message {
            Outgoing::StopExecution { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(stops, vec![going.execution_name]);
    assert_eq!(
        twins.blobs.keys(),
        [format!("projects/{}/theirs.tsx", bens_project.id)]
    );
    let again = erased(&ports, ana).await;
    assert!(matches!(again, Err(ApiError::Unauthorized(_))), "{again:?}");
}

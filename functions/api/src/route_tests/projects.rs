//! Projects, a run's bounds, paging and filters.

use super::{field_of, with_query};
use crate::ApiError;
use crate::browse::{change_project, page, status_filter};
use crate::routes::{RunLimits, new_project, owned, refuse_archived, run_request};
use autocrew_shared::adapters::memory::MemProjects;
use autocrew_shared::domain::limits;
use autocrew_shared::domain::records::Project;
use autocrew_shared::domain::requests::{NewProject, ProjectPatch};
use autocrew_shared::domain::{MicroUsd, ProjectId, RunStatus, UserId};
use autocrew_shared::ports::ProjectStore;

fn new(name: &str, description: &str) -> NewProject {
    NewProject {
        name: name.into(),
        description: description.into(),
    }
}

async fn a_project(projects: &MemProjects, user: UserId) -> Project {
    new_project(projects, user, &new("Keto recipes", ""))
        .await
        .expect("created")
}

#[tokio::test]
async fn a_new_project_is_the_callers_with_its_text_trimmed() {
    let projects = MemProjects::default();
    let ana = UserId::new();
    let project = new_project(&projects, ana, &new("  Keto recipes ", " For dieters. "))
        .await
        .expect("created");
    assert_eq!(project.user_id, ana);
    assert_eq!(project.name, "Keto recipes");
    assert_eq!(project.description, "For dieters.");
    assert_eq!(projects.project(project.id).await.ok(), Some(project));
}

#[tokio::test]
async fn a_project_name_must_be_there_and_within_its_limit() {
    let projects = MemProjects::default();
    let user = UserId::new();
    for name in ["", "   ", &"n".repeat(limits::PROJECT_NAME_MAX + 1)] {
        let refused = new_project(&projects, user, &new(name, "")).await;
        assert_eq!(field_of(refused.expect_err("refused")), "name");
    }
    let longest = "n".repeat(limits::PROJECT_NAME_MAX);
    assert!(
        new_project(&projects, user, &new(&longest, ""))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_project_description_is_held_to_its_limit() {
    let projects = MemProjects::default();
    let long = "d".repeat(limits::PROJECT_DESCRIPTION_MAX + 1);
    let refused = new_project(&projects, UserId::new(), &new("Keto", &long)).await;
    assert_eq!(field_of(refused.expect_err("refused")), "description");
}

#[tokio::test]
async fn another_users_project_is_not_found_like_a_missing_one() {
    let projects = MemProjects::default();
    let (ana, bo) = (UserId::new(), UserId::new());
    let project = a_project(&projects, ana).await;
    assert!(owned(&projects, ana, project.id).await.is_ok());
    let theirs = owned(&projects, bo, project.id).await;
    assert!(matches!(theirs, Err(ApiError::NotFound("project"))));
    let missing = owned(&projects, ana, ProjectId::new()).await;
    assert!(matches!(missing, Err(ApiError::NotFound("project"))));
}

fn patch(name: Option<&str>, description: Option<&str>, archived: Option<bool>) -> ProjectPatch {
    ProjectPatch {
        name: name.map(str::to_owned),
        description: description.map(str::to_owned),
        archived,
    }
}

#[tokio::test]
async fn a_change_must_change_something() {
    let projects = MemProjects::default();
    let ana = UserId::new();
    let project = a_project(&projects, ana).await;
    let nothing = change_project(&projects, ana, project.id, patch(None, None, None)).await;
    assert_eq!(field_of(nothing.expect_err("refused")), "body");
}

#[tokio::test]
async fn archiving_and_unarchiving_a_project() {
    let projects = MemProjects::default();
    let ana = UserId::new();
    let project = a_project(&projects, ana).await;
    let archived = change_project(&projects, ana, project.id, patch(None, None, Some(true)))
        .await
        .expect("archived");
    assert!(archived.archived_at.is_some());
    assert!(matches!(
        refuse_archived(&archived),
        Err(ApiError::Conflict(_))
    ));
    let back = change_project(
        &projects,
        ana,
        project.id,
        patch(Some(" Keto 2 "), None, Some(false)),
    )
    .await
    .expect("unarchived");
    assert_eq!(back.archived_at, None);
    assert_eq!(back.name, "Keto 2");
    assert!(refuse_archived(&back).is_ok());
}

#[tokio::test]
async fn another_users_project_cannot_be_changed() {
    let projects = MemProjects::default();
    let project = a_project(&projects, UserId::new()).await;
    let theirs = change_project(
        &projects,
        UserId::new(),
        project.id,
        patch(Some("Mine"), None, None),
    )
    .await;
    assert!(matches!(theirs, Err(ApiError::NotFound("project"))));
    let long = "n".repeat(limits::PROJECT_NAME_MAX + 1);
    let too_long = change_project(
        &projects,
        project.user_id,
        project.id,
        patch(Some(&long), None, None),
    )
    .await;
    assert_eq!(field_of(too_long.expect_err("refused")), "name");
}

fn project() -> Project {
    Project {
        id: ProjectId::new(),
        user_id: UserId::new(),
        name: "Keto".into(),
        description: String::new(),
        created_at: chrono::Utc::now(),
        archived_at: None,
    }
}

#[test]
fn a_run_takes_the_default_bounds_when_none_are_given() {
    let project = project();
    let run = run_request(
        &project,
        project.user_id,
        (" Build it ", "command"),
        RunLimits::default(),
    )
    .expect("checked");
    assert_eq!(run.command, "Build it");
    assert_eq!(
        run.budget,
        MicroUsd::from_dollars(limits::RUN_BUDGET_DEFAULT_DOLLARS)
    );
    assert_eq!(run.max_concurrency, limits::DEFAULT_CONCURRENCY);
    assert_eq!(
        run.deadline,
        Some(std::time::Duration::from_secs(
            u64::from(limits::DEFAULT_DEADLINE_MINUTES) * 60
        ))
    );
    assert_eq!(run.project_id, project.id);
}

#[test]
fn a_run_budget_must_be_positive_finite_and_within_the_cap() {
    let project = project();
    for usd in [
        0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        limits::RUN_BUDGET_MAX_DOLLARS as f64 + 0.01,
    ] {
        let limits = RunLimits {
            budget_usd: Some(usd),
            ..RunLimits::default()
        };
        let refused = run_request(&project, project.user_id, ("Build it", "command"), limits);
        assert_eq!(
            field_of(refused.expect_err("refused")),
            "budget_usd",
            "{usd}"
        );
    }
    let cents = RunLimits {
        budget_usd: Some(0.25),
        ..RunLimits::default()
    };
    let run = run_request(&project, project.user_id, ("Build it", "command"), cents).expect("ok");
    assert_eq!(run.budget, MicroUsd(250_000));
}

#[test]
fn a_runs_concurrency_and_deadline_are_held_to_their_ranges() {
    let project = project();
    let check =
        |limits: RunLimits| run_request(&project, project.user_id, ("Build it", "command"), limits);
    for n in [0, limits::MAX_CONCURRENCY + 1] {
        let refused = check(RunLimits {
            max_concurrency: Some(n),
            ..RunLimits::default()
        });
        assert_eq!(field_of(refused.expect_err("refused")), "max_concurrency");
    }
    for minutes in [0, limits::MAX_DEADLINE_MINUTES + 1] {
        let refused = check(RunLimits {
            deadline_minutes: Some(minutes),
            ..RunLimits::default()
        });
        assert_eq!(field_of(refused.expect_err("refused")), "deadline_minutes");
    }
}

#[test]
fn a_command_is_named_by_the_field_it_came_in() {
    let project = project();
    let long = "c".repeat(limits::COMMAND_MAX + 1);
    let refused = run_request(
        &project,
        project.user_id,
        (&long, "text"),
        RunLimits::default(),
    );
    assert_eq!(field_of(refused.expect_err("refused")), "text");
    let blank = run_request(
        &project,
        project.user_id,
        ("  ", "command"),
        RunLimits::default(),
    );
    assert_eq!(field_of(blank.expect_err("refused")), "command");
}

#[test]
fn a_page_takes_its_default_and_refuses_limits_out_of_range() {
    let default = page(&with_query(&[])).expect("a page");
    assert_eq!(
        default.limit,
        autocrew_shared::domain::paging::DEFAULT_LIMIT
    );
    assert!(default.after.is_none());
    for limit in ["0", "101", "ten"] {
        let refused = page(&with_query(&[("limit", limit)]));
        assert_eq!(field_of(refused.expect_err("refused")), "limit", "{limit}");
    }
    let refused = page(&with_query(&[("cursor", "not-a-cursor")]));
    assert_eq!(field_of(refused.expect_err("refused")), "cursor");
}

#[test]
fn a_run_status_filter_names_the_statuses() {
    assert_eq!(status_filter(&with_query(&[])).ok(), Some(None));
    assert_eq!(
        status_filter(&with_query(&[("status", "running")])).ok(),
        Some(Some(RunStatus::Running))
    );
    match status_filter(&with_query(&[("status", "done")])) {
        Err(ApiError::BadRequest { field, message }) => {
            assert_eq!(field, "status");
            for status in RunStatus::ALL {
                assert!(message.contains(status.as_str()), "{message}");
            }
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

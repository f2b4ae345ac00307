//! A project's events, read back after a sequence number.

use super::field_of;
use crate::ApiError;
use crate::routes::events_after;
use autocrew_shared::adapters::memory::{MemEvents, MemProjects};
use autocrew_shared::domain::events::{EventBody, RunCreated};
use autocrew_shared::domain::{ProjectId, RunId, UserId};
use autocrew_shared::ports::{EventLog, ProjectStore};
use std::sync::Arc;

async fn logged(events: usize) -> (MemEvents, UserId, ProjectId) {
    let projects = Arc::new(MemProjects::default());
    let ana = UserId::new();
    let project = projects
        .create_project(ana, "Keto", "")
        .await
        .expect("created");
    let log = MemEvents::new(projects);
    for _ in 0..events {
        let body = EventBody::RunCreated(RunCreated {
            command: "Build it".into(),
            deadline_at: None,
        });
        log.append(project.id, Some(RunId::new()), body)
            .await
            .expect("appended");
    }
    (log, ana, project.id)
}

#[tokio::test]
async fn events_come_after_the_given_sequence_oldest_first() {
    let (log, ana, project) = logged(5).await;
    let page = events_after(&log, (ana, project), 2, 100)
        .await
        .expect("read");
    let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(page.last_seq, 5);
}

#[tokio::test]
async fn a_limited_read_says_where_to_go_on_and_an_empty_one_stays_put() {
    let (log, ana, project) = logged(5).await;
    let first = events_after(&log, (ana, project), 0, 2)
        .await
        .expect("read");
    assert_eq!(first.last_seq, 2);
    let past_the_end = events_after(&log, (ana, project), 9, 10)
        .await
        .expect("read");
    assert!(past_the_end.events.is_empty());
    assert_eq!(
        past_the_end.last_seq, 9,
        "the next `after` is the one given"
    );
}

#[tokio::test]
async fn another_users_events_are_not_found() {
    let (log, _, project) = logged(1).await;
    let theirs = events_after(&log, (UserId::new(), project), 0, 100).await;
    assert!(matches!(theirs, Err(ApiError::NotFound("project"))));
}

#[tokio::test]
async fn the_window_is_checked_before_anything_is_read() {
    let (log, ana, project) = logged(1).await;
    let negative = events_after(&log, (ana, project), -1, 100).await;
    assert_eq!(field_of(negative.expect_err("refused")), "after");
    for limit in [0, 501] {
        let refused = events_after(&log, (ana, project), 0, limit).await;
        assert_eq!(field_of(refused.expect_err("refused")), "limit");
    }
}

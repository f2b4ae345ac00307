//! The WebSocket routes against in-memory twins: the registry and `@connections`, the
//! projects and the event log.

use super::*;
use autocrew_shared::adapters::memory::{MemEvents, MemProjects, MemRealtime};
use autocrew_shared::domain::events::{EventBody, RunCreated};
use autocrew_shared::domain::{ProjectId, UserId};
use autocrew_shared::services::access::SigningKeys;

struct Twins {
    state: WsState,
    realtime: Arc<MemRealtime>,
    projects: Arc<MemProjects>,
    events: Arc<MemEvents>,
}

fn twins() -> Twins {
    let projects = Arc::new(MemProjects::default());
    let events = Arc::new(MemEvents::new(projects.clone()));
    let realtime = Arc::new(MemRealtime::default());
    let keys = SigningKeys::parse(&SigningKeys::generate("k1")).expect("keys");
    let notifier = Notifier::new(events.clone(), realtime.clone(), realtime.clone());
    let state = WsState {
        registry: realtime.clone(),
        keys: Arc::new(KeyRing::fixed(keys)),
        projects: projects.clone(),
        events: events.clone(),
        notifier,
    };
    Twins {
        state,
        realtime,
        projects,
        events,
    }
}

fn event(
    connection: &str,
    query: Option<(&str, &str)>,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context.connection_id = Some(connection.to_owned());
    if let Some((key, value)) = query {
        let pairs: std::collections::HashMap<String, String> =
            [(key.to_owned(), value.to_owned())].into_iter().collect();
        event.query_string_parameters = pairs.into();
    }
    event.body = body.map(str::to_owned);
    event
}

impl Twins {
    async fn user(&self, email: &str) -> UserId {
        self.projects
            .create_user(email, "Ana")
            .await
            .expect("user")
            .id
    }

    async fn connect(&self, connection: &str, user: UserId) -> i64 {
        let token = self.state.keys.issue(user).access_token;
        let event = event(connection, Some(("token", &token)), None);
        handle(&self.state, WsRoute::Connect, event)
            .await
            .status_code
    }

    async fn say(&self, connection: &str, body: &str) -> Vec<ServerMessage> {
        let before = self.realtime.frames(connection).len();
        let status = handle(
            &self.state,
            WsRoute::Default,
            event(connection, None, Some(body)),
        )
        .await
        .status_code;
        assert_eq!(status, 200);
        self.realtime.frames(connection)[before..]
            .iter()
            .map(|f| serde_json::from_str(f).expect("a server message"))
            .collect()
    }
}

#[tokio::test]
async fn only_a_valid_access_token_opens_a_connection() {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    assert_eq!(twins.connect("c1", ana).await, 200);
    assert_eq!(
        twins.connect("c1", ana).await,
        200,
        "a retried $connect is fine"
    );
    for query in [None, Some(("token", "not-a-jwt"))] {
        let refused = handle(&twins.state, WsRoute::Connect, event("c2", query, None)).await;
        assert_eq!(refused.status_code, 401);
    }
    let no_id = handle(
        &twins.state,
        WsRoute::Connect,
        ApiGatewayWebsocketProxyRequest::default(),
    )
    .await;
    assert_eq!(no_id.status_code, 400);
}

#[tokio::test]
async fn a_subscription_replays_the_events_after_the_given_one_then_says_where_it_stands() {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    let project = twins
        .projects
        .create_project(ana, "Keto", "")
        .await
        .expect("project");
    for command in ["one", "two", "three"] {
        let body = EventBody::RunCreated(RunCreated {
            command: command.into(),
            deadline_at: None,
        });
        twins
            .events
            .append(project.id, None, body)
            .await
            .expect("appended");
    }
    twins.connect("c1", ana).await;
    let subscribe = format!(
        r#"{{"action": "subscribe", "project_id": "{}", "after_seq": 1}}"#,
        project.id
    );
    let frames = twins.say("c1", &subscribe).await;
    let seqs: Vec<i64> = frames
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Event { event } => Some(event.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [2, 3]);
    assert!(
        matches!(frames.last(), Some(ServerMessage::Subscribed { project_id, last_seq: 3 }) if *project_id == project.id),
        "{frames:?}"
    );
    // Subscribed: what the project appends next is pushed live.
    let live = EventBody::RunCreated(RunCreated {
        command: "four".into(),
        deadline_at: None,
    });
    let appended = twins
        .events
        .append(project.id, None, live)
        .await
        .expect("appended");
    twins.state.notifier.push_to_followers(&appended).await;
    let last: ServerMessage =
        serde_json::from_str(twins.realtime.frames("c1").last().expect("a frame")).expect("json");
    assert!(matches!(last, ServerMessage::Event { event } if event.seq == 4));
}

#[tokio::test]
async fn a_message_that_cannot_be_served_gets_an_error_frame_with_its_code_and_the_socket_stays_open()
 {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    let ben = twins.user("ben@example.com").await;
    let bens = twins
        .projects
        .create_project(ben, "Bens", "")
        .await
        .expect("project");
    twins.connect("c1", ana).await;
    let cases = [
        (
            format!(r#"{{"action": "subscribe", "project_id": "{}"}}"#, bens.id),
            ErrorCode::NotFound,
        ),
        (
            format!(
                r#"{{"action": "subscribe", "project_id": "{}"}}"#,
                ProjectId::new()
            ),
            ErrorCode::NotFound,
        ),
        ("not json".to_owned(), ErrorCode::NotJson),
        (
            r#"{"action": "dance"}"#.to_owned(),
            ErrorCode::UnknownAction,
        ),
        (r#"{"project_id": 1}"#.to_owned(), ErrorCode::UnknownAction),
        (r#"[1, 2]"#.to_owned(), ErrorCode::UnknownAction),
        (
            r#"{"action": "unsubscribe"}"#.to_owned(),
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"action": "subscribe", "project_id": "not-a-uuid"}"#.to_owned(),
            ErrorCode::InvalidMessage,
        ),
        (
            format!(r#"{{"action": "ping", "id": "{}"}}"#, "x".repeat(65)),
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"action": "renew", "token": "junk"}"#.to_owned(),
            ErrorCode::InvalidToken,
        ),
        (
            format!(
                r#"{{"action": "renew", "token": "{}"}}"#,
                twins.state.keys.issue(ben).access_token
            ),
            ErrorCode::InvalidToken,
        ),
    ];
    for (body, expected) in cases {
        let frames = twins.say("c1", &body).await;
        assert!(
            matches!(frames.as_slice(), [ServerMessage::Error { code, .. }] if *code == expected),
            "{body}: {frames:?}"
        );
        // Still open: a ping is answered.
        let pong = twins.say("c1", r#"{"action": "ping", "id": "p1"}"#).await;
        assert_eq!(
            pong,
            [ServerMessage::Pong {
                id: Some("p1".into())
            }]
        );
    }
    assert!(
        twins
            .realtime
            .subscribers(bens.id)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(!twins.realtime.was_closed("c1"));
    let gone = handle(&twins.state, WsRoute::Disconnect, event("c1", None, None)).await;
    assert_eq!(gone.status_code, 200);
    assert_eq!(twins.realtime.session("c1").await.expect("read"), None);
}

#[tokio::test]
async fn one_connection_follows_several_projects_and_stops_following_one() {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    twins.connect("c1", ana).await;
    let mut projects = Vec::new();
    for name in ["One", "Two", "Three"] {
        let project = twins
            .projects
            .create_project(ana, name, "")
            .await
            .expect("project");
        let subscribe = format!(
            r#"{{"action": "subscribe", "project_id": "{}"}}"#,
            project.id
        );
        let frames = twins.say("c1", &subscribe).await;
        assert!(matches!(
            frames.last(),
            Some(ServerMessage::Subscribed { .. })
        ));
        projects.push(project.id);
    }
    let mut followed = twins.realtime.subscriptions("c1").await.expect("read");
    followed.sort();
    let mut expected = projects.clone();
    expected.sort();
    assert_eq!(followed, expected);
    let push = |project: ProjectId| {
        let twins = &twins;
        async move {
            let body = EventBody::RunCreated(RunCreated {
                command: "go".into(),
                deadline_at: None,
            });
            let event = twins
                .events
                .append(project, None, body)
                .await
                .expect("appended");
            let before = twins.realtime.frames("c1").len();
            twins.state.notifier.push_to_followers(&event).await;
            twins.realtime.frames("c1").len() - before
        }
    };
    for project in &projects {
        assert_eq!(
            push(*project).await,
            1,
            "each project's events reach the one socket"
        );
    }
    let unsubscribe = format!(
        r#"{{"action": "unsubscribe", "project_id": "{}"}}"#,
        projects[1]
    );
    assert_eq!(
        twins.say("c1", &unsubscribe).await,
        [ServerMessage::Unsubscribed {
            project_id: projects[1],
            followed: true
        }]
    );
    assert_eq!(
        twins.say("c1", &unsubscribe).await,
        [ServerMessage::Unsubscribed {
            project_id: projects[1],
            followed: false
        }]
    );
    assert_eq!(push(projects[1]).await, 0);
    assert_eq!(push(projects[0]).await, 1);
    assert_eq!(push(projects[2]).await, 1);
}

#[tokio::test]
async fn a_connection_follows_at_most_a_hundred_projects() {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    twins.connect("c1", ana).await;
    let mut last = None;
    for i in 0..=MAX_SUBSCRIPTIONS {
        let project = twins
            .projects
            .create_project(ana, &format!("P{i}"), "")
            .await
            .expect("project");
        let subscribe = format!(
            r#"{{"action": "subscribe", "project_id": "{}"}}"#,
            project.id
        );
        last = twins.say("c1", &subscribe).await.pop();
    }
    assert!(
        matches!(
            last,
            Some(ServerMessage::Error {
                code: ErrorCode::TooManySubscriptions,
                ..
            })
        ),
        "{last:?}"
    );
    let followed = twins.realtime.subscriptions("c1").await.expect("read");
    assert_eq!(followed.len(), MAX_SUBSCRIPTIONS);
    // Subscribing again to one already followed is not a new one.
    let again = format!(
        r#"{{"action": "subscribe", "project_id": "{}"}}"#,
        followed[0]
    );
    assert!(matches!(
        twins.say("c1", &again).await.last(),
        Some(ServerMessage::Subscribed { .. })
    ));
}

#[tokio::test]
async fn a_socket_whose_token_expired_is_closed_with_the_documented_code_unless_renewed() {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    let project = twins
        .projects
        .create_project(ana, "Keto", "")
        .await
        .expect("project");
    let subscribe = format!(
        r#"{{"action": "subscribe", "project_id": "{}"}}"#,
        project.id
    );
    // Renewed in time: the socket holds until the new token expires.
    twins.connect("c1", ana).await;
    let fresh = twins.state.keys.issue(ana);
    let renew = format!(
        r#"{{"action": "renew", "token": "{}"}}"#,
        fresh.access_token
    );
    let renewed = twins.say("c1", &renew).await;
    assert!(
        matches!(renewed.as_slice(), [ServerMessage::Renewed { expires_at }] if expires_at.timestamp() >= (now_secs() + fresh.expires_in - 5) as i64),
        "{renewed:?}"
    );
    // A listener that only listens: the next push finds its token expired.
    twins.say("c1", &subscribe).await;
    twins
        .realtime
        .renew("c1", now_secs() - 1)
        .await
        .expect("expired");
    let body = EventBody::RunCreated(RunCreated {
        command: "go".into(),
        deadline_at: None,
    });
    let event = twins
        .events
        .append(project.id, None, body)
        .await
        .expect("appended");
    twins.state.notifier.push_to_followers(&event).await;
    let frames = twins.realtime.frames("c1");
    let last: ServerMessage = serde_json::from_str(frames.last().expect("a frame")).expect("json");
    assert!(
        matches!(last, ServerMessage::Closing { code: 4401, .. }),
        "the expired socket gets the closing frame, not the event: {last:?}"
    );
    assert!(twins.realtime.was_closed("c1"));
    assert_eq!(twins.realtime.session("c1").await.expect("read"), None);
    assert!(
        twins
            .realtime
            .subscribers(project.id)
            .await
            .expect("read")
            .is_empty()
    );
    // A client that speaks after its token expired is closed the same way.
    twins.connect("c2", ana).await;
    twins
        .realtime
        .renew("c2", now_secs() - 1)
        .await
        .expect("expired");
    let frames = twins.say("c2", r#"{"action": "ping"}"#).await;
    assert!(
        matches!(
            frames.as_slice(),
            [ServerMessage::Closing { code: 4401, .. }]
        ),
        "{frames:?}"
    );
    assert!(twins.realtime.was_closed("c2"));
}

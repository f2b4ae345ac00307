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
async fn another_users_project_and_an_unreadable_message_answer_an_error_and_follow_nothing() {
    let twins = twins();
    let ana = twins.user("ana@example.com").await;
    let ben = twins.user("ben@example.com").await;
    let bens = twins
        .projects
        .create_project(ben, "Bens", "")
        .await
        .expect("project");
    twins.connect("c1", ana).await;
    for body in [
        format!(r#"{{"action": "subscribe", "project_id": "{}"}}"#, bens.id),
        format!(
            r#"{{"action": "subscribe", "project_id": "{}"}}"#,
            ProjectId::new()
        ),
        "not json".to_owned(),
        r#"{"action": "unsubscribe"}"#.to_owned(),
    ] {
        let frames = twins.say("c1", &body).await;
        assert!(
            matches!(frames.as_slice(), [ServerMessage::Error { .. }]),
            "{body}: {frames:?}"
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
    let gone = handle(&twins.state, WsRoute::Disconnect, event("c1", None, None)).await;
    assert_eq!(gone.status_code, 200);
    assert_eq!(twins.realtime.user_of("c1").await.expect("read"), None);
}

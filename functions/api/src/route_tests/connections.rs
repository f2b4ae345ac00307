//! Connected accounts: the token a user gives, forgetting a connection, and how a flow's
//! failures answer.

use super::field_of;
use crate::ApiError;
use crate::connections::{disconnected, flow_error, token_of};
use autocrew_shared::adapters::memory::MemConnections;
use autocrew_shared::domain::requests::NewConnectionBody;
use autocrew_shared::domain::{ConnectionId, Service, UserId};
use autocrew_shared::ports::connections::{ConnectionStore, NewConnection, Renewal, Sealed};
use autocrew_shared::services::AccountError;

fn body(service: &str, token: &str) -> NewConnectionBody {
    NewConnectionBody {
        service: service.into(),
        token: token.into(),
    }
}

fn sealed() -> Sealed {
    Sealed {
        secret: vec![1, 2, 3],
        wrapped_key: vec![4],
        key_id: "local".into(),
    }
}

async fn connect(store: &MemConnections, user: UserId, account: &str) -> ConnectionId {
    store
        .connect(NewConnection {
            user,
            service: Service::Github,
            account: account.into(),
            hint: "…abcd".into(),
            sealed: sealed(),
            renewal: Renewal::default(),
        })
        .await
        .expect("connected")
        .id
}

#[test]
fn a_token_is_printable_ascii_of_a_known_service() {
    let (service, token) = token_of(&body(" vercel ", " tok_123 ")).expect("checked");
    assert_eq!(service, Service::Vercel);
    assert_eq!(token.expose(), "tok_123");
    assert_eq!(
        field_of(token_of(&body("myspace", "t")).expect_err("refused")),
        "service"
    );
    let long = "t".repeat(4097);
    for bad in ["", "   ", "with space", "tök", long.as_str()] {
        let refused = token_of(&body("github", bad));
        assert_eq!(field_of(refused.expect_err("refused")), "token", "{bad:?}");
    }
}

#[tokio::test]
async fn a_connection_is_forgotten_by_its_user_only_and_reconnecting_keeps_its_id() {
    let store = MemConnections::default();
    let ana = UserId::new();
    let id = connect(&store, ana, "ana").await;
    assert_eq!(connect(&store, ana, "ana-2").await, id, "one per service");
    let listed = store.connections(ana).await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].account, "ana-2");
    let theirs = disconnected(&store, UserId::new(), id).await;
    assert!(
        matches!(theirs, Err(ApiError::NotFound("connection"))),
        "{theirs:?}"
    );
    disconnected(&store, ana, id).await.expect("forgotten");
    assert!(store.connections(ana).await.expect("listed").is_empty());
    let again = disconnected(&store, ana, id).await;
    assert!(
        matches!(again, Err(ApiError::NotFound("connection"))),
        "{again:?}"
    );
}

#[test]
fn a_flows_failures_answer_with_what_the_user_can_do() {
    let service = Service::X;
    let cases = [
        (AccountError::FlowNotFound, 404),
        (AccountError::NoDeviceFlow { service }, 422),
        (AccountError::DeviceFlowNotConfigured { service }, 503),
    ];
    for (error, status) in cases {
        let answered = flow_error(service, error);
        let got = match answered {
            ApiError::NotFound(_) => 404,
            ApiError::Unprocessable(_) => 422,
            ApiError::Unavailable(_) => 503,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, status);
    }
}

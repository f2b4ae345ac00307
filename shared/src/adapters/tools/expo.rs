//! Expo Application Services (api.expo.dev): its GraphQL API, as `eas-cli` uses it, with an
//! access token (`EXPO_TOKEN`) as the bearer.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A GraphQL answer: `data`, or `errors` (with HTTP 200 as often as not).
#[derive(Deserialize)]
struct GraphQl<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: String,
    #[serde(default)]
    extensions: Value,
}

/// Runs one GraphQL operation; `errors` become a `ServiceError` (an `UNAUTHORIZED_ERROR`
/// code refuses the credential).
pub(crate) async fn query<T: DeserializeOwned>(
    client: &ServiceHttp,
    token: &Secret<String>,
    (operation, variables): (&str, Value),
) -> Result<T, ServiceError> {
    let body = json!({"query": operation, "variables": variables});
    let answer: GraphQl<T> = client
        .send(
            client.request(Method::POST, "/graphql", token).json(&body),
            classify,
        )
        .await?;
    if let Some(error) = answer.errors.first() {
        let code = error.extensions["errorCode"].as_str().unwrap_or_default();
        let message = format!("{} ({code})", error.message);
        return Err(
            if code == "UNAUTHORIZED_ERROR" || code == "UNAUTHENTICATED" {
                ServiceError::Unauthorized {
                    service: Service::Expo,
                    status: 200,
                    message,
                }
            } else {
                ServiceError::Refused {
                    service: Service::Expo,
                    status: 200,
                    message,
                }
            },
        );
    }
    answer.data.ok_or_else(|| ServiceError::Unavailable {
        service: Service::Expo,
        message: "the GraphQL answer has neither data nor errors".into(),
        source: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeActor {
    me_actor: Option<Actor>,
}

/// `meActor`: a user (`username`) or a robot (`firstName`), and its accounts.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    accounts: Vec<Account>,
}

#[derive(Deserialize)]
struct Account {
    name: String,
}

const CURRENT_ACTOR: &str = "query CurrentActor { meActor { __typename id ... on UserActor { username } ... on Robot { firstName } accounts { id name } } }";

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let me: MeActor = query(client, token, (CURRENT_ACTOR, json!({}))).await?;
    let Some(actor) = me.me_actor else {
        return Err(ServiceError::Unauthorized {
            service: Service::Expo,
            status: 200,
            message: "the token names no Expo user or robot".into(),
        });
    };
    let name = actor
        .username
        .or(actor.first_name)
        .unwrap_or_else(|| "robot".to_owned());
    Ok(Identity {
        account: match actor.accounts.first() {
            Some(account) if account.name != name => format!("{name} ({})", account.name),
            _ => name,
        },
    })
}

/// Expo's HTTP errors carry GraphQL `errors` too.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        v["errors"][0]["message"].as_str().map(str::to_owned)
    })
}

//! The limits and the refusals, on the schema alone: a refused query never reaches a
//! resolver (these requests carry no state or database at all, so one that ran would
//! fail on its missing data instead of answering with the refusal).

use super::*;
use serde_json::{Value, json};

async fn refused(query: &str) -> (String, String) {
    let answer = answer(async_graphql::Request::new(query)).await;
    assert!(answer.data.is_none(), "{query} ran: {answer:?}");
    let Some(error) = answer.errors.first() else {
        panic!("{query} refused without an error");
    };
    let code = error
        .extensions
        .as_ref()
        .and_then(|e| e["code"].as_str())
        .unwrap_or_default()
        .to_owned();
    (code, error.message.clone())
}

/// `{ me { projects { edges { node { runs { ... } } } } } }` nested `levels` levels of
/// runs → project → runs below the first.
fn nested(levels: usize) -> String {
    let mut query = "id".to_owned();
    for _ in 0..levels {
        query = format!("project {{ runs(first: 1) {{ edges {{ node {{ {query} }} }} }} }}");
    }
    format!("{{ run(id: \"0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d\") {{ {query} }} }}")
}

#[tokio::test]
async fn a_query_nested_past_the_depth_limit_is_refused_with_the_limit() {
    let (code, message) = refused(&nested(4)).await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        message.contains(&format!("{MAX_DEPTH} levels")),
        "{message}"
    );
}

#[tokio::test]
async fn a_query_past_the_complexity_limit_is_refused_with_the_limit() {
    let query = "{ me { projects(first: 100) { edges { node { runs(first: 100) { edges { node { id status cost { cost } } } } } } } } }";
    let (code, message) = refused(query).await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains(&MAX_COMPLEXITY.to_string()), "{message}");
    // Aliases count as the fields they repeat.
    let aliased = (0..60)
        .map(|i| format!("p{i}: projects(first: 100) {{ edges {{ node {{ id name }} }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (code, _) = refused(&format!("{{ me {{ {aliased} }} }}")).await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn the_limits_see_the_variables_values() {
    let request = async_graphql::Request::new(
        "query($n: Int!) { me { projects(first: $n) { edges { node { runs(first: $n) { edges { node { id cost { cost } } } } } } } } }",
    )
    .variables(async_graphql::Variables::from_json(json!({"n": 100})));
    let answer = answer(request).await;
    assert!(answer.data.is_none(), "{answer:?}");
    assert!(
        answer.errors[0].message.contains("complexity"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn syntax_errors_and_unknown_fields_are_named() {
    let (code, message) = refused("{ me { projects(first: 2) { edges { node { id } }").await;
    assert_eq!(code, "GRAPHQL_PARSE_FAILED");
    assert!(!message.is_empty());
    let (code, message) = refused("{ me { password } }").await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("password"), "{message}");
    let (code, _) = refused("mutation { deleteEverything }").await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn introspection_is_refused_when_turned_off() {
    let request =
        async_graphql::Request::new("{ __schema { types { name } } }").disable_introspection();
    let answer = answer(request).await;
    assert!(answer.data.is_none(), "the schema was shown: {answer:?}");
    assert!(
        answer.errors[0].message.contains("docs/schema.graphql"),
        "{answer:?}"
    );
    // Also under an alias, in a fragment.
    let request = async_graphql::Request::new(
        "{ ...f } fragment f on Query { s: __type(name: \"Run\") { name } }",
    )
    .disable_introspection();
    assert!(answer_is_refused(request).await);
}

#[tokio::test]
async fn the_dashboards_sample_query_is_within_the_limits() {
    let event = include_str!("../../../../events/apigw-graphql.json");
    let event: Value = serde_json::from_str(event).unwrap_or(Value::Null);
    let body: Value =
        serde_json::from_str(event["body"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
    let query = body["query"].as_str().unwrap_or_default();
    let document = async_graphql::parser::parse_query(query);
    assert!(document.is_ok(), "{document:?}");
    // Within the limits it runs, and fails only for want of the request's data (a
    // handler always gives it): the limits would have refused it before.
    let request = async_graphql::Request::new(query).variables(
        async_graphql::Variables::from_json(body["variables"].clone()),
    );
    let answer = answer(request).await;
    assert!(answer.data.is_some(), "{answer:?}");
    for error in &answer.errors {
        assert!(error.message.contains("Data"), "{}", error.message);
    }
}

async fn answer_is_refused(request: async_graphql::Request) -> bool {
    answer(request).await.data.is_none()
}

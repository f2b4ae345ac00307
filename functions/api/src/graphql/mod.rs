//! `POST /graphql`: the dashboard's reads in one query (`docs/schema.graphql` is the
//! schema; `docs/graphql.md` says how to use it). The caller is the bearer token's user,
//! as on every REST route, and every resolver reads only their data. A query is checked
//! against depth and complexity limits before anything runs, so one that is too big costs
//! no SQL. Changes stay on the REST routes, which take idempotency keys.

mod loaders;
mod nodes;
mod runs;

use crate::error::json_response;
use crate::request::{caller, json_body};
use crate::{ApiError, ApiState};
use async_graphql::{EmptyMutation, EmptySubscription, Schema};
use lambda_http::{Body, Request, Response};
use nodes::{Query, Viewer};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The deepest a query may nest its fields (the standard introspection query needs 13).
pub const MAX_DEPTH: usize = 15;
/// The most a query may cost: each field counts 1, and a list's fields count once for
/// each item it may hold (`first`, else 20). 50 projects with their last 10 runs and each
/// run's cost is about 3,000.
pub const MAX_COMPLEXITY: usize = 20_000;

type DashboardSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The schema, built once per process.
fn schema() -> &'static DashboardSchema {
    static SCHEMA: OnceLock<DashboardSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish()
    })
}

/// The schema in GraphQL's schema language, as `docs/schema.graphql` holds it.
pub fn sdl() -> String {
    schema().sdl()
}

/// A GraphQL request, as GraphQL over HTTP sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GraphQlRequest {
    /// The query document.
    query: String,
    /// Which of the document's operations to run, when it has several.
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
    /// The values of the query's variables.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// Accepted for clients that always send it, and not used (no persisted queries).
    #[serde(default, rename = "extensions")]
    #[schema(value_type = Option<Object>)]
    _extensions: Option<serde_json::Value>,
}

/// The answer: the data asked for, and what went wrong, if anything did. A query that
/// could not run (a syntax error, an unknown field, a limit passed) has no `data`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GraphQlResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<GraphQlError>,
}

/// One error: what is wrong, where in the query, and a `code` in `extensions`
/// (`BAD_USER_INPUT` with the `argument`, `UNAUTHENTICATED`, `SERVICE_UNAVAILABLE`,
/// `INTERNAL_SERVER_ERROR`, `GRAPHQL_VALIDATION_FAILED`, `GRAPHQL_PARSE_FAILED`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GraphQlError {
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location>,
    /// The field's path in `data`: names and list indexes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    path: Vec<PathSegment>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    extensions: Option<serde_json::Value>,
}

/// A field's name, or an index in a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum PathSegment {
    Field(String),
    Index(usize),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Location {
    line: usize,
    column: usize,
}

/// `POST /graphql`. A request that is not a GraphQL request is a 400; any GraphQL request
/// answers 200 with its `data` and `errors`, as GraphQL over HTTP has it for JSON.
pub async fn query(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: GraphQlRequest = json_body(request)?;
    let mut asked = async_graphql::Request::new(body.query)
        .variables(async_graphql::Variables::from_json(
            serde_json::Value::Object(body.variables.unwrap_or_default()),
        ))
        .data(state.clone())
        .data(Viewer(user))
        .data(loaders::Loads::new(state.dashboard.clone(), user));
    if let Some(name) = body.operation_name {
        asked = asked.operation_name(name);
    }
    if !state.graphql_introspection {
        asked = asked.disable_introspection();
    }
    Ok(json_response(200, &answer(asked).await))
}

/// Runs `asked` (with its data) against the schema: a syntax error, a query the schema
/// or its limits refuse, or the data and the fields' errors.
async fn answer(asked: async_graphql::Request) -> GraphQlResponse {
    // A syntax error is told apart from a query the schema refuses.
    let document = match async_graphql::parser::parse_query(&asked.query) {
        Ok(document) => document,
        Err(e) => {
            return refusal(
                e.to_string(),
                e.positions()
                    .map(|p| Location {
                        line: p.line,
                        column: p.column,
                    })
                    .collect(),
                "GRAPHQL_PARSE_FAILED",
            );
        }
    };
    // async-graphql answers a disabled introspection with nulls; say why instead.
    if asked.introspection_mode == async_graphql::IntrospectionMode::Disabled
        && introspects(&document)
    {
        return refusal(
            "introspection is off here (GRAPHQL_INTROSPECTION); the schema is docs/schema.graphql in the repository".into(),
            Vec::new(),
            "GRAPHQL_VALIDATION_FAILED",
        );
    }
    response_of(schema().execute(asked).await)
}

/// A query refused before it ran: one error, no data.
fn refusal(message: String, locations: Vec<Location>, code: &str) -> GraphQlResponse {
    GraphQlResponse {
        data: None,
        errors: vec![GraphQlError {
            message,
            locations,
            path: Vec::new(),
            extensions: Some(serde_json::json!({ "code": code })),
        }],
    }
}

/// Whether any operation or fragment of `document` asks for `__schema` or `__type`.
fn introspects(document: &async_graphql::parser::types::ExecutableDocument) -> bool {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn within(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                name == "__schema" || name == "__type" || within(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => within(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| within(&op.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|f| within(&f.node.selection_set.node))
}

/// async-graphql's response in the documented shape. A query refused before it ran (an
/// unknown field, a limit passed) has errors without a path and no `data`.
fn response_of(answered: async_graphql::Response) -> GraphQlResponse {
    let refused = matches!(answered.data, async_graphql::Value::Null)
        && !answered.errors.is_empty()
        && answered.errors.iter().all(|e| e.path.is_empty());
    GraphQlResponse {
        data: (!refused).then(|| answered.data.into_json().unwrap_or_default()),
        errors: answered
            .errors
            .into_iter()
            .map(|e| error_of(e, refused))
            .collect(),
    }
}

fn error_of(error: async_graphql::ServerError, refused: bool) -> GraphQlError {
    let mut extensions = error
        .extensions
        .as_ref()
        .and_then(|e| serde_json::to_value(e).ok());
    if refused && extensions.is_none() {
        extensions = Some(serde_json::json!({"code": "GRAPHQL_VALIDATION_FAILED"}));
    }
    GraphQlError {
        message: explained(&error.message),
        locations: error
            .locations
            .iter()
            .map(|p| Location {
                line: p.line,
                column: p.column,
            })
            .collect(),
        path: error
            .path
            .into_iter()
            .map(|segment| match segment {
                async_graphql::PathSegment::Field(name) => PathSegment::Field(name),
                async_graphql::PathSegment::Index(i) => PathSegment::Index(i),
            })
            .collect(),
        extensions,
    }
}

/// async-graphql's words for the limits, with the limits themselves.
fn explained(message: &str) -> String {
    match message {
        "Query is nested too deep." => format!(
            "the query nests fields deeper than the limit of {MAX_DEPTH} levels; ask for less at once"
        ),
        "Query is too complex." => format!(
            "the query's complexity is over the limit of {MAX_COMPLEXITY} (each field counts 1, and a list's fields once for each item it may hold: `first`, else 20); ask for fewer items or fields"
        ),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests;

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn query() -> Spec {
        Spec::new(
            "The dashboard's reads in one GraphQL query: the caller's projects, runs, tasks, artifacts, deployments, approvals, costs and analytics (schema: docs/schema.graphql).",
        )
        .body::<GraphQlRequest>()
        .reply::<GraphQlResponse>(200)
    }
}

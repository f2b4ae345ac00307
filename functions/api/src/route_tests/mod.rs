//! The routes' logic against in-memory twins of their ports: no Postgres, no moto, so
//! `cargo test --lib` runs them in milliseconds. The real-backend tier (tests/) calls the
//! same routes through `handle` with the payloads API Gateway delivers.

mod approvals;
mod auth;
mod browse;
mod checks;
mod connections;
mod conversations;
mod costs;
mod events;
mod policies;
mod projects;
mod runs;
mod uploads;

use crate::ApiError;
use lambda_http::RequestExt;
use std::collections::HashMap;

/// The field a 400 names.
fn field_of(error: ApiError) -> String {
    match error {
        ApiError::BadRequest { field, .. } => field,
        other => panic!("expected a 400, got {other:?}"),
    }
}

/// A request with these query parameters.
fn with_query(pairs: &[(&str, &str)]) -> lambda_http::Request {
    let query: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    lambda_http::Request::default().with_query_string_parameters(query)
}

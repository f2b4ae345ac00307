//! The API's OpenAPI 3.1 document, built from the code: the route table (`Route::ALL`, each
//! route's method, path and `Spec`), and the schemas derived from the structs the routes
//! read and answer with (utoipa). Each route module declares its routes' specs beside their
//! handlers; this module only assembles them. `GET /openapi.json` serves the document;
//! `openapi.json` at the repository's root is a copy that a test keeps equal to it
//! (regenerate with `make openapi`).

use crate::Route;
use autocrew_shared::domain::paging::MAX_LIMIT;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `GET /openapi.json`: this document, public.
pub async fn get_openapi(
    _: &crate::ApiState,
    _: &lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, crate::ApiError> {
    Ok(crate::error::json_response(200, document()))
}

pub(crate) mod spec {
    use super::Spec;

    pub fn get_openapi() -> Spec {
        Spec::new("This document.").openapi_document(200)
    }
}

/// A named schema and the schemas it refers to.
type Named = Vec<(String, RefOr<Schema>)>;

fn named<T: ToSchema>() -> (String, Named) {
    let name = T::name().into_owned();
    let mut schemas = vec![(name.clone(), T::schema())];
    T::schemas(&mut schemas);
    (name, schemas)
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// What one success status answers with.
struct Success {
    status: u16,
    description: &'static str,
    /// The media type and its schema; `None`: no body.
    content: Option<(&'static str, Value)>,
    /// Which operations take an id found in this body: the path parameter and the JSON
    /// pointer to the id.
    link: Option<(&'static str, &'static str)>,
}

/// What the document says about one route besides its method and path: each route module
/// declares its routes' specs beside their handlers.
pub(crate) struct Spec {
    summary: &'static str,
    /// The request body's schema name, and whether it is required.
    body: Option<(String, bool)>,
    query: Vec<Value>,
    success: Vec<Success>,
    /// Every schema the body and the answers refer to.
    schemas: Named,
    /// The route answers a person's browser with pages, never the JSON error body.
    for_browsers: bool,
}

impl Spec {
    pub fn new(summary: &'static str) -> Spec {
        Spec {
            summary,
            body: None,
            query: Vec::new(),
            success: Vec::new(),
            schemas: Vec::new(),
            for_browsers: false,
        }
    }

    /// The JSON body the route reads.
    pub fn body<T: ToSchema>(self) -> Spec {
        self.with_body::<T>(true)
    }

    /// A JSON body the route reads when one is sent.
    pub fn optional_body<T: ToSchema>(self) -> Spec {
        self.with_body::<T>(false)
    }

    fn with_body<T: ToSchema>(mut self, required: bool) -> Spec {
        let (name, schemas) = named::<T>();
        self.schemas.extend(schemas);
        self.body = Some((name, required));
        self
    }

    pub fn query(mut self, parameters: impl IntoIterator<Item = Value>) -> Spec {
        self.query.extend(parameters);
        self
    }

    /// `status` answers with a `T` as JSON.
    pub fn reply<T: ToSchema>(mut self, status: u16) -> Spec {
        let (name, schemas) = named::<T>();
        self.schemas.extend(schemas);
        self.answer(
            status,
            "Success.",
            Some(("application/json", reference(&name))),
        )
    }

    /// `status` answers with a page of `T`s, newest first.
    pub fn page<T: ToSchema>(mut self, status: u16) -> Spec {
        let (name, schemas) = named::<T>();
        self.schemas.extend(schemas);
        let page = json!({
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": reference(&name)},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last."}
            }
        });
        self.answer(status, "Success.", Some(("application/json", page)))
    }

    /// `status` answers with an OpenAPI document (this one).
    pub fn openapi_document(self, status: u16) -> Spec {
        let document = json!({
            "type": "object", "required": ["openapi", "info", "paths", "components"],
            "properties": {
                "openapi": {"type": "string"},
                "info": {"type": "object"},
                "paths": {"type": "object"},
                "components": {"type": "object"}
            }
        });
        self.answer(status, "Success.", Some(("application/json", document)))
    }

    /// `status` answers with no body.
    pub fn empty(self, status: u16) -> Spec {
        self.answer(status, "Success.", None)
    }

    /// `status` answers with a stored file of any type.
    pub fn file(self, status: u16) -> Spec {
        self.answer(status, "Success.", Some(("*/*", json!({}))))
    }

    /// `status` answers a person's browser with a page.
    pub fn html(mut self, status: u16, description: &'static str) -> Spec {
        self.for_browsers = true;
        self.answer(
            status,
            description,
            Some(("text/html", json!({"type": "string"}))),
        )
    }

    /// `status` sends the browser on, with no body.
    pub fn redirect(self, status: u16, description: &'static str) -> Spec {
        self.answer(status, description, None)
    }

    /// The last answer's body holds, at `pointer`, the id that the operations taking the
    /// path parameter `parameter` need: OpenAPI links from it, so a client (and
    /// schemathesis's stateful phase) can follow them.
    pub fn creates(mut self, parameter: &'static str, pointer: &'static str) -> Spec {
        if let Some(last) = self.success.last_mut() {
            last.link = Some((parameter, pointer));
        }
        self
    }

    fn answer(
        mut self,
        status: u16,
        description: &'static str,
        content: Option<(&'static str, Value)>,
    ) -> Spec {
        self.success.push(Success {
            status,
            description,
            content,
            link: None,
        });
        self
    }
}

pub(crate) fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

pub(crate) fn uuid_query(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "string", "format": "uuid"}),
    )
}

/// `cursor` and `limit`.
pub(crate) fn paging() -> Vec<Value> {
    vec![
        query(
            "cursor",
            "The `next_cursor` of the previous page.",
            json!({"type": "string", "maxLength": 200}),
        ),
        query(
            "limit",
            "Items per page (default 20).",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
        ),
    ]
}

/// `from`, `to` and `project_id`.
pub(crate) fn period() -> Vec<Value> {
    let when = json!({"type": "string", "description": "A date (2026-11-01) or an RFC 3339 time."});
    vec![
        query(
            "from",
            "Start of the period (default: the first of this month).",
            when.clone(),
        ),
        query("to", "End of the period (default: now).", when),
        uuid_query("project_id", "Only this project."),
    ]
}

/// The error statuses a route may answer with (see `error.rs` and `limits.rs`).
fn errors(route: Route, spec: &Spec, method: &str, has_params: bool) -> Vec<(u16, &'static str)> {
    // A route for browsers answers with pages of its own (see its spec).
    let mut statuses = match spec.for_browsers {
        true => vec![(413, "PayloadTooLarge"), (429, "TooManyRequests")],
        false => vec![
            (400, "BadRequest"),
            (413, "PayloadTooLarge"),
            (429, "TooManyRequests"),
        ],
    };
    if route.signed_in() || matches!(route, Route::Login | Route::Refresh) {
        statuses.push((401, "Unauthorized"));
    }
    if route.signed_in() || has_params {
        statuses.push((404, "NotFound"));
    }
    if method != "GET" {
        statuses.push((409, "Conflict"));
        statuses.push((422, "Unprocessable"));
    }
    // The mail provider, or (for an external issuer's token) the account's look-up.
    if route.signed_in() || matches!(route, Route::Signup | Route::RequestPasswordReset) {
        statuses.push((503, "Unavailable"));
    }
    statuses.retain(|(status, _)| !spec.success.iter().any(|s| s.status == *status));
    statuses.sort();
    statuses
}

fn operation(route: Route, method: &str, path: &str, schemas: &mut Map<String, Value>) -> Value {
    let spec = route.spec();
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name.ends_with("_id") {
                true => json!({"type": "string", "format": "uuid"}),
                false => json!({"type": "string", "minLength": 1}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    let has_params = !parameters.is_empty();
    parameters.extend(spec.query.iter().cloned());
    if method == "POST" && route.signed_in() {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Sending the same key again with the same body replays the stored answer; another body gets 422.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
        }));
    }
    let mut responses = Map::new();
    for success in &spec.success {
        let mut response = json!({"description": success.description});
        if let Some((media, schema)) = &success.content {
            response["content"] = json!({*media: {"schema": schema}});
        }
        if let Some((parameter, pointer)) = success.link {
            response["links"] = links(parameter, pointer);
        }
        responses.insert(success.status.to_string(), response);
    }
    for (status, name) in errors(route, &spec, method, has_params) {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    let mut operation = json!({
        "operationId": operation_id(route),
        "summary": spec.summary,
        "parameters": parameters,
        "responses": responses,
    });
    operation["security"] = match route.signed_in() {
        true => json!([{"bearer": []}]),
        false => json!([]),
    };
    if let Some((name, required)) = &spec.body {
        operation["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": reference(name)}}
        });
    }
    for (name, schema) in spec.schemas {
        schemas.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    operation
}

/// Links from a response holding an id (at `pointer`) to every operation that takes it as
/// the path parameter `parameter`.
fn links(parameter: &str, pointer: &str) -> Value {
    let mut links = Map::new();
    for &target in Route::ALL {
        let (_, path) = target.endpoint();
        if path.contains(&format!("{{{parameter}}}")) {
            let id = operation_id(target);
            links.insert(
                id.clone(),
                json!({"operationId": id, "parameters": {parameter: format!("$response.body#{pointer}")}}),
            );
        }
    }
    Value::Object(links)
}

fn operation_id(route: Route) -> String {
    route.name().trim_start_matches("api-").replace('-', "_")
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn build() -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for &route in Route::ALL {
        let (method, path) = route.endpoint();
        // API Gateway's greedy `{path+}` is a plain parameter in OpenAPI.
        let path = path.replace("+}", "}");
        let operation = operation(route, method, &path, &mut schemas);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method.to_ascii_lowercase()] = operation;
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object", "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What is wrong, in words."},
                "field": {"type": "string", "description": "The field, parameter or header at fault."}
            }
        }),
    );
    let rate_headers = json!({
        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until a request may succeed."},
        "RateLimit": {"schema": {"type": "string"}},
        "RateLimit-Policy": {"schema": {"type": "string"}}
    });
    let mut too_many = error_response("Too many requests in this minute.");
    too_many["headers"] = rate_headers;
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Autocrew API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API of Autocrew: sign-in, projects, runs, tasks, artifacts, uploads, conversations, approvals, costs and analytics. Live updates come over the WebSocket API with the same access token."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas,
            "responses": {
                "BadRequest": error_response("The request is malformed; `field` says where."),
                "Unauthorized": error_response("No access token, or one that does not hold."),
                "NotFound": error_response("No such resource of the caller's."),
                "Conflict": error_response("The resource's state does not allow this now."),
                "PayloadTooLarge": error_response("The body is over 64 KiB."),
                "Unprocessable": error_response("Well formed but refused (an idempotency key reused with another body, an upload that does not match its grant)."),
                "TooManyRequests": too_many,
                "Unavailable": error_response("Something outside the request failed (the mail provider, the account look-up); try again later."),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use autocrew_shared::domain::limits;
    use autocrew_shared::domain::requests::{NewCommand, NewMessage, NewProject, ProjectPatch};
    use utoipa::PartialSchema;

    /// A property of a request body's derived schema.
    fn property<T: ToSchema + PartialSchema>(name: &str) -> Value {
        let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
        schema["properties"][name].clone()
    }

    /// utoipa's attributes take literals only: this holds each one to its constant, so a
    /// limit is changed in `domain::limits` and the document cannot disagree with the check.
    #[test]
    fn the_documented_limits_are_the_checked_ones() {
        let names = [
            property::<NewProject>("name"),
            property::<ProjectPatch>("name"),
        ];
        for name in names {
            assert_eq!(name["maxLength"], json!(limits::PROJECT_NAME_MAX), "{name}");
        }
        for description in [
            property::<NewProject>("description"),
            property::<ProjectPatch>("description"),
        ] {
            assert_eq!(
                description["maxLength"],
                json!(limits::PROJECT_DESCRIPTION_MAX)
            );
        }
        assert_eq!(
            property::<NewCommand>("command")["maxLength"],
            json!(limits::COMMAND_MAX)
        );
        assert_eq!(
            property::<NewMessage>("text")["maxLength"],
            json!(limits::COMMAND_MAX)
        );
        for run in [
            property::<NewCommand>("budget_usd"),
            property::<NewMessage>("budget_usd"),
        ] {
            assert_eq!(run["maximum"], json!(limits::RUN_BUDGET_MAX_DOLLARS));
        }
        for concurrency in [
            property::<NewCommand>("max_concurrency"),
            property::<NewMessage>("max_concurrency"),
        ] {
            assert_eq!(concurrency["maximum"], json!(limits::MAX_CONCURRENCY));
        }
        for deadline in [
            property::<NewCommand>("deadline_minutes"),
            property::<NewMessage>("deadline_minutes"),
        ] {
            assert_eq!(deadline["maximum"], json!(limits::MAX_DEADLINE_MINUTES));
        }
    }
}

//! The API's OpenAPI 3.1 document, built from the code: the route table (`Route::ALL` with
//! each route's method and path), the request bodies' schemas derived from the structs the
//! routes read (utoipa), and the query parameters and statuses each route answers with.
//! `GET /openapi.json` serves it; `openapi.json` at the repository's root is a copy that a
//! test keeps equal to it (regenerate with `make openapi`).

use crate::Route;
use crate::uploads::UPLOAD_TYPES;
use autocrew_shared::domain::paging::MAX_LIMIT;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa::{PartialSchema, ToSchema};

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `decision` of an approval: `approve` or `reject`.
pub(crate) fn decision_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["approve", "reject"]))
        .build()
}

/// The content types an upload may have.
pub(crate) fn upload_type_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(UPLOAD_TYPES))
        .build()
}

pub(crate) fn service_schema() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            autocrew_shared::domain::Service::ALL
                .iter()
                .map(|s| s.as_str()),
        ))
        .build()
}

/// A request body: its schema in the components, referenced.
struct BodyOf {
    name: String,
    schema: Value,
    required: bool,
}

fn body<T: ToSchema + PartialSchema>(required: bool) -> Option<BodyOf> {
    Some(BodyOf {
        name: T::name().into_owned(),
        schema: serde_json::to_value(T::schema()).unwrap_or(Value::Null),
        required,
    })
}

/// What the document says about one route besides its method and path.
struct Details {
    summary: &'static str,
    body: Option<BodyOf>,
    query: Vec<Value>,
    /// The success statuses with their body's schema (`None`: no body).
    success: Vec<(u16, Option<Value>)>,
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn uuid_query(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "string", "format": "uuid"}),
    )
}

fn paging() -> Vec<Value> {
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

fn run_status() -> Value {
    query(
        "status",
        "Only runs of this status.",
        json!({"type": "string", "enum": ["pending", "planning", "running", "compiling", "succeeded", "failed", "cancelled"]}),
    )
}

fn period() -> Vec<Value> {
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

fn object() -> Option<Value> {
    Some(json!({"type": "object"}))
}

fn page() -> Option<Value> {
    Some(json!({"$ref": "#/components/schemas/Page"}))
}

fn session() -> Option<Value> {
    Some(json!({"$ref": "#/components/schemas/Session"}))
}

fn details(route: Route) -> Details {
    use crate::approvals::DecisionBody;
    use crate::auth::{Login, RefreshBody, ResetConfirm, ResetRequest, SignUp, TokenBody};
    use crate::browse::ProjectPatch;
    use crate::connections::{DeviceFlowBody, NewConnectionBody};
    use crate::conversations::NewMessage;
    use crate::costs::Settings;
    use crate::oauth::WebFlowBody;
    use crate::policies::PolicyBody;
    use crate::routes::{NewCommand, NewProject, Resume};
    use crate::uploads::NewUpload;
    let (summary, body, query_params, success) = match route {
        Route::Signup => (
            "Sign up with email and password; a verification email goes out.",
            body::<SignUp>(true),
            vec![],
            vec![(201, session())],
        ),
        Route::Login => (
            "Log in: a new session.",
            body::<Login>(true),
            vec![],
            vec![(200, session())],
        ),
        Route::Refresh => (
            "The next access and refresh tokens; the refresh token rotates.",
            body::<RefreshBody>(true),
            vec![],
            vec![(200, session())],
        ),
        Route::Logout => (
            "Ends the refresh token's session.",
            body::<RefreshBody>(true),
            vec![],
            vec![(204, None)],
        ),
        Route::GetMe => ("The caller's account.", None, vec![], vec![(200, object())]),
        Route::VerifyEmail => (
            "Verifies the email address with the emailed code.",
            body::<TokenBody>(true),
            vec![],
            vec![(200, object())],
        ),
        Route::ResendVerification => (
            "Sends a new verification code.",
            None,
            vec![],
            vec![(202, object())],
        ),
        Route::RequestPasswordReset => (
            "Sends a password reset code, if the address has an account.",
            body::<ResetRequest>(true),
            vec![],
            vec![(202, object())],
        ),
        Route::ResetPassword => (
            "Sets a new password with the emailed code.",
            body::<ResetConfirm>(true),
            vec![],
            vec![(200, object())],
        ),
        Route::CreateProject => (
            "Creates a project.",
            body::<NewProject>(true),
            vec![],
            vec![(201, object())],
        ),
        Route::PostCommand => (
            "Starts a run of the command; follow it on the WebSocket or the events.",
            body::<NewCommand>(true),
            vec![],
            vec![(202, object())],
        ),
        Route::GetRun => (
            "The run with its tasks, artifacts (download links), approvals and cost.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::ListEvents => (
            "The project's events after a sequence number, oldest first.",
            None,
            vec![
                query(
                    "after",
                    "Events after this sequence number (default 0).",
                    json!({"type": "integer", "minimum": 0}),
                ),
                query(
                    "limit",
                    "Events at most (default 100).",
                    json!({"type": "integer", "minimum": 1, "maximum": 500}),
                ),
            ],
            vec![(200, object())],
        ),
        Route::GetCosts => (
            "Spend over a period, grouped.",
            None,
            {
                let mut q = vec![query(
                    "by",
                    "How to group (default run).",
                    json!({"type": "string", "enum": ["run", "project", "agent", "user", "model"]}),
                )];
                q.extend(period());
                q
            },
            vec![(200, object())],
        ),
        Route::UpdateMe => (
            "The caller's settings: the semantic cache opt-in.",
            body::<Settings>(true),
            vec![],
            vec![(200, object())],
        ),
        Route::CancelRun => ("Cancels the run.", None, vec![], vec![(200, object())]),
        Route::ResumeRun => (
            "A failed or cancelled run goes on where it stopped.",
            body::<Resume>(false),
            vec![],
            vec![(202, object())],
        ),
        Route::RetryTask => (
            "A failed task starts again.",
            None,
            vec![],
            vec![(202, object())],
        ),
        Route::GetApproval => (
            "An approval with the exact payload to decide on.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::DecideApproval => (
            "Approves or rejects, quoting the payload's hash.",
            body::<DecisionBody>(true),
            vec![],
            vec![(200, object())],
        ),
        Route::GetSite => ("A published file, public.", None, vec![], vec![(200, None)]),
        Route::GetAnalytics => (
            "Runs per day, success rate, median duration, cost per task and per agent, cache hit rate.",
            None,
            period(),
            vec![(200, object())],
        ),
        Route::ExportMe => (
            "A link to a JSON export of everything kept about the caller.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::DeleteMe => (
            "Erases the account, its rows and its files.",
            None,
            vec![],
            vec![(204, None)],
        ),
        Route::ListProjects => (
            "The caller's projects, newest first.",
            None,
            {
                let mut q = vec![query(
                    "archived",
                    "The archived projects instead (default false).",
                    json!({"type": "string", "enum": ["true", "false"]}),
                )];
                q.extend(paging());
                q
            },
            vec![(200, page())],
        ),
        Route::GetProject => ("One project.", None, vec![], vec![(200, object())]),
        Route::UpdateProject => (
            "Renames, describes, archives or unarchives a project.",
            body::<ProjectPatch>(true),
            vec![],
            vec![(200, object())],
        ),
        Route::DeleteProject => (
            "Deletes the project, its runs and its files.",
            None,
            vec![],
            vec![(204, None)],
        ),
        Route::ListRuns => (
            "The caller's runs across projects, newest first.",
            None,
            {
                let mut q = vec![
                    run_status(),
                    uuid_query("project_id", "Only this project's runs."),
                ];
                q.extend(paging());
                q
            },
            vec![(200, page())],
        ),
        Route::ListProjectRuns => (
            "A project's runs, newest first.",
            None,
            {
                let mut q = vec![run_status()];
                q.extend(paging());
                q
            },
            vec![(200, page())],
        ),
        Route::ListRunTasks => (
            "A run's tasks with their attempts, results and errors.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::GetTask => (
            "One task with its attempts.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::ListArtifacts => (
            "A project's artifacts with download links, newest first.",
            None,
            {
                let mut q = vec![uuid_query("run_id", "Only this run's artifacts.")];
                q.extend(paging());
                q
            },
            vec![(200, page())],
        ),
        Route::ListMessages => (
            "The project's conversation, newest first.",
            None,
            paging(),
            vec![(200, page())],
        ),
        Route::PostMessage => (
            "A message to the orchestrator, answered over the WebSocket (reply_progress, then message_posted); with as_command, a run.",
            body::<NewMessage>(true),
            vec![],
            vec![(202, object())],
        ),
        Route::CreateUpload => (
            "A presigned PUT for one file of an allowed type, at most 25 MiB.",
            body::<NewUpload>(true),
            vec![],
            vec![(201, object())],
        ),
        Route::CompleteUpload => (
            "Checks the uploaded file against its grant and records it as an artifact.",
            None,
            vec![],
            vec![(201, object()), (200, object())],
        ),
        Route::ListAgents => (
            "The agents' profiles and the models each would use now.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::GetOpenApi => ("This document.", None, vec![], vec![(200, object())]),
        Route::ListConnections => (
            "The caller's connected accounts: service, account, status; never the token.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::Connect => (
            "Connects a service with a token it accepts (checked with the service, then sealed); connecting again replaces it.",
            body::<NewConnectionBody>(true),
            vec![],
            vec![(201, object())],
        ),
        Route::Disconnect => (
            "Forgets the connection and its token.",
            None,
            vec![],
            vec![(204, None)],
        ),
        Route::StartDeviceFlow => (
            "Starts the service's OAuth device flow (GitHub): the code the user enters at the verification page, where, until when, and how often to poll. 422 for a service without one; 503 where no OAuth app is configured.",
            body::<DeviceFlowBody>(true),
            vec![],
            vec![(201, object())],
        ),
        Route::PollDeviceFlow => (
            "One poll of a device flow: 202 while the user has not entered the code (poll again after interval seconds), 201 with the connection once they did, 409 once it expired or was cancelled.",
            None,
            vec![],
            vec![(201, object()), (202, object())],
        ),
        Route::StartWebFlow => (
            "Starts the service's OAuth web flow (X with PKCE, LinkedIn): open authorize_url in a browser; the service sends it back to redirect_uri (GET /oauth/callback), which connects the account and then shows a page or goes on to return_to. 422 for a service without one; 503 where no OAuth app is configured.",
            body::<WebFlowBody>(true),
            vec![],
            vec![(201, object())],
        ),
        Route::GetWebFlow => (
            "How a web flow stands: pending (the user has not come back), exchanging, connected (with the connection), failed (with the error) or expired.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::OAuthCallback => (
            "Public: where the service sends the browser after consent, with code and state (or error and error_description). Answers a page for a person (200 connected; 400 not), or 303 to the flow's return_to with status, service, flow_id and connection_id or error.",
            None,
            vec![
                query(
                    "state",
                    "The state the authorization link carried.",
                    json!({"type": "string"}),
                ),
                query("code", "The authorization code.", json!({"type": "string"})),
                query(
                    "error",
                    "Why there is no code (access_denied, ...).",
                    json!({"type": "string"}),
                ),
                query(
                    "error_description",
                    "The service's words for the error.",
                    json!({"type": "string"}),
                ),
            ],
            vec![(200, None), (303, None), (400, None), (503, None)],
        ),
        Route::ListPolicies => (
            "Each tool that acts in the world (publishing, pushing code, deploying, sending, posting), its agents, and whether it asks the caller before each call.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::ListDeployments => (
            "The project's deploys and builds (Vercel sites, EAS builds), newest first: status, URL, the service's ids and times; deployment_updated events follow their changes.",
            None,
            vec![],
            vec![(200, object())],
        ),
        Route::SetPolicy => (
            "Sets whether a tool asks before each call (ask, the default) or runs on its own (auto).",
            body::<PolicyBody>(true),
            vec![],
            vec![(200, object())],
        ),
    };
    Details {
        summary,
        body,
        query: query_params,
        success,
    }
}

/// The error statuses a route may answer with (see `error.rs` and `limits.rs`).
fn errors(route: Route, method: &str, has_params: bool) -> Vec<(u16, &'static str)> {
    // The callback answers a browser with pages of its own (see `details`).
    let mut statuses = match route {
        Route::OAuthCallback => vec![(413, "PayloadTooLarge"), (429, "TooManyRequests")],
        _ => vec![
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
    statuses.sort();
    statuses
}

fn operation(route: Route, method: &str, path: &str, schemas: &mut Map<String, Value>) -> Value {
    let details = details(route);
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
    parameters.extend(details.query);
    if method == "POST" && route.signed_in() {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Sending the same key again with the same body replays the stored answer; another body gets 422.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}
        }));
    }
    let mut responses = Map::new();
    for (status, schema) in details.success {
        let mut response = json!({"description": "Success."});
        if let Some(schema) = schema {
            response["content"] = json!({"application/json": {"schema": schema}});
        }
        if route == Route::GetSite {
            response["content"] = json!({"*/*": {"schema": {}}});
        }
        if route == Route::OAuthCallback {
            response["description"] = json!(match status {
                303 => "On to the flow's return_to.",
                200 => "Connected: a page saying so.",
                _ => "Not connected: a page saying why.",
            });
            if status != 303 {
                response["content"] = json!({"text/html": {"schema": {"type": "string"}}});
            }
        }
        if let Some(links) = links(route, status) {
            response["links"] = links;
        }
        responses.insert(status.to_string(), response);
    }
    for (status, name) in errors(route, method, has_params) {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    let mut operation = json!({
        "operationId": operation_id(route),
        "summary": details.summary,
        "parameters": parameters,
        "responses": responses,
    });
    operation["security"] = match route.signed_in() {
        true => json!([{"bearer": []}]),
        false => json!([]),
    };
    if let Some(body) = details.body {
        operation["requestBody"] = json!({
            "required": body.required,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", body.name)}}}
        });
        schemas.insert(body.name, body.schema);
    }
    operation
}

/// The responses that create a resource, and where its id is in their body: OpenAPI links
/// from each to every operation that takes that id, so a client (and schemathesis's
/// stateful phase) can follow them.
const CREATES: [(Route, u16, &str, &str); 4] = [
    (Route::CreateProject, 201, "project_id", "/id"),
    (Route::PostCommand, 202, "run_id", "/run_id"),
    (Route::CreateUpload, 201, "upload_id", "/upload/id"),
    (Route::StartWebFlow, 201, "flow_id", "/flow_id"),
];

fn links(route: Route, status: u16) -> Option<Value> {
    let (_, _, parameter, pointer) = CREATES
        .iter()
        .find(|(r, s, _, _)| *r == route && *s == status)?;
    let mut links = Map::new();
    for target in Route::ALL {
        let (_, path) = target.endpoint();
        if path.contains(&format!("{{{parameter}}}")) {
            let id = operation_id(target);
            links.insert(
                id.clone(),
                json!({"operationId": id, "parameters": {*parameter: format!("$response.body#{pointer}")}}),
            );
        }
    }
    Some(Value::Object(links))
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
    for route in Route::ALL {
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
    schemas.insert(
        "Page".into(),
        json!({
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last."}
            }
        }),
    );
    schemas.insert(
        "Session".into(),
        json!({
            "type": "object", "required": ["access_token", "refresh_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string", "description": "A JWT; send as Authorization: Bearer."},
                "refresh_token": {"type": "string"},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": "Seconds the access token lives."},
                "user": {"type": "object"}
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

    /// A property of a request body's derived schema.
    fn property<T: ToSchema + PartialSchema>(name: &str) -> Value {
        let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
        schema["properties"][name].clone()
    }

    /// utoipa's attributes take literals only: this holds each one to its constant, so a
    /// limit is changed in `domain::limits` and the document cannot disagree with the check.
    #[test]
    fn the_documented_limits_are_the_checked_ones() {
        use crate::browse::ProjectPatch;
        use crate::conversations::NewMessage;
        use crate::routes::{NewCommand, NewProject};
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

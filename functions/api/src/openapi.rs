//! The API's OpenAPI 3.1 document, built from the code: the route table (`Route::ALL`, each
//! route's method, path and `Spec`), and the schemas derived from the structs the routes
//! read and answer with (utoipa). Each route module declares its routes' specs beside their
//! handlers; this module only assembles them, with utoipa's typed document. `GET
//! /openapi.json` serves the document; `openapi.json` at the repository's root is a copy
//! that a test keeps equal to it (regenerate with `make openapi`).

use crate::Route;
use autocrew_shared::domain::paging::MAX_LIMIT;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
    Response, ResponseBuilder, ResponsesBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = serde_json::to_value(build()).unwrap_or(Value::Null);
        spell_links(&mut document);
        document
    })
}

/// utoipa 5.5 writes a link's `operationId` as `operation_id` (its `Link` lacks serde's
/// camelCase renaming): this spells it as OpenAPI does.
fn spell_links(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let links = responses
            .values_mut()
            .filter_map(|r| r.get_mut("links").and_then(Value::as_object_mut))
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        for link in links {
            if let Some(id) = link.remove("operation_id") {
                link.insert("operationId".to_owned(), id);
            }
        }
    }
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

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// What one success status answers with.
struct Success {
    status: u16,
    description: &'static str,
    /// The media type and its schema; `None`: no body.
    content: Option<(&'static str, RefOr<Schema>)>,
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
    query: Vec<Parameter>,
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

    pub fn query(mut self, parameters: impl IntoIterator<Item = Parameter>) -> Spec {
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
        let next_cursor = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(
                "Pass as `cursor` for the next page; null on the last.",
            ));
        let page = ObjectBuilder::new()
            .property("items", ArrayBuilder::new().items(reference(&name)))
            .required("items")
            .property("next_cursor", next_cursor)
            .required("next_cursor");
        self.answer(status, "Success.", Some(("application/json", page.into())))
    }

    /// `status` answers with an OpenAPI document (this one).
    pub fn openapi_document(self, status: u16) -> Spec {
        let document = ["openapi", "info", "paths", "components"].into_iter().fold(
            ObjectBuilder::new(),
            |object, field| {
                let schema = match field {
                    "openapi" => ObjectBuilder::new().schema_type(Type::String),
                    _ => ObjectBuilder::new().schema_type(Type::Object),
                };
                object.property(field, schema).required(field)
            },
        );
        self.answer(
            status,
            "Success.",
            Some(("application/json", document.into())),
        )
    }

    /// `status` answers with no body.
    pub fn empty(self, status: u16) -> Spec {
        self.answer(status, "Success.", None)
    }

    /// `status` answers with a stored file of any type.
    pub fn file(self, status: u16) -> Spec {
        let any = ObjectBuilder::new().schema_type(SchemaType::AnyValue);
        self.answer(status, "Success.", Some(("*/*", any.into())))
    }

    /// `status` answers a person's browser with a page.
    pub fn html(mut self, status: u16, description: &'static str) -> Spec {
        self.for_browsers = true;
        self.answer(status, description, Some(("text/html", text().into())))
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
        content: Option<(&'static str, RefOr<Schema>)>,
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

/// An optional query parameter.
pub(crate) fn query(name: &str, description: &str, schema: impl Into<RefOr<Schema>>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An optional query parameter taking the names of `T` (an enum).
pub(crate) fn query_of<T: PartialSchema>(name: &str, description: &str) -> Parameter {
    query(name, description, T::schema())
}

pub(crate) fn uuid_query(name: &str, description: &str) -> Parameter {
    query(name, description, uuid())
}

/// Any string.
pub(crate) fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// One of these strings.
pub(crate) fn one_of(values: &[&str]) -> ObjectBuilder {
    text().enum_values(Some(values.iter().copied()))
}

/// A whole number from `minimum` up to `maximum`, if there is one.
pub(crate) fn integer(minimum: i64, maximum: Option<i64>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum))
        .maximum(maximum)
}

fn uuid() -> ObjectBuilder {
    text().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

/// `cursor` and `limit`.
pub(crate) fn paging() -> Vec<Parameter> {
    vec![
        query(
            "cursor",
            "The `next_cursor` of the previous page.",
            text().max_length(Some(200)),
        ),
        query(
            "limit",
            "Items per page (default 20).",
            integer(1, Some(i64::from(MAX_LIMIT))),
        ),
    ]
}

/// `from`, `to` and `project_id`.
pub(crate) fn period() -> Vec<Parameter> {
    let when = || text().description(Some("A date (2026-11-01) or an RFC 3339 time."));
    vec![
        query(
            "from",
            "Start of the period (default: the first of this month).",
            when(),
        ),
        query("to", "End of the period (default: now).", when()),
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
    if route.signed_in()
        || matches!(
            route,
            Route::Login | Route::Refresh | Route::IngestAnalytics
        )
    {
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
    if route.signed_in()
        || matches!(
            route,
            Route::Signup | Route::RequestPasswordReset | Route::StripeWebhook
        )
    {
        statuses.push((503, "Unavailable"));
    }
    statuses.retain(|(status, _)| !spec.success.iter().any(|s| s.status == *status));
    statuses.sort();
    statuses
}

fn path_parameter(name: &str) -> Parameter {
    let schema = match name.ends_with("_id") {
        true => uuid(),
        false => text().min_length(Some(1)),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(schema))
        .build()
}

fn idempotency_key() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some("Sending the same key again with the same body replays the stored answer; another body gets 422."))
        .schema(Some(
            text()
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build()
}

fn operation(route: Route, method: &str, path: &str, schemas: &mut Named) -> Operation {
    let spec = route.spec();
    let mut parameters: Vec<Parameter> = path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(path_parameter)
        .collect();
    let has_params = !parameters.is_empty();
    parameters.extend(spec.query.iter().cloned());
    if method == "POST" && route.signed_in() {
        parameters.push(idempotency_key());
    }
    let mut responses = ResponsesBuilder::new();
    for success in &spec.success {
        let mut response = ResponseBuilder::new().description(success.description);
        if let Some((media, schema)) = &success.content {
            response = response.content(*media, Content::new(Some(schema.clone())));
        }
        if let Some((parameter, pointer)) = success.link {
            for (id, link) in links(parameter, pointer) {
                response = response.link(id, link);
            }
        }
        responses = responses.response(success.status.to_string(), response);
    }
    for (status, name) in errors(route, &spec, method, has_params) {
        responses = responses.response(
            status.to_string(),
            RefOr::<Response>::Ref(Ref::new(format!("#/components/responses/{name}"))),
        );
    }
    let security = match route.signed_in() {
        true => vec![SecurityRequirement::new("bearer", Vec::<String>::new())],
        false => vec![],
    };
    let mut operation = OperationBuilder::new()
        .operation_id(Some(operation_id(route)))
        .summary(Some(spec.summary))
        .parameters(Some(parameters))
        .responses(responses)
        .securities(Some(security));
    if let Some((name, required)) = &spec.body {
        let required = match required {
            true => Required::True,
            false => Required::False,
        };
        operation = operation.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(required))
                .content("application/json", Content::new(Some(reference(name))))
                .build(),
        ));
    }
    schemas.extend(spec.schemas);
    operation.build()
}

/// Links from a response holding an id (at `pointer`) to every operation that takes it as
/// the path parameter `parameter`.
fn links(parameter: &str, pointer: &str) -> Vec<(String, utoipa::openapi::link::Link)> {
    Route::ALL
        .iter()
        .filter(|target| target.endpoint().1.contains(&format!("{{{parameter}}}")))
        .map(|&target| {
            let id = operation_id(target);
            let link = LinkBuilder::new()
                .operation_id(id.clone())
                .parameter(parameter, format!("$response.body#{pointer}"))
                .build();
            (id, link)
        })
        .collect()
}

fn operation_id(route: Route) -> String {
    route.name().trim_start_matches("api-").replace('-', "_")
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(reference(crate::error::ErrorBody::name().as_ref()))),
    )
}

fn method_of(method: &str) -> HttpMethod {
    match method {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn build() -> utoipa::openapi::OpenApi {
    let mut schemas: Named = Vec::new();
    let mut paths = PathsBuilder::new();
    for &route in Route::ALL {
        let (method, path) = route.endpoint();
        // API Gateway's greedy `{path+}` is a plain parameter in OpenAPI.
        let path = path.replace("+}", "}");
        let operation = operation(route, method, &path, &mut schemas);
        paths = paths.path(path, PathItem::new(method_of(method), operation));
    }
    schemas.extend(named::<crate::error::ErrorBody>().1);
    // One entry per name (a schema shared by several routes comes once).
    let schemas: BTreeMap<String, RefOr<Schema>> = schemas.into_iter().collect();
    let integer_header = |description: Option<&str>| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer))
            .description(description)
            .build()
    };
    let text_header = || HeaderBuilder::new().schema(text()).build();
    let too_many = error_response("Too many requests in this minute.")
        .header(
            "Retry-After",
            integer_header(Some("Seconds until a request may succeed.")),
        )
        .header("RateLimit", text_header())
        .header("RateLimit-Policy", text_header());
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .build();
    let components = ComponentsBuilder::new()
        .security_scheme("bearer", SecurityScheme::Http(bearer))
        .schemas_from_iter(schemas)
        .response("BadRequest", error_response("The request is malformed; `field` says where."))
        .response("Unauthorized", error_response("No access token, or one that does not hold."))
        .response("NotFound", error_response("No such resource of the caller's."))
        .response("Conflict", error_response("The resource's state does not allow this now."))
        .response("PayloadTooLarge", error_response("The body is over 64 KiB."))
        .response("Unprocessable", error_response("Well formed but refused (an idempotency key reused with another body, an upload that does not match its grant)."))
        .response("TooManyRequests", too_many)
        .response("Unavailable", error_response("Something outside the request failed (the mail provider, the account look-up); try again later."));
    let info = InfoBuilder::new()
        .title("Autocrew API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some("The REST API of Autocrew: sign-in, projects, runs, tasks, artifacts, uploads, conversations, approvals, costs and analytics. Live updates come over the WebSocket API with the same access token."));
    OpenApiBuilder::new()
        .info(info)
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autocrew_shared::domain::limits;
    use autocrew_shared::domain::requests::{NewCommand, NewMessage, NewProject, ProjectPatch};
    use serde_json::json;

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

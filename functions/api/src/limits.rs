//! Rate limits, counted before a route runs: 100 requests a minute per user and 1,000 per
//! IP address, and tighter per-IP limits on the routes that create accounts, check
//! passwords or send email; a project's analytics batches share 1,200 a minute. A refused request gets 429 with `Retry-After`; every answer
//! carries the binding bucket in `RateLimit-Policy` and `RateLimit` (the IETF httpapi
//! draft's fields).

use crate::error::{ErrorBody, json_response};
use crate::{ApiState, Route};
use autocrew_shared::domain::UserId;
use autocrew_shared::ports::{Bucket, Standing};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// Requests a minute, per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_user: u32,
    pub per_ip: u32,
    pub signup_per_ip: u32,
    pub login_per_ip: u32,
    /// Password reset requests and verification resends: each sends an email.
    pub email_per_ip: u32,
    /// Analytics batches per project, whoever sends them (its pages' visitors and its app).
    pub ingest_per_project: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_user: 100,
            per_ip: 1000,
            signup_per_ip: 10,
            login_per_ip: 20,
            email_per_ip: 5,
            ingest_per_project: 1200,
        }
    }
}

/// The caller's address as API Gateway saw it.
fn source_ip(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    }
    .unwrap_or_else(|| "unknown".to_owned())
}

/// The buckets a request to `route` counts against; `project` is the path's project, which
/// the analytics batches of one project share.
pub fn buckets(
    limits: &Limits,
    route: Route,
    (ip, project): (&str, Option<&str>),
    user: Option<UserId>,
) -> Vec<Bucket> {
    let mut buckets = vec![Bucket {
        key: format!("ip:{ip}"),
        limit: limits.per_ip,
        policy: "ip",
    }];
    if let Some(user) = user {
        buckets.push(Bucket {
            key: format!("user:{user}"),
            limit: limits.per_user,
            policy: "user",
        });
    }
    let tighter = match route {
        Route::Signup => Some(("signup", limits.signup_per_ip)),
        Route::Login | Route::ResetPassword => Some(("login", limits.login_per_ip)),
        Route::RequestPasswordReset | Route::ResendVerification => {
            Some(("email", limits.email_per_ip))
        }
        _ => None,
    };
    if let Some((policy, limit)) = tighter {
        buckets.push(Bucket {
            key: format!("{policy}:{ip}"),
            limit,
            policy,
        });
    }
    if let (Route::IngestAnalytics, Some(project)) = (route, project) {
        buckets.push(Bucket {
            key: format!("ingest:{project}"),
            limit: limits.ingest_per_project,
            policy: "ingest",
        });
    }
    buckets
}

/// Counts the request; `Err` is the 429 to answer with. When the counters cannot be
/// reached the request goes on (logged): limits protect the service, they are not a
/// reason to refuse it.
pub async fn check(
    state: &ApiState,
    route: Route,
    request: &Request,
    user: Option<UserId>,
) -> Result<Option<Standing>, Response<Body>> {
    let project = request
        .path_parameters_ref()
        .and_then(|p| p.first("project_id"));
    let buckets = buckets(&state.limits, route, (&source_ip(request), project), user);
    let standing = match state.limiter.hit(&buckets).await {
        Ok(standing) => standing,
        Err(e) => {
            tracing::warn!(error = %e, "rate limit counters unavailable; letting the request through");
            return Ok(None);
        }
    };
    if standing.allowed {
        return Ok(Some(standing));
    }
    let mut response = json_response(
        429,
        &ErrorBody::new(format!(
            "too many requests: the {} limit is {} a minute; try again in {} s",
            standing.policy, standing.limit, standing.reset_secs
        )),
    );
    if let Ok(value) = standing.reset_secs.to_string().parse() {
        response.headers_mut().insert("retry-after", value);
    }
    describe(&mut response, &standing);
    Err(response)
}

/// Adds `RateLimit-Policy` and `RateLimit` for the binding bucket.
pub fn describe(response: &mut Response<Body>, standing: &Standing) {
    let headers = response.headers_mut();
    if let Ok(value) = format!("\"{}\";q={};w=60", standing.policy, standing.limit).parse() {
        headers.insert("ratelimit-policy", value);
    }
    if let Ok(value) = format!(
        "\"{}\";r={};t={}",
        standing.policy, standing.remaining, standing.reset_secs
    )
    .parse()
    {
        headers.insert("ratelimit", value);
    }
}

//! Connecting X and LinkedIn by OAuth's web flow. The app starts a flow and opens the link
//! it gets; the user consents at the service, which sends the browser to the public
//! `GET /oauth/callback`. That page (or the app's own `return_to` link) says how it went,
//! and the app can ask too (`GET /me/connections/oauth/{flow_id}`).

use crate::connections::{flow_error, service_of};
use crate::error::json_response;
use crate::request::{caller, json_body, path_param, query_text};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::connections::Connection;
use autocrew_shared::domain::requests::WebFlowBody;
use autocrew_shared::domain::{Service, WebFlowId};
use autocrew_shared::ports::{WebFlow, WebFlowStatus};
use autocrew_shared::services::AccountError;
use autocrew_shared::services::web_flows::Callback;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// The callback's path, as `template.yaml` routes it.
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// The longest state and code taken (ours is 43 characters; services' codes are a few
/// hundred at most).
const MAX_PARAM_CHARS: usize = 2048;

/// `POST /me/connections/oauth`: 201 with the link to the service's consent page.
pub async fn start_web_flow(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let body: WebFlowBody = json_body(request)?;
    let service = service_of(&body.service)?;
    let return_to = match body.return_to.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(link) => Some(checked_return_to(link)?),
    };
    let redirect_uri = callback_url(state)?;
    let started = state
        .connected
        .start_web_flow(user, service, &redirect_uri, return_to.as_deref())
        .await
        .map_err(|e| flow_error(service, e))?;
    let view = WebFlowStarted {
        flow: WebFlowView::of(&started.flow),
        authorize_url: started.authorize_url,
        redirect_uri,
    };
    Ok(json_response(201, &view))
}

/// `GET /me/connections/oauth/{flow_id}`: how the caller's flow stands, with the
/// connection once it connected.
pub async fn get_web_flow(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let id = path_param(request, "flow_id", WebFlowId::parse)?;
    let flow = state
        .connected
        .web_flow(user, id.0)
        .await
        .map_err(|e| match e {
            AccountError::FlowNotFound => ApiError::NotFound("OAuth flow"),
            e => flow_error(Service::X, e),
        })?;
    let mut view = WebFlowView::of(&flow);
    if let Some(id) = flow.connection {
        let connections = state.connected.store().connections(user).await?;
        view.connection = connections.into_iter().find(|c| c.id == id);
    }
    Ok(json_response(200, &view))
}

/// How a web flow stands, as the app sees it.
#[derive(Serialize, utoipa::ToSchema)]
struct WebFlowView {
    flow_id: WebFlowId,
    service: Service,
    status: FlowState,
    /// Why it failed, in words for the user.
    error: Option<String>,
    expires_at: DateTime<Utc>,
    /// The connection, once connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<Connection>,
}

/// A web flow's state: its stored status, or `expired` once a pending one lapsed.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum FlowState {
    Pending,
    Exchanging,
    Connected,
    Failed,
    Expired,
}

impl WebFlowView {
    fn of(flow: &WebFlow) -> WebFlowView {
        let status = match flow.status {
            WebFlowStatus::Pending if flow.expires_at <= Utc::now() => FlowState::Expired,
            WebFlowStatus::Pending => FlowState::Pending,
            WebFlowStatus::Exchanging => FlowState::Exchanging,
            WebFlowStatus::Connected => FlowState::Connected,
            WebFlowStatus::Failed => FlowState::Failed,
        };
        WebFlowView {
            flow_id: WebFlowId(flow.id),
            service: flow.service,
            status,
            error: flow.reason.clone(),
            expires_at: flow.expires_at,
            connection: None,
        }
    }
}

/// A started web flow: the consent page to open, and where the service sends the browser
/// back.
#[derive(Serialize, utoipa::ToSchema)]
struct WebFlowStarted {
    #[serde(flatten)]
    flow: WebFlowView,
    authorize_url: String,
    redirect_uri: String,
}

/// The public callback's URL: the service sends the browser back to this deployment's
/// API (`PUBLIC_BASE_URL`, which the service's app must list as a redirect URL).
fn callback_url(state: &ApiState) -> Result<String, ApiError> {
    state
        .public_base_url
        .as_deref()
        .map(|base| format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')))
        .ok_or_else(|| {
            ApiError::Unavailable(
                "connecting by OAuth needs PUBLIC_BASE_URL, the API's public URL the service sends the browser back to".into(),
            )
        })
}

/// An app's `return_to`: an https URL, a loopback http one (a CLI's listener), or an app
/// scheme (`autocrew://...`); never a scheme a browser would run or read from disk.
fn checked_return_to(link: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad("return_to", why.to_owned());
    if link.chars().count() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let url =
        reqwest::Url::parse(link).map_err(|e| bad(&format!("must be an absolute URL ({e})")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(bad("must use https (http only to a loopback address)")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss"
        | "filesystem" => {
            return Err(bad("must be an https URL or the app's own scheme"));
        }
        _ => {}
    }
    Ok(url.to_string())
}

/// `GET /oauth/callback?state=&code=` (or `&error=&error_description=`): public; the
/// service sends the user's browser here. Answers a page for a person (or sends the browser
/// on to the app's `return_to`), never JSON.
pub async fn callback(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let param =
        |name: &str| query_text(request, name).filter(|v| v.chars().count() <= MAX_PARAM_CHARS);
    let Some(flow_state) = param("state") else {
        return Ok(page(
            400,
            "Not connected",
            "This page needs the state the service sends back. Start connecting again from the app.",
        ));
    };
    let (code, error, description) = (param("code"), param("error"), param("error_description"));
    let callback = match (&code, &error) {
        (_, Some(error)) => Callback::Refused {
            error,
            description: description.as_deref(),
        },
        (Some(code), None) => Callback::Code(code),
        (None, None) => {
            return Ok(page(
                400,
                "Not connected",
                "The service sent back neither a code nor an error. Start connecting again from the app.",
            ));
        }
    };
    let (flow, connection) = match state.connected.finish_web_flow(&flow_state, callback).await {
        Ok(ended) => ended,
        Err(AccountError::FlowEnded(reason)) => {
            return Ok(page(400, "Not connected", &capitalised(&reason)));
        }
        Err(e) => {
            tracing::error!(error = %e, "could not finish an OAuth web flow");
            return Ok(page(
                503,
                "Not connected",
                "Autocrew could not finish connecting the account just now. Start connecting again from the app.",
            ));
        }
    };
    if let Some(link) = &flow.return_to {
        return Ok(back_to_app(link, &flow));
    }
    Ok(match connection {
        Some(connection) => {
            tracing::info!(user = %flow.user, service = %flow.service, connection = %connection.id, "account connected by its OAuth web flow");
            page(
                200,
                &format!("{} connected", named(flow.service)),
                &format!(
                    "Autocrew now acts on {} as {}. You can close this window and go back to the app.",
                    named(flow.service),
                    connection.account
                ),
            )
        }
        None => page(
            400,
            &format!("{} not connected", named(flow.service)),
            &capitalised(
                flow.reason
                    .as_deref()
                    .unwrap_or("the service did not connect"),
            ),
        ),
    })
}

/// A service's name as it writes it.
fn named(service: Service) -> &'static str {
    match service {
        Service::Github => "GitHub",
        Service::Vercel => "Vercel",
        Service::Expo => "Expo",
        Service::Resend => "Resend",
        Service::X => "X",
        Service::Linkedin => "LinkedIn",
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// 303 to the app's link, with how the flow ended in its query.
fn back_to_app(link: &str, flow: &WebFlow) -> Response<Body> {
    let Ok(mut url) = reqwest::Url::parse(link) else {
        return page(400, "Not connected", "The app's return link is not a URL.");
    };
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("status", flow.status.as_str())
            .append_pair("service", flow.service.as_str())
            .append_pair("flow_id", &flow.id.to_string());
        match (flow.connection, &flow.reason) {
            (Some(id), _) => query.append_pair("connection_id", &id.to_string()),
            (None, reason) => {
                query.append_pair("error", reason.as_deref().unwrap_or("not connected"))
            }
        };
    }
    Response::builder()
        .status(303)
        .header("location", url.as_str())
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// A small page for the person in the browser: nothing from the request is trusted as
/// markup, nothing runs, and the URL (which held the code) is not passed on as a referrer.
fn page(status: u16, title: &str, message: &str) -> Response<Body> {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style></head><body><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape(title),
        message = escape(message)
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        )
        .body(Body::Text(html))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_link_is_https_loopback_or_an_app_scheme() {
        assert!(checked_return_to("autocrew://connections").is_ok());
        assert!(checked_return_to("https://app.example.com/done").is_ok());
        assert!(checked_return_to("http://127.0.0.1:8765/cb").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "http://evil.example/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(checked_return_to(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let response = page(400, "<b>", "a \"quote\" & <script>");
        let Body::Text(html) = response.body() else {
            unreachable!()
        };
        assert!(
            html.contains("&lt;b&gt;")
                && html.contains("&lt;script&gt;")
                && !html.contains("<script>")
        );
    }
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, query, text};

    pub fn start_web_flow() -> Spec {
        Spec::new("Starts the service's OAuth web flow (X with PKCE, LinkedIn): open authorize_url in a browser; the service sends it back to redirect_uri (GET /oauth/callback), which connects the account and then shows a page or goes on to return_to. 422 for a service without one; 503 where no OAuth app is configured.")
            .body::<WebFlowBody>()
            .reply::<WebFlowStarted>(201)
            .creates("flow_id", "/flow_id")
    }

    pub fn get_web_flow() -> Spec {
        Spec::new("How a web flow stands: pending (the user has not come back), exchanging, connected (with the connection), failed (with the error) or expired.")
            .reply::<WebFlowView>(200)
    }

    pub fn callback() -> Spec {
        Spec::new("Public: where the service sends the browser after consent, with code and state (or error and error_description). Answers a page for a person (200 connected; 400 not), or 303 to the flow's return_to with status, service, flow_id and connection_id or error.")
            .query([
                query(
                    "state",
                    "The state the authorization link carried.",
                    text(),
                ),
                query("code", "The authorization code.", text()),
                query(
                    "error",
                    "Why there is no code (access_denied, ...).",
                    text(),
                ),
                query(
                    "error_description",
                    "The service's words for the error.",
                    text(),
                ),
            ])
            .html(200, "Connected: a page saying so.")
            .redirect(303, "On to the flow's return_to.")
            .html(400, "Not connected: a page saying why.")
            .html(503, "Not connected: a page saying why.")
    }
}

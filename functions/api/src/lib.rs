//! The HTTP API. Each route is its own Lambda function (`src/bin/`); they share this
//! library. Handlers take a `lambda_http::Request` as API Gateway's HTTP API (payload v2)
//! delivers it and always answer with a response: errors become statuses in `error.rs`.

mod agents;
mod approvals;
mod auth;
mod browse;
mod connections;
mod conversations;
mod costs;
mod error;
mod idempotent;
pub mod limits;
pub mod oauth;
pub mod openapi;
mod policies;
mod request;
mod routes;
pub mod state;
mod uploads;

pub use error::ApiError;
pub use state::ApiState;

use lambda_http::{Body, Request, Response};

/// The API's routes, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /auth/signup`: a user with a password, and a session.
    Signup,
    /// `POST /auth/login`: a new session.
    Login,
    /// `POST /auth/refresh`: the next access and refresh tokens.
    Refresh,
    /// `POST /auth/logout`: ends the refresh token's session.
    Logout,
    /// `GET /me`: the caller's account.
    GetMe,
    /// `POST /auth/verify-email`: uses the emailed verification code.
    VerifyEmail,
    /// `POST /auth/verify-email/resend`: a new verification code.
    ResendVerification,
    /// `POST /auth/password-reset`: a reset code by email.
    RequestPasswordReset,
    /// `POST /auth/password-reset/confirm`: a new password with the code.
    ResetPassword,
    /// `POST /projects`
    CreateProject,
    /// `POST /projects/{project_id}/commands`: starts a run, answers 202.
    PostCommand,
    /// `GET /runs/{run_id}`: the run with its tasks, artifacts and cost.
    GetRun,
    /// `GET /projects/{project_id}/events?after=N&limit=M`
    ListEvents,
    /// `GET /costs?by=run|project|agent|user|model&from=&to=&project_id=`
    GetCosts,
    /// `PATCH /me`: the caller's settings (the semantic cache opt-in).
    UpdateMe,
    /// `POST /runs/{run_id}/cancel`
    CancelRun,
    /// `POST /runs/{run_id}/resume`: a failed or cancelled run goes on where it stopped.
    ResumeRun,
    /// `POST /tasks/{task_id}/retry`: a failed task starts again.
    RetryTask,
    /// `GET /approvals/{approval_id}`
    GetApproval,
    /// `POST /approvals/{approval_id}`: approve or reject, quoting the payload hash.
    DecideApproval,
    /// `GET /sites/{project_id}/{path+}`: a published file, public.
    GetSite,
    /// `GET /analytics`: runs per day, success rate, median duration, cost per task and per agent, cache hit rate (`?from=&to=&project_id=`).
    GetAnalytics,
    /// `GET /me/export`: a link to a JSON export of everything kept about the caller.
    ExportMe,
    /// `DELETE /me`: erases the account, its rows and its files.
    DeleteMe,
    /// `GET /projects`: the caller's projects, newest first (`?archived=&cursor=&limit=`).
    ListProjects,
    /// `GET /projects/{project_id}`: one project.
    GetProject,
    /// `PATCH /projects/{project_id}`: name, description, archived.
    UpdateProject,
    /// `DELETE /projects/{project_id}`: the project, its runs and its files.
    DeleteProject,
    /// `GET /runs`: the caller's runs across projects (`?status=&project_id=&cursor=&limit=`).
    ListRuns,
    /// `GET /projects/{project_id}/runs`: a project's runs (`?status=&cursor=&limit=`).
    ListProjectRuns,
    /// `GET /runs/{run_id}/tasks`: a run's tasks with their attempts.
    ListRunTasks,
    /// `GET /tasks/{task_id}`: one task with its attempts.
    GetTask,
    /// `GET /projects/{project_id}/artifacts`: a project's artifacts with download links (`?run_id=&cursor=&limit=`).
    ListArtifacts,
    /// `GET /projects/{project_id}/messages`: the project's conversation, newest first.
    ListMessages,
    /// `POST /projects/{project_id}/messages`: a message to the orchestrator (or a command).
    PostMessage,
    /// `POST /projects/{project_id}/uploads`: a presigned PUT for one file.
    CreateUpload,
    /// `POST /uploads/{upload_id}/complete`: the uploaded file, checked, becomes an artifact.
    CompleteUpload,
    /// `GET /agents`: the agents' profiles and the models each would use now.
    ListAgents,
    /// `GET /openapi.json`: this API's OpenAPI 3.1 document, public.
    GetOpenApi,
    /// `GET /me/connections`: the caller's connected accounts, credentials never shown.
    ListConnections,
    /// `POST /me/connections`: connects a service with a token it accepts.
    Connect,
    /// `DELETE /me/connections/{connection_id}`: forgets the connection and its token.
    Disconnect,
    /// `POST /me/connections/device`: starts a service's OAuth device flow (GitHub).
    StartDeviceFlow,
    /// `POST /me/connections/device/{flow_id}`: one poll of a device flow.
    PollDeviceFlow,
    /// `POST /me/connections/oauth`: starts a service's OAuth web flow (X, LinkedIn).
    StartWebFlow,
    /// `GET /me/connections/oauth/{flow_id}`: how a web flow stands.
    GetWebFlow,
    /// `GET /oauth/callback`: public; the service sends the browser back here.
    OAuthCallback,
    /// `GET /me/policies`: whether each tool that acts in the world asks first.
    ListPolicies,
    /// `PUT /me/policies/{tool}`: ask before each call, or run on its own.
    SetPolicy,
    /// `GET /projects/{project_id}/deployments`: the project's deploys and builds.
    ListDeployments,
}

impl Route {
    pub const ALL: [Route; 50] = [
        Route::Signup,
        Route::Login,
        Route::Refresh,
        Route::Logout,
        Route::GetMe,
        Route::VerifyEmail,
        Route::ResendVerification,
        Route::RequestPasswordReset,
        Route::ResetPassword,
        Route::CreateProject,
        Route::PostCommand,
        Route::GetRun,
        Route::ListEvents,
        Route::GetCosts,
        Route::UpdateMe,
        Route::CancelRun,
        Route::ResumeRun,
        Route::RetryTask,
        Route::GetApproval,
        Route::DecideApproval,
        Route::GetSite,
        Route::GetAnalytics,
        Route::ExportMe,
        Route::DeleteMe,
        Route::ListProjects,
        Route::GetProject,
        Route::UpdateProject,
        Route::DeleteProject,
        Route::ListRuns,
        Route::ListProjectRuns,
        Route::ListRunTasks,
        Route::GetTask,
        Route::ListArtifacts,
        Route::ListMessages,
        Route::PostMessage,
        Route::CreateUpload,
        Route::CompleteUpload,
        Route::ListAgents,
        Route::GetOpenApi,
        Route::ListConnections,
        Route::Connect,
        Route::Disconnect,
        Route::StartDeviceFlow,
        Route::PollDeviceFlow,
        Route::StartWebFlow,
        Route::GetWebFlow,
        Route::OAuthCallback,
        Route::ListPolicies,
        Route::SetPolicy,
        Route::ListDeployments,
    ];

    /// The route a binary serves (`api-get-run` → `GetRun`).
    pub fn from_name(binary: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.name() == binary)
    }

    /// Whether the route acts for a signed-in user (takes an access token). The others
    /// create or use credentials, or serve published files to anyone.
    pub fn signed_in(self) -> bool {
        !matches!(
            self,
            Route::Signup
                | Route::Login
                | Route::Refresh
                | Route::Logout
                | Route::VerifyEmail
                | Route::RequestPasswordReset
                | Route::ResetPassword
                | Route::GetSite
                | Route::GetOpenApi
                | Route::OAuthCallback
        )
    }

    /// The method and path API Gateway routes to the function, as in `template.yaml`.
    pub fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            Route::Signup => ("POST", "/auth/signup"),
            Route::Login => ("POST", "/auth/login"),
            Route::Refresh => ("POST", "/auth/refresh"),
            Route::Logout => ("POST", "/auth/logout"),
            Route::GetMe => ("GET", "/me"),
            Route::VerifyEmail => ("POST", "/auth/verify-email"),
            Route::ResendVerification => ("POST", "/auth/verify-email/resend"),
            Route::RequestPasswordReset => ("POST", "/auth/password-reset"),
            Route::ResetPassword => ("POST", "/auth/password-reset/confirm"),
            Route::CreateProject => ("POST", "/projects"),
            Route::PostCommand => ("POST", "/projects/{project_id}/commands"),
            Route::GetRun => ("GET", "/runs/{run_id}"),
            Route::ListEvents => ("GET", "/projects/{project_id}/events"),
            Route::GetCosts => ("GET", "/costs"),
            Route::UpdateMe => ("PATCH", "/me"),
            Route::CancelRun => ("POST", "/runs/{run_id}/cancel"),
            Route::ResumeRun => ("POST", "/runs/{run_id}/resume"),
            Route::RetryTask => ("POST", "/tasks/{task_id}/retry"),
            Route::GetApproval => ("GET", "/approvals/{approval_id}"),
            Route::DecideApproval => ("POST", "/approvals/{approval_id}"),
            Route::GetSite => ("GET", "/sites/{project_id}/{path+}"),
            Route::GetAnalytics => ("GET", "/analytics"),
            Route::ExportMe => ("GET", "/me/export"),
            Route::DeleteMe => ("DELETE", "/me"),
            Route::ListProjects => ("GET", "/projects"),
            Route::GetProject => ("GET", "/projects/{project_id}"),
            Route::UpdateProject => ("PATCH", "/projects/{project_id}"),
            Route::DeleteProject => ("DELETE", "/projects/{project_id}"),
            Route::ListRuns => ("GET", "/runs"),
            Route::ListProjectRuns => ("GET", "/projects/{project_id}/runs"),
            Route::ListRunTasks => ("GET", "/runs/{run_id}/tasks"),
            Route::GetTask => ("GET", "/tasks/{task_id}"),
            Route::ListArtifacts => ("GET", "/projects/{project_id}/artifacts"),
            Route::ListMessages => ("GET", "/projects/{project_id}/messages"),
            Route::PostMessage => ("POST", "/projects/{project_id}/messages"),
            Route::CreateUpload => ("POST", "/projects/{project_id}/uploads"),
            Route::CompleteUpload => ("POST", "/uploads/{upload_id}/complete"),
            Route::ListAgents => ("GET", "/agents"),
            Route::GetOpenApi => ("GET", "/openapi.json"),
            Route::ListConnections => ("GET", "/me/connections"),
            Route::Connect => ("POST", "/me/connections"),
            Route::Disconnect => ("DELETE", "/me/connections/{connection_id}"),
            Route::StartDeviceFlow => ("POST", "/me/connections/device"),
            Route::PollDeviceFlow => ("POST", "/me/connections/device/{flow_id}"),
            Route::StartWebFlow => ("POST", "/me/connections/oauth"),
            Route::GetWebFlow => ("GET", "/me/connections/oauth/{flow_id}"),
            Route::OAuthCallback => ("GET", oauth::CALLBACK_PATH),
            Route::ListPolicies => ("GET", "/me/policies"),
            Route::SetPolicy => ("PUT", "/me/policies/{tool}"),
            Route::ListDeployments => ("GET", "/projects/{project_id}/deployments"),
        }
    }

    /// The function's name, as in `template.yaml` and the binaries.
    pub fn name(self) -> &'static str {
        match self {
            Route::Signup => "api-signup",
            Route::Login => "api-login",
            Route::Refresh => "api-refresh",
            Route::Logout => "api-logout",
            Route::GetMe => "api-get-me",
            Route::VerifyEmail => "api-verify-email",
            Route::ResendVerification => "api-resend-verification",
            Route::RequestPasswordReset => "api-request-password-reset",
            Route::ResetPassword => "api-reset-password",
            Route::CreateProject => "api-create-project",
            Route::PostCommand => "api-post-command",
            Route::GetRun => "api-get-run",
            Route::ListEvents => "api-list-events",
            Route::GetCosts => "api-get-costs",
            Route::UpdateMe => "api-update-me",
            Route::CancelRun => "api-cancel-run",
            Route::ResumeRun => "api-resume-run",
            Route::RetryTask => "api-retry-task",
            Route::GetApproval => "api-get-approval",
            Route::DecideApproval => "api-decide-approval",
            Route::GetSite => "api-get-site",
            Route::GetAnalytics => "api-get-analytics",
            Route::ExportMe => "api-export-me",
            Route::DeleteMe => "api-delete-me",
            Route::ListProjects => "api-list-projects",
            Route::GetProject => "api-get-project",
            Route::UpdateProject => "api-update-project",
            Route::DeleteProject => "api-delete-project",
            Route::ListRuns => "api-list-runs",
            Route::ListProjectRuns => "api-list-project-runs",
            Route::ListRunTasks => "api-list-run-tasks",
            Route::GetTask => "api-get-task",
            Route::ListArtifacts => "api-list-artifacts",
            Route::ListMessages => "api-list-messages",
            Route::PostMessage => "api-post-message",
            Route::CreateUpload => "api-create-upload",
            Route::CompleteUpload => "api-complete-upload",
            Route::ListAgents => "api-list-agents",
            Route::GetOpenApi => "api-get-openapi",
            Route::ListConnections => "api-list-connections",
            Route::Connect => "api-connect",
            Route::Disconnect => "api-disconnect",
            Route::StartDeviceFlow => "api-start-device-flow",
            Route::PollDeviceFlow => "api-poll-device-flow",
            Route::StartWebFlow => "api-start-web-flow",
            Route::GetWebFlow => "api-get-web-flow",
            Route::OAuthCallback => "api-oauth-callback",
            Route::ListPolicies => "api-list-policies",
            Route::SetPolicy => "api-set-policy",
            Route::ListDeployments => "api-list-deployments",
        }
    }
}

/// Handles one request for `route`: counts it against its rate limits, then runs it (once
/// per `Idempotency-Key` for POSTs).
pub async fn handle(state: &ApiState, route: Route, mut request: Request) -> Response<Body> {
    if let Some(refused) = request::too_large(&request) {
        return refused;
    }
    // The bearer token is checked once; the limits, the keys and the route share the outcome.
    let user = request::verify(state, &mut request).await;
    let standing = match limits::check(state, route, &request, user).await {
        Ok(standing) => standing,
        Err(refused) => return refused,
    };
    let mut response = idempotent::once(state, route, request, user, |request| {
        dispatch(state, route, request)
    })
    .await;
    if let Some(standing) = standing {
        limits::describe(&mut response, &standing);
    }
    response
}

async fn dispatch(state: &ApiState, route: Route, request: Request) -> Response<Body> {
    let result = match route {
        Route::Signup => auth::signup(state, &request).await,
        Route::Login => auth::login(state, &request).await,
        Route::Refresh => auth::refresh(state, &request).await,
        Route::Logout => auth::logout(state, &request).await,
        Route::GetMe => auth::get_me(state, &request).await,
        Route::VerifyEmail => auth::verify_email(state, &request).await,
        Route::ResendVerification => auth::resend_verification(state, &request).await,
        Route::RequestPasswordReset => auth::request_password_reset(state, &request).await,
        Route::ResetPassword => auth::reset_password(state, &request).await,
        Route::CreateProject => routes::create_project(state, &request).await,
        Route::PostCommand => routes::post_command(state, &request).await,
        Route::GetRun => routes::get_run(state, &request).await,
        Route::ListEvents => routes::list_events(state, &request).await,
        Route::GetCosts => costs::get_costs(state, &request).await,
        Route::UpdateMe => costs::update_me(state, &request).await,
        Route::CancelRun => routes::cancel_run(state, &request).await,
        Route::ResumeRun => routes::resume_run(state, &request).await,
        Route::RetryTask => routes::retry_task(state, &request).await,
        Route::GetApproval => approvals::get_approval(state, &request).await,
        Route::DecideApproval => approvals::decide(state, &request).await,
        Route::GetSite => approvals::get_site(state, &request).await,
        Route::GetAnalytics => costs::get_analytics(state, &request).await,
        Route::ExportMe => auth::export_me(state, &request).await,
        Route::DeleteMe => auth::delete_me(state, &request).await,
        Route::ListProjects => browse::list_projects(state, &request).await,
        Route::GetProject => browse::get_project(state, &request).await,
        Route::UpdateProject => browse::update_project(state, &request).await,
        Route::DeleteProject => browse::delete_project(state, &request).await,
        Route::ListRuns => browse::list_runs(state, &request).await,
        Route::ListProjectRuns => browse::list_project_runs(state, &request).await,
        Route::ListRunTasks => browse::list_run_tasks(state, &request).await,
        Route::GetTask => browse::get_task(state, &request).await,
        Route::ListArtifacts => browse::list_artifacts(state, &request).await,
        Route::ListMessages => conversations::list_messages(state, &request).await,
        Route::PostMessage => conversations::post_message(state, &request).await,
        Route::CreateUpload => uploads::create_upload(state, &request).await,
        Route::CompleteUpload => uploads::complete_upload(state, &request).await,
        Route::ListAgents => agents::list_agents(state, &request).await,
        Route::GetOpenApi => Ok(error::json_response(200, openapi::document())),
        Route::ListConnections => connections::list_connections(state, &request).await,
        Route::Connect => connections::connect(state, &request).await,
        Route::Disconnect => connections::disconnect(state, &request).await,
        Route::StartDeviceFlow => connections::start_device_flow(state, &request).await,
        Route::PollDeviceFlow => connections::poll_device_flow(state, &request).await,
        Route::StartWebFlow => oauth::start_web_flow(state, &request).await,
        Route::GetWebFlow => oauth::get_web_flow(state, &request).await,
        Route::OAuthCallback => oauth::callback(state, &request).await,
        Route::ListPolicies => policies::list_policies(state, &request).await,
        Route::SetPolicy => policies::set_policy(state, &request).await,
        Route::ListDeployments => policies::list_deployments(state, &request).await,
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The Lambda entry point for `route`: tracing, configuration, clients, then the runtime.
/// The binaries run it on a single-threaded runtime: an instance takes one request at a
/// time, and a second thread only adds wake-ups between threads (`make bench-api` measured
/// 0.133 ms of CPU per request on two threads, 0.072 ms on one).
pub async fn run_lambda(route: Route) -> Result<(), lambda_http::Error> {
    autocrew_shared::telemetry::init();
    let state = ApiState::from_env(route).await?;
    lambda_http::run(lambda_http::service_fn(|request: Request| {
        let state = &state;
        async move { Ok::<_, lambda_http::Error>(handle(state, route, request).await) }
    }))
    .await
}

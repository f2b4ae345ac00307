//! Sign-up, login, refresh, logout, `GET /me`, email verification and password reset.
//!
//! A session is a pair: a 15-minute access token (a JWT, verified without the database)
//! and a 30-day refresh token that rotates on every use (a replayed one revokes the whole
//! session). A wrong password and an unknown email get the same answer after the same
//! work (an argon2id verification either way).

use crate::error::json_response;
use crate::request::{caller, json_body};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::paging::{Cursor, MAX_LIMIT, Page, Paged};
use autocrew_shared::domain::records::User;
use autocrew_shared::domain::requests::{
    Login, RefreshBody, ResetConfirm, ResetRequest, SignUp, TokenBody,
};
use autocrew_shared::domain::{MicroUsd, UserId};
use autocrew_shared::ports::{
    AccountStore, BlobStore, Browse, Email, EmailPurpose, Mailer, ProjectStore, Publisher,
    Rotation, RunControl, StoreError,
};
use autocrew_shared::services::access::KeyRing;
use autocrew_shared::services::passwords;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// The same words for a wrong password and an unknown email.
const BAD_CREDENTIALS: &str = "the email or the password is wrong";

/// An email address, trimmed and lower-cased, or a 400 naming `field`.
pub fn email_address(field: &str, text: &str) -> Result<String, ApiError> {
    let email = text.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
    if !valid {
        return Err(ApiError::bad(
            field,
            "must be an email address like ana@example.com",
        ));
    }
    Ok(email)
}

fn password_field(field: &str, password: &str) -> Result<(), ApiError> {
    passwords::check(password).map_err(|message| ApiError::bad(field, message))
}

/// Hashing takes tens of milliseconds of CPU: off the async workers.
async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|e| ApiError::Internal(e.into()))
}

async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || passwords::verify(&password, stored.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// An access token and the refresh token that gets the next one.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Session {
    /// A JWT; send it as `Authorization: Bearer`.
    access_token: String,
    token_type: TokenType,
    /// Seconds the access token lives.
    expires_in: u64,
    /// Works once: `POST /auth/refresh` answers the next pair.
    refresh_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
enum TokenType {
    Bearer,
}

/// A session with the account it is for (log-in).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SignedIn {
    #[serde(flatten)]
    session: Session,
    user: User,
}

/// A new account's session, and whether its verification email went out.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SignedUp {
    #[serde(flatten)]
    session: Session,
    user: User,
    /// `sent`, or why not and how to ask again.
    verification_email: String,
}

/// The caller's account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserAnswer {
    pub user: User,
}

/// A verification code went out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VerificationSent {
    /// `sent`.
    verification_email: &'static str,
    /// The address it went to.
    pub to: String,
}

/// A password reset was asked for; it never says whether the address has an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ResetRequested {
    pub status: &'static str,
}

/// Where the caller's export can be downloaded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ExportLink {
    /// A presigned GET of the JSON export.
    pub url: String,
    /// Seconds the link works.
    pub expires_in: u64,
    pub size_bytes: u64,
}

/// What the sign-in routes use: the accounts, the signing keys, the mailer, the trial credit new
/// users get, and where emailed links point.
pub(crate) struct SignIn<'a> {
    pub accounts: &'a dyn AccountStore,
    pub keys: &'a KeyRing,
    pub mailer: &'a dyn Mailer,
    pub trial_credit: MicroUsd,
    pub app_link_base: Option<&'a str>,
}

impl ApiState {
    fn sign_in(&self) -> SignIn<'_> {
        SignIn {
            accounts: &*self.accounts,
            keys: &self.keys,
            mailer: &*self.mailer,
            trial_credit: self.trial_credit,
            app_link_base: self.app_link_base.as_deref(),
        }
    }
}

/// A new access token for `user` with `refresh_token`, as every sign-in answers.
fn session(keys: &KeyRing, user: UserId, refresh_token: String) -> Session {
    let access = keys.issue(user);
    Session {
        access_token: access.access_token,
        token_type: TokenType::Bearer,
        expires_in: access.expires_in,
        refresh_token,
    }
}

/// The text of an email carrying `token`, with a link when the app's link base is set.
fn token_email(app_link_base: Option<&str>, to: &str, purpose: EmailPurpose, token: &str) -> Email {
    let (subject, what, path) = match purpose {
        EmailPurpose::VerifyEmail => (
            "Verify your Autocrew email",
            "To verify this email address",
            "verify-email",
        ),
        EmailPurpose::ResetPassword => (
            "Reset your Autocrew password",
            "To choose a new password",
            "reset-password",
        ),
    };
    let hours = purpose.ttl().as_secs() / 3600;
    let link = app_link_base
        .map(|base| {
            let slash = if base.ends_with('/') { "" } else { "/" };
            format!("\nor open {base}{slash}{path}?token={token}\n")
        })
        .unwrap_or_default();
    Email {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: format!(
            "{what}, use this code in the Autocrew app:\n\n    {token}\n{link}\nIt works once, within {hours} hour{}. If you did not ask for it, ignore this email.\n",
            if hours == 1 { "" } else { "s" }
        ),
    }
}

/// Sends a one-time token by email; says whether it went out (a failed send is logged and
/// can be asked for again).
async fn send_token(
    ports: &SignIn<'_>,
    user: &User,
    purpose: EmailPurpose,
) -> Result<bool, ApiError> {
    let token = ports.accounts.issue_email_token(user.id, purpose).await?;
    let email = token_email(ports.app_link_base, &user.email, purpose, &token);
    match ports.mailer.send(&email).await {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::warn!(error = %e, user = %user.id, purpose = purpose.as_str(), "could not send an email");
            Ok(false)
        }
    }
}

/// `POST /auth/signup`: 201 with the user and a session; a verification email goes out.
pub async fn signup(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: SignUp = json_body(request)?;
    Ok(json_response(
        201,
        &signed_up(&state.sign_in(), body).await?,
    ))
}

/// Checks the new account's fields, creates it with a session, and sends the verification
/// code.
pub(crate) async fn signed_up(ports: &SignIn<'_>, body: SignUp) -> Result<SignedUp, ApiError> {
    let email = email_address("email", &body.email)?;
    password_field("password", &body.password)?;
    if body.display_name.chars().count() > 100 {
        return Err(ApiError::bad(
            "display_name",
            "must be at most 100 characters",
        ));
    }
    let password_hash = hash(body.password).await?;
    let user = ports
        .accounts
        .sign_up(
            &email,
            body.display_name.trim(),
            ports.trial_credit,
            &password_hash,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict(format!(
                "a user with email {email} already exists; log in instead"
            )),
            other => other.into(),
        })?;
    let refresh = ports.accounts.open_session(user.id).await?;
    let sent = send_token(ports, &user, EmailPurpose::VerifyEmail).await?;
    Ok(SignedUp {
        session: session(ports.keys, user.id, refresh),
        user,
        verification_email: match sent {
            true => "sent",
            false => "not sent; ask again with POST /auth/verify-email/resend",
        }
        .into(),
    })
}

/// `POST /auth/login`: 200 with the user and a new session, or 401.
pub async fn login(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: Login = json_body(request)?;
    Ok(json_response(
        200,
        &logged_in(&state.sign_in(), body).await?,
    ))
}

/// A new session for the email's user if the password is theirs; the same 401 otherwise.
pub(crate) async fn logged_in(ports: &SignIn<'_>, body: Login) -> Result<SignedIn, ApiError> {
    // A malformed address cannot have an account: same answer as a wrong password, after
    // the same work.
    let email = email_address("email", &body.email).ok();
    let found = match &email {
        Some(email) => ports.accounts.credentials(email).await?,
        None => None,
    };
    let (user, stored) = match found {
        Some((user, stored)) => (Some(user), stored),
        None => (None, None),
    };
    if !verify(body.password, stored).await? {
        return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
    }
    let user = user.ok_or_else(|| ApiError::Unauthorized(BAD_CREDENTIALS.into()))?;
    let refresh = ports.accounts.open_session(user.id).await?;
    Ok(SignedIn {
        session: session(ports.keys, user.id, refresh),
        user,
    })
}

/// `POST /auth/refresh`: the next pair; the token presented stops working.
pub async fn refresh(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: RefreshBody = json_body(request)?;
    Ok(json_response(
        200,
        &refreshed(&state.sign_in(), &body).await?,
    ))
}

/// The next pair for a current refresh token; a replayed one revokes its session.
pub(crate) async fn refreshed(ports: &SignIn<'_>, body: &RefreshBody) -> Result<Session, ApiError> {
    match ports.accounts.rotate(body.refresh_token.trim()).await? {
        Rotation::Rotated {
            user,
            refresh_token,
        } => Ok(session(ports.keys, user, refresh_token)),
        Rotation::Refused => Err(ApiError::Unauthorized(
            "the refresh token is unknown, expired or revoked; log in again".into(),
        )),
        Rotation::Reused { user } => {
            tracing::warn!(user = %user, "a rotated refresh token was presented again; its session is revoked");
            Err(ApiError::Unauthorized(
                "this refresh token was already used, so the session is revoked; log in again"
                    .into(),
            ))
        }
    }
}

/// `POST /auth/logout`: revokes the session of the refresh token; 204.
pub async fn logout(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: RefreshBody = json_body(request)?;
    logged_out(&*state.accounts, &body).await?;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// Ends the refresh token's session. An unknown token is not an error: the session is
/// over either way.
pub(crate) async fn logged_out(
    accounts: &dyn AccountStore,
    body: &RefreshBody,
) -> Result<(), ApiError> {
    accounts.revoke_session(body.refresh_token.trim()).await?;
    Ok(())
}

/// `GET /me`: the caller's account.
pub async fn get_me(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    Ok(json_response(200, &me(&*state.projects, user).await?))
}

/// `user`'s account; a deleted one is a 401 (its token outlived it).
pub(crate) async fn me(projects: &dyn ProjectStore, user: UserId) -> Result<UserAnswer, ApiError> {
    let user = projects.user(user).await.map_err(gone)?;
    Ok(UserAnswer { user })
}

/// A valid token whose user no longer exists (the account was deleted).
fn gone(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { what: "user", .. } => {
            ApiError::Unauthorized("the account no longer exists".into())
        }
        other => other.into(),
    }
}

/// `POST /auth/verify-email`: uses the emailed code.
pub async fn verify_email(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let body: TokenBody = json_body(request)?;
    let verified = verified(&*state.accounts, &*state.projects, &body).await?;
    Ok(json_response(200, &verified))
}

/// Uses the emailed verification code: the account, its email verified.
pub(crate) async fn verified(
    accounts: &dyn AccountStore,
    projects: &dyn ProjectStore,
    body: &TokenBody,
) -> Result<UserAnswer, ApiError> {
    match accounts.verify_email(body.token.trim()).await? {
        Some(user) => Ok(UserAnswer {
            user: projects.user(user).await?,
        }),
        None => Err(ApiError::bad(
            "token",
            "unknown, already used or expired; ask for a new one with POST /auth/verify-email/resend",
        )),
    }
}

/// `POST /auth/verify-email/resend`: a new code for the caller, unless already verified.
pub async fn resend_verification(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let sent = resent(&state.sign_in(), &*state.projects, user).await?;
    Ok(json_response(202, &sent))
}

/// A new verification code for `user`, unless the email is verified already.
pub(crate) async fn resent(
    ports: &SignIn<'_>,
    projects: &dyn ProjectStore,
    user: UserId,
) -> Result<VerificationSent, ApiError> {
    let user = projects.user(user).await.map_err(gone)?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "{} is already verified",
            user.email
        )));
    }
    if !send_token(ports, &user, EmailPurpose::VerifyEmail).await? {
        return Err(ApiError::Unavailable(
            "the email could not be sent; try again later".into(),
        ));
    }
    Ok(VerificationSent {
        verification_email: "sent",
        to: user.email,
    })
}

/// `POST /auth/password-reset`: always 202, so it never tells whether an account exists;
/// the account's owner gets a code by email.
pub async fn request_password_reset(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: ResetRequest = json_body(request)?;
    Ok(json_response(
        202,
        &reset_requested(&state.sign_in(), &body).await?,
    ))
}

/// Emails a reset code to the account with `body.email`, if there is one; the answer is
/// the same either way.
pub(crate) async fn reset_requested(
    ports: &SignIn<'_>,
    body: &ResetRequest,
) -> Result<ResetRequested, ApiError> {
    let email = email_address("email", &body.email)?;
    if let Some((user, _)) = ports.accounts.credentials(&email).await? {
        send_token(ports, &user, EmailPurpose::ResetPassword).await?;
    }
    Ok(ResetRequested {
        status: "if an account has this email, a reset code was sent to it",
    })
}

/// `POST /auth/password-reset/confirm`: the new password; every session is revoked, and
/// the answer is a new one.
pub async fn reset_password(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: ResetConfirm = json_body(request)?;
    Ok(json_response(200, &reset(&state.sign_in(), body).await?))
}

/// Sets the new password with the emailed code; every session is revoked and a new one
/// opened.
pub(crate) async fn reset(ports: &SignIn<'_>, body: ResetConfirm) -> Result<Session, ApiError> {
    password_field("password", &body.password)?;
    let password_hash = hash(body.password).await?;
    let Some(user) = ports
        .accounts
        .reset_password(body.token.trim(), &password_hash)
        .await?
    else {
        return Err(ApiError::bad(
            "token",
            "unknown, already used or expired; ask for a new one with POST /auth/password-reset",
        ));
    };
    let refresh = ports.accounts.open_session(user).await?;
    Ok(session(ports.keys, user, refresh))
}

/// How long an export's link works.
const EXPORT_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// `GET /me/export`: everything kept about the caller as one JSON file in the artifact
/// bucket (`exports/{user}/...`), and a link to it valid an hour.
pub async fn export_me(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    Ok(json_response(
        200,
        &exported(&*state.accounts, &*state.blobs, user).await?,
    ))
}

/// Everything kept about `user`, stored as one JSON file, and a link to it.
pub(crate) async fn exported(
    accounts: &dyn AccountStore,
    blobs: &dyn BlobStore,
    user: UserId,
) -> Result<ExportLink, ApiError> {
    let document = accounts.export(user).await.map_err(gone)?;
    let bytes =
        serde_json::to_vec_pretty(&document).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let size = bytes.len() as u64;
    let key = format!(
        "exports/{user}/{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    blobs
        .put(&key, bytes, "application/json")
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let url = blobs
        .presigned_get(&key, EXPORT_LINK_TTL)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(ExportLink {
        url,
        expires_in: EXPORT_LINK_TTL.as_secs(),
        size_bytes: size,
    })
}

/// `DELETE /me`: erases the caller's account (see `erased`); 204.
pub async fn delete_me(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let ports = Erasure {
        projects: &*state.projects,
        accounts: &*state.accounts,
        browse: &*state.browse,
        control: &*state.control,
        blobs: &*state.blobs,
        publisher: &state.relay,
    };
    let schedules = state.schedules.user_schedules(user).await?;
    erased(&ports, user).await?;
    crate::schedules::forget_timers(state, &schedules).await;
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// What erasing an account uses.
pub(crate) struct Erasure<'a> {
    pub projects: &'a dyn ProjectStore,
    pub accounts: &'a dyn AccountStore,
    pub browse: &'a dyn Browse,
    pub control: &'a dyn RunControl,
    pub blobs: &'a dyn BlobStore,
    /// Sends each cancelled run's stop and events at once.
    pub publisher: &'a dyn Publisher,
}

/// The items of every page of `list`, from the first.
async fn every<T, F, Fut>(mut list: F) -> Result<Vec<T>, ApiError>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = Result<Paged<T>, StoreError>>,
{
    let mut all = Vec::new();
    let mut page = Page {
        after: None,
        limit: MAX_LIMIT,
    };
    loop {
        let listed = list(page).await?;
        all.extend(listed.items);
        match listed.next_cursor {
            Some(cursor) => {
                page.after =
                    Some(Cursor::decode(&cursor).map_err(|e| ApiError::Internal(e.into()))?)
            }
            None => return Ok(all),
        }
    }
}

/// Cancels `user`'s runs still going, deletes every file of the account (artifacts,
/// published pages, exports), then the account and every row of it. Files go first: if
/// anything fails the account is still there to erase again.
pub(crate) async fn erased(ports: &Erasure<'_>, user: UserId) -> Result<(), ApiError> {
    ports.projects.user(user).await.map_err(gone)?;
    let mut projects = Vec::new();
    for archived in [false, true] {
        let listed = every(|page| ports.browse.projects(user, archived, page)).await?;
        projects.extend(listed.into_iter().map(|p| p.id));
    }
    let runs = every(|page| ports.browse.runs(user, None, None, page)).await?;
    for run in runs.iter().filter(|r| !r.status.is_terminal()) {
        match ports
            .control
            .cancel(run.id, "the account was deleted")
            .await
        {
            Ok(cancelled) => ports.publisher.publish(cancelled.effects).await,
            // It ended meanwhile.
            Err(StoreError::RunEnded { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut prefixes = vec![format!("exports/{user}/")];
    for project in &projects {
        prefixes.push(format!("projects/{project}/"));
        prefixes.push(format!("sites/{project}/"));
    }
    for prefix in &prefixes {
        ports
            .blobs
            .delete_prefix(prefix)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
    }
    ports.accounts.delete_account(user).await.map_err(gone)?;
    tracing::info!(user = %user, projects = projects.len(), "an account was deleted");
    Ok(())
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::Spec;

    pub fn signup() -> Spec {
        Spec::new("Sign up with email and password; a verification email goes out.")
            .body::<SignUp>()
            .reply::<SignedUp>(201)
    }

    pub fn login() -> Spec {
        Spec::new("Log in: a new session.")
            .body::<Login>()
            .reply::<SignedIn>(200)
    }

    pub fn refresh() -> Spec {
        Spec::new("The next access and refresh tokens; the refresh token rotates.")
            .body::<RefreshBody>()
            .reply::<Session>(200)
    }

    pub fn logout() -> Spec {
        Spec::new("Ends the refresh token's session.")
            .body::<RefreshBody>()
            .empty(204)
    }

    pub fn get_me() -> Spec {
        Spec::new("The caller's account.").reply::<UserAnswer>(200)
    }

    pub fn verify_email() -> Spec {
        Spec::new("Verifies the email address with the emailed code.")
            .body::<TokenBody>()
            .reply::<UserAnswer>(200)
    }

    pub fn resend_verification() -> Spec {
        Spec::new("Sends a new verification code.").reply::<VerificationSent>(202)
    }

    pub fn request_password_reset() -> Spec {
        Spec::new("Sends a password reset code, if the address has an account.")
            .body::<ResetRequest>()
            .reply::<ResetRequested>(202)
    }

    pub fn reset_password() -> Spec {
        Spec::new("Sets a new password with the emailed code.")
            .body::<ResetConfirm>()
            .reply::<Session>(200)
    }

    pub fn export_me() -> Spec {
        Spec::new("A link to a JSON export of everything kept about the caller.")
            .reply::<ExportLink>(200)
    }

    pub fn delete_me() -> Spec {
        Spec::new("Erases the account, its rows and its files.").empty(204)
    }
}

//! The session file: the API, the account and the tokens `autocrew login` (or `autocrew
//! run`'s own sign-up) got, so that the next commands act as the same user. The client
//! writes each refreshed pair back, since a refresh token works once. `AUTOCREW_SESSION`
//! names the file; by default it is `~/.config/autocrew/session.json`. It holds tokens: it
//! is written readable by its owner only.

use crate::args::SessionArgs;
use crate::client::{Client, Tokens};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const DEFAULT_API: &str = "http://127.0.0.1:8787";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub api: String,
    #[serde(default)]
    pub email: Option<String>,
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

fn path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("AUTOCREW_SESSION") {
        return Ok(path.into());
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set AUTOCREW_SESSION")?;
    Ok(PathBuf::from(home).join(".config/autocrew/session.json"))
}

/// Keeps the session for the next commands; returns where.
pub fn save(session: &Session) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let body = serde_json::to_vec_pretty(session)?;
    // Written beside, then renamed: a refresh racing another command never leaves half a file.
    let partial = path.with_extension("json.partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    file.write_all(&body)?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Forgets the session; `false` when there was none.
pub fn forget() -> anyhow::Result<bool> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
}

/// The saved session, if any.
pub fn saved() -> anyhow::Result<Option<Session>> {
    let path = path()?;
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map(Some).with_context(|| {
        format!(
            "{} is not a session file (an older format?); delete it and log in again",
            path.display()
        )
    })
}

/// A client for `session` that writes each refreshed pair back to the file.
pub fn resume(session: Session) -> Client {
    let tokens = Tokens {
        access_token: session.access_token.clone(),
        refresh_token: session.refresh_token.clone(),
    };
    Client::new(&session.api, tokens).on_refresh(move |tokens| {
        let next = Session {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            ..session.clone()
        };
        if let Err(e) = save(&next) {
            eprintln!("warning: the refreshed session was not saved: {e:#}");
        }
    })
}

/// Saves a new client's session (after a login or sign-up) and keeps it saved as it
/// refreshes; the client, and where the session went (or why it could not be saved).
pub fn keep(client: Client, email: &str) -> (Client, anyhow::Result<PathBuf>) {
    let tokens = client.tokens();
    let session = Session {
        api: client.base().to_owned(),
        email: Some(email.to_owned()),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    };
    match save(&session) {
        Ok(path) => (resume(session), Ok(path)),
        Err(e) => (client, Err(e)),
    }
}

/// The client the flags or the session file say to act as.
pub fn client(args: &SessionArgs) -> anyhow::Result<Client> {
    let saved = saved()?;
    match (&args.token, saved) {
        (Some(token), saved) => {
            let api = args
                .api
                .clone()
                .or_else(|| saved.map(|s| s.api))
                .unwrap_or_else(|| DEFAULT_API.to_owned());
            Ok(Client::new(
                &api,
                Tokens {
                    access_token: token.clone(),
                    refresh_token: None,
                },
            ))
        }
        (None, Some(session)) => {
            if let Some(api) = &args.api
                && api.trim_end_matches('/') != session.api
            {
                bail!(
                    "the saved session is for {}, not {api}: log in there with `autocrew login --api {api}`",
                    session.api
                );
            }
            Ok(resume(session))
        }
        (None, None) => bail!(
            "not logged in: run `autocrew login` (or `autocrew signup`), or pass --token (AUTOCREW_TOKEN)"
        ),
    }
}

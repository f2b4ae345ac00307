//! The session file: the API and token `autocrew run` acted with, so that `cancel`,
//! `resume` and `retry` act as the same user. `AUTOCREW_SESSION` names the file; by
//! default it is `~/.config/autocrew/session.json`. It holds a bearer token: it is written
//! readable by its owner only.

use crate::args::SessionArgs;
use crate::client::Client;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const DEFAULT_API: &str = "http://127.0.0.1:8787";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    api: String,
    token: String,
}

fn path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("AUTOCREW_SESSION") {
        return Ok(path.into());
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set AUTOCREW_SESSION")?;
    Ok(PathBuf::from(home).join(".config/autocrew/session.json"))
}

/// Keeps the API and token for the next commands; returns where.
pub fn save(api: &str, token: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let body = serde_json::to_vec_pretty(&Session {
        api: api.to_owned(),
        token: token.to_owned(),
    })?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(&body)?;
    Ok(path)
}

/// The client the flags or the session file say to act as.
pub fn client(args: &SessionArgs) -> anyhow::Result<Client> {
    let saved: Option<Session> = match path() {
        Ok(path) if path.exists() => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a session file; delete it or pass --token",
                    path.display()
                )
            })?)
        }
        _ => None,
    };
    let token = match (&args.token, &saved) {
        (Some(token), _) => token.clone(),
        (None, Some(session)) => session.token.clone(),
        (None, None) => bail!(
            "no token: pass --token (or AUTOCREW_TOKEN), or start a run with `autocrew run` first"
        ),
    };
    let api = args
        .api
        .clone()
        .or_else(|| saved.map(|s| s.api))
        .unwrap_or_else(|| DEFAULT_API.to_owned());
    Ok(Client::new(&api, &token))
}

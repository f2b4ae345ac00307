//! `autocrew signup | login | logout | me | verify | forgot-password | reset-password | mail`.

use crate::args::{ApiArgs, CredentialArgs, SessionArgs};
use crate::client::{Client, Tokens, log_in, sign_up};
use crate::session;
use anyhow::{Context, bail};
use autocrew_shared::domain::requests::{
    RefreshBody, ResetConfirm, ResetRequest, Settings, TokenBody,
};
use serde_json::Value;
use std::io::{BufRead, IsTerminal};

/// The password: AUTOCREW_PASSWORD, else standard input's first line with
/// `--password-stdin` (or when it is not a terminal), else asked without echo.
fn password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("AUTOCREW_PASSWORD")
        && !password.is_empty()
    {
        return Ok(password);
    }
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(password);
    }
    rpassword::prompt_password(prompt).context("cannot read the password")
}

/// A client with no session, for the routes that take none.
fn anonymous(api: &ApiArgs) -> Client {
    Client::new(
        &api.api,
        Tokens {
            access_token: String::new(),
            refresh_token: None,
        },
    )
}

fn describe(user: &Value) -> String {
    let verified = match user["email_verified_at"].as_str() {
        Some(_) => "verified",
        None => "not verified yet (`autocrew verify CODE`)",
    };
    format!(
        "{} ({}), {} plan, email {verified}, time zone {}",
        user["email"].as_str().unwrap_or("?"),
        user["id"].as_str().unwrap_or("?"),
        user["plan"].as_str().unwrap_or("?"),
        user["timezone"].as_str().unwrap_or("UTC"),
    )
}

fn kept(client: Client, email: &str) -> Client {
    let (client, saved) = session::keep(client, email);
    match saved {
        Ok(path) => eprintln!("session saved to {}", path.display()),
        Err(e) => eprintln!("warning: the session was not saved: {e:#}"),
    }
    client
}

pub async fn signup(args: &CredentialArgs) -> anyhow::Result<()> {
    let password = password(
        args.password_stdin,
        "Choose a password (10 characters or more): ",
    )?;
    let client = kept(
        sign_up(&args.api.api, &args.email, &password).await?,
        &args.email,
    );
    let me = client.get("/me", "read the account").await?;
    println!("signed up: {}", describe(&me["user"]));
    println!("a verification code was sent to {}", args.email);
    Ok(())
}

pub async fn login(args: &CredentialArgs) -> anyhow::Result<()> {
    let password = password(args.password_stdin, "Password: ")?;
    let client = kept(
        log_in(&args.api.api, &args.email, &password).await?,
        &args.email,
    );
    let me = client.get("/me", "read the account").await?;
    println!("logged in: {}", describe(&me["user"]));
    Ok(())
}

pub async fn logout() -> anyhow::Result<()> {
    let Some(saved) = session::saved()? else {
        println!("not logged in");
        return Ok(());
    };
    if let Some(refresh_token) = &saved.refresh_token {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{}/auth/logout", saved.api))
            .json(&RefreshBody {
                refresh_token: refresh_token.clone(),
            })
            .send()
            .await;
        if let Err(e) = response {
            eprintln!(
                "warning: the API did not answer ({e}); the session is forgotten here anyway"
            );
        }
    }
    session::forget()?;
    println!(
        "logged out{}",
        saved.email.map(|e| format!(" of {e}")).unwrap_or_default()
    );
    Ok(())
}

pub async fn me(args: &SessionArgs) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let me = client.get("/me", "read the account").await?;
    println!("{}", describe(&me["user"]));
    Ok(())
}

/// `autocrew timezone [ZONE]`: shows the account's time zone, or sets it.
pub async fn timezone(zone: Option<&str>, args: &SessionArgs) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let me = match zone {
        None => client.get("/me", "read the account").await?,
        Some(zone) => {
            let body = Settings {
                semantic_cache_threshold: None,
                timezone: Some(zone.to_owned()),
                ..Default::default()
            };
            client.patch("/me", &body, "set the time zone").await?
        }
    };
    println!(
        "time zone {} (your schedules' default)",
        me["user"]["timezone"].as_str().unwrap_or("UTC")
    );
    Ok(())
}

pub async fn verify(code: &str, api: &ApiArgs) -> anyhow::Result<()> {
    let client = anonymous(api);
    let answer = client
        .post(
            "/auth/verify-email",
            &TokenBody {
                token: code.trim().to_owned(),
            },
            "verify the email",
        )
        .await?;
    println!("verified: {}", describe(&answer["user"]));
    Ok(())
}

pub async fn forgot_password(email: &str, api: &ApiArgs) -> anyhow::Result<()> {
    let client = anonymous(api);
    client
        .post(
            "/auth/password-reset",
            &ResetRequest {
                email: email.to_owned(),
            },
            "ask for a reset code",
        )
        .await?;
    println!("if {email} has an account, a reset code was sent to it (valid 1 hour)");
    Ok(())
}

pub async fn reset_password(code: &str, from_stdin: bool, api: &ApiArgs) -> anyhow::Result<()> {
    let password = password(from_stdin, "New password (10 characters or more): ")?;
    let client = anonymous(api);
    let answer = client
        .post(
            "/auth/password-reset/confirm",
            &ResetConfirm {
                token: code.trim().to_owned(),
                password: password.to_owned(),
            },
            "reset the password",
        )
        .await?;
    let tokens = Client::new(
        &api.api,
        Tokens {
            access_token: answer["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            refresh_token: answer["refresh_token"].as_str().map(str::to_owned),
        },
    );
    let me = tokens.get("/me", "read the account").await?;
    let email = me["user"]["email"].as_str().unwrap_or_default().to_owned();
    kept(tokens, &email);
    println!(
        "password changed; every other session has ended: {}",
        describe(&me["user"])
    );
    Ok(())
}

/// Prints the local mail outbox.
pub async fn mail(to: Option<&str>, limit: u32) -> anyhow::Result<()> {
    use autocrew_shared::adapters::postgres;
    let pool = postgres::connect(
        &autocrew_shared::adapters::database_config(&autocrew_shared::config::ProcessEnv).await?,
    )?;
    let sent = postgres::PgMailOutbox::new(pool)
        .list(to.map(str::trim), limit)
        .await
        .context("cannot read the mail outbox")?;
    if sent.is_empty() {
        println!(
            "no mail{}",
            to.map(|t| format!(" to {t}")).unwrap_or_default()
        );
    }
    for mail in sent.iter().rev() {
        println!(
            "--- #{} {} to {}\nSubject: {}\n\n{}",
            mail.id,
            mail.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            mail.email.to,
            mail.email.subject,
            mail.email.text.trim_end()
        );
    }
    Ok(())
}

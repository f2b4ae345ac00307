//! `autocrew connect SERVICE` and `autocrew connections`: the accounts the agents act
//! through. The token goes to the API once and is never printed.

use crate::args::SessionArgs;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal};

/// The token: standard input's first line when it is not a terminal, else asked without
/// echo.
fn token(service: &str) -> anyhow::Result<String> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{service} token: ")).context("cannot read the token")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the token from standard input")?;
        line
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("no {service} token was given");
    }
    Ok(token)
}

fn describe(connection: &Value) -> String {
    let hint = match connection["hint"].as_str() {
        Some(hint) if !hint.is_empty() => format!(", token ...{hint}"),
        _ => String::new(),
    };
    let status = match connection["status"].as_str() {
        Some("invalid") => format!(
            ", REFUSED by the service: {} (connect it again)",
            connection["status_reason"]
                .as_str()
                .unwrap_or("no reason given")
        ),
        _ => String::new(),
    };
    format!(
        "{} as {}{hint}{status}",
        connection["service"].as_str().unwrap_or("?"),
        connection["account"].as_str().unwrap_or("?"),
    )
}

pub async fn connect(service: &str, api: &str) -> anyhow::Result<()> {
    let token = token(service)?;
    let client = crate::run::session_for(api).await?;
    let connected = client
        .post(
            "/me/connections",
            json!({"service": service, "token": token}),
            &format!("connect {service}"),
        )
        .await?;
    println!("connected {}", describe(&connected));
    Ok(())
}

/// Connects `service` by its OAuth device flow: shows the code to enter and where, then
/// polls (as often as the service allows) until the user entered it, or it expired.
pub async fn connect_by_device(service: &str, api: &str) -> anyhow::Result<()> {
    let client = crate::run::session_for(api).await?;
    let flow = client
        .post(
            "/me/connections/device",
            json!({"service": service}),
            &format!("start {service}'s device flow"),
        )
        .await?;
    let id = flow["flow_id"].as_str().context("the API named no flow")?;
    eprintln!(
        "open {} and enter the code {} (it expires at {})",
        flow["verification_uri"].as_str().unwrap_or("?"),
        flow["user_code"].as_str().unwrap_or("?"),
        flow["expires_at"].as_str().unwrap_or("?")
    );
    let mut interval = flow["interval"].as_u64().unwrap_or(5);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(interval.clamp(1, 120))).await;
        let polled = client
            .post(
                &format!("/me/connections/device/{id}"),
                json!({}),
                "poll the device flow",
            )
            .await?;
        if polled["status"] == "pending" {
            interval = polled["interval"].as_u64().unwrap_or(interval);
            continue;
        }
        println!("connected {}", describe(&polled));
        return Ok(());
    }
}

pub async fn connections(args: &SessionArgs) -> anyhow::Result<()> {
    let client = crate::session::client(args)?;
    let listed = client
        .get("/me/connections", "list the connections")
        .await?;
    let connections = listed["connections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if connections.is_empty() {
        println!("no connected accounts (`autocrew connect SERVICE` adds one)");
    }
    for connection in &connections {
        println!("{}", describe(connection));
    }
    Ok(())
}

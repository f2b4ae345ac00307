//! `autocrew connect SERVICE` and `autocrew connections`: the accounts the agents act
//! through. The token goes to the API once and is never printed.

use crate::args::SessionArgs;
use crate::client::NoBody;
use anyhow::{Context, bail};
use autocrew_shared::domain::requests::{DeviceFlowBody, NewConnectionBody, WebFlowBody};
use serde_json::Value;
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
    let lapses = match (
        connection["renews"].as_bool(),
        connection["expires_at"].as_str(),
    ) {
        (Some(true), _) => ", renewed before it lapses".to_owned(),
        (_, Some(at)) => format!(", expires {}", at.get(..10).unwrap_or(at)),
        _ => String::new(),
    };
    format!(
        "{} as {}{hint}{lapses}{status}",
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
            &NewConnectionBody {
                service: service.to_owned(),
                token: token.to_owned(),
            },
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
            &DeviceFlowBody {
                service: service.to_owned(),
            },
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
                &NoBody {},
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

/// Connects `service` by its OAuth web flow: shows the link to open, then asks the API
/// every 2 s how the flow stands until the user consented (or declined), or it expired.
pub async fn connect_by_browser(service: &str, api: &str) -> anyhow::Result<()> {
    let client = crate::run::session_for(api).await?;
    let flow = client
        .post(
            "/me/connections/oauth",
            &WebFlowBody {
                service: service.to_owned(),
                return_to: None,
            },
            &format!("start {service}'s OAuth flow"),
        )
        .await?;
    let id = flow["flow_id"].as_str().context("the API named no flow")?;
    eprintln!(
        "open this link in a browser and allow Autocrew there (within 15 minutes):\n  {}",
        flow["authorize_url"].as_str().unwrap_or("?")
    );
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let polled = client
            .get(
                &format!("/me/connections/oauth/{id}"),
                "ask how the OAuth flow stands",
            )
            .await?;
        match polled["status"].as_str() {
            Some("connected") => {
                println!("connected {}", describe(&polled["connection"]));
                return Ok(());
            }
            Some("failed") => bail!(
                "{service} was not connected: {}",
                polled["error"].as_str().unwrap_or("no reason given")
            ),
            Some("expired") => bail!("the link expired before it was used: run this again"),
            _ => {}
        }
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

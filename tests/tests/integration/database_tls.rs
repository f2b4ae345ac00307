//! Postgres over TLS as deployed stacks use it (`sslmode=require`): through a TLS front
//! (`tests/pg_tls_front.py`, since the local Postgres is built without SSL) with the
//! stack's local CA. The certificate is verified: without the CA the connection fails.

use autocrew_shared::adapters::postgres;
use autocrew_shared::config::{DatabaseConfig, Env, Secret};
use autocrew_tests::EnvOver;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Front(Child);

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the TLS front before the stack's Postgres; returns it and its port.
fn front(ca_file: &str, pg_port: u16) -> anyhow::Result<(Front, u16)> {
    let tls = std::path::Path::new(ca_file)
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{ca_file} has no folder"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new("python3")
        .arg(format!("{}/pg_tls_front.py", env!("CARGO_MANIFEST_DIR")))
        .args([port.to_string(), pg_port.to_string()])
        .arg(tls.join("server.crt"))
        .arg(tls.join("server.key"))
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    anyhow::ensure!(
        line.trim() == "ready",
        "the TLS front did not start: {line:?}"
    );
    Ok((Front(child), port))
}

fn config(url: String, ca_file: Option<&str>) -> DatabaseConfig {
    DatabaseConfig {
        url: Secret::new(url),
        pool_size: 2,
        password_secret: None,
        password: None,
        ca_file: ca_file.map(str::to_owned),
        iam_auth: false,
        iam_signer: None,
    }
}

#[tokio::test]
async fn sslmode_require_connects_over_verified_tls_and_refuses_an_unknown_certificate()
-> anyhow::Result<()> {
    let ca_file = std::env::var("AUTOCREW_PG_CA_FILE").map_err(|_| {
        anyhow::anyhow!("AUTOCREW_PG_CA_FILE is not set: run the suite with `make test`")
    })?;
    let url = std::env::var("DATABASE_URL")?;
    let pg = url.parse::<tokio_postgres::Config>()?;
    let pg_port = pg.get_ports().first().copied().unwrap_or(5432);
    let user = pg.get_user().unwrap_or("postgres").to_owned();
    let db = pg.get_dbname().unwrap_or("postgres").to_owned();
    let (_front, port) = front(&ca_file, pg_port)?;
    let tls_url = format!("postgres://{user}@127.0.0.1:{port}/{db}?sslmode=require");

    let pool = postgres::connect(&config(tls_url.clone(), Some(&ca_file)))?;
    let one: i32 = pool.get().await?.query_one("SELECT 1", &[]).await?.get(0);
    assert_eq!(one, 1, "a query over TLS");

    // The same front with only the system's roots: its certificate is not trusted.
    let untrusted = postgres::connect(&config(tls_url.clone(), None))?;
    let refused = untrusted
        .get()
        .await
        .err()
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    assert!(
        refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"),
        "connected without trusting the certificate: {refused:?}"
    );

    // A plain client is refused by the front: what connected above used TLS.
    let plain = postgres::connect(&config(
        tls_url.replace("sslmode=require", "sslmode=disable"),
        None,
    ))?;
    assert!(plain.get().await.is_err());
    Ok(())
}

#[tokio::test]
async fn the_password_comes_from_the_secret_store_and_lambda_requires_tls() -> anyhow::Result<()> {
    let sdk = autocrew_tests::sdk().await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let plain = autocrew_tests::unique("db-password");
    secrets
        .create_secret()
        .name(&plain)
        .secret_string("s3cret plain")
        .send()
        .await?;
    let rds = autocrew_tests::unique("db-rds");
    secrets
        .create_secret()
        .name(&rds)
        .secret_string(r#"{"username": "autocrew", "password": "s3cret json"}"#)
        .send()
        .await?;
    let base = |secret: &str| {
        EnvOver(HashMap::from([
            (
                "DATABASE_URL",
                "postgres://autocrew@db.example.com/autocrew".to_owned(),
            ),
            ("DATABASE_PASSWORD_SECRET", secret.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            (
                "AWS_ENDPOINT_URL",
                std::env::var("AWS_ENDPOINT_URL").unwrap_or_default(),
            ),
        ]))
    };
    let from_plain = autocrew_shared::adapters::database_config(&base(&plain)).await?;
    assert_eq!(
        from_plain.password.map(|p| p.expose().clone()).as_deref(),
        Some("s3cret plain")
    );
    let from_rds = autocrew_shared::adapters::database_config(&base(&rds)).await?;
    assert_eq!(
        from_rds.password.map(|p| p.expose().clone()).as_deref(),
        Some("s3cret json")
    );
    let missing = autocrew_shared::adapters::database_config(&base("no-such-secret")).await;
    assert!(missing.is_err());

    let mut on_lambda = base(&plain);
    on_lambda
        .0
        .insert("AWS_LAMBDA_FUNCTION_NAME", "api-get-me".to_owned());
    let refused = DatabaseConfig::from_env(&on_lambda)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("sslmode=require"), "{refused}");
    on_lambda.0.insert(
        "DATABASE_URL",
        "postgres://autocrew@db.example.com/autocrew?sslmode=require".to_owned(),
    );
    assert!(DatabaseConfig::from_env(&on_lambda).is_ok());
    Ok(())
}

#[tokio::test]
async fn provider_keys_come_from_their_secret_and_it_holds_nothing_else() -> anyhow::Result<()> {
    let sdk = autocrew_tests::sdk().await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let keys = autocrew_tests::unique("provider-keys");
    secrets
        .create_secret()
        .name(&keys)
        .secret_string(r#"{"OPENAI_API_KEY": "sk-from-the-secret"}"#)
        .send()
        .await?;
    let sneaky = autocrew_tests::unique("provider-keys");
    secrets
        .create_secret()
        .name(&sneaky)
        .secret_string(r#"{"DATABASE_URL": "postgres://elsewhere/db"}"#)
        .send()
        .await?;
    let env = |secret: &str| {
        EnvOver(HashMap::from([
            ("PROVIDER_KEYS_SECRET", secret.to_owned()),
            ("OPENAI_API_KEY", "sk-from-the-environment".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            (
                "AWS_ENDPOINT_URL",
                std::env::var("AWS_ENDPOINT_URL").unwrap_or_default(),
            ),
        ]))
    };
    let base = env(&keys);
    let overlay = autocrew_shared::config::Overlay {
        values: autocrew_shared::adapters::provider_keys(&base).await?,
        base: &base,
    };
    assert_eq!(
        overlay.get("OPENAI_API_KEY").as_deref(),
        Some("sk-from-the-secret")
    );
    let refused = autocrew_shared::adapters::provider_keys(&env(&sneaky))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("DATABASE_URL"), "{refused}");
    Ok(())
}

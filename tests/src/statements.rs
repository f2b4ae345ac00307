//! Counts the SQL statements a client runs, on the wire: a loopback proxy in front of
//! Postgres that reads the frontend's messages as they pass and counts each `Execute`
//! (extended protocol) and `Query` (simple protocol). Preparing a statement is not
//! running it, so a statement cache's `Parse` is not counted. Bytes pass unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The protocol version 3.0 startup code; anything else before it is a request to
/// negotiate encryption, which the proxy passes on as it is.
const PROTOCOL_3: i32 = 196_608;

pub struct StatementCounter {
    pub port: u16,
    executed: Arc<AtomicU64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl StatementCounter {
    /// A proxy to Postgres at `upstream` (`host:port`), on a free loopback port.
    pub async fn start(upstream: String) -> anyhow::Result<StatementCounter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let executed = Arc::new(AtomicU64::new(0));
        let counted = executed.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counted) = (upstream.clone(), counted.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, counted).await;
                    }
                });
            }
        });
        Ok(StatementCounter {
            port,
            executed,
            accepting,
        })
    }

    /// Statements run through the proxy so far.
    pub fn executed(&self) -> u64 {
        self.executed.load(Ordering::SeqCst)
    }
}

impl Drop for StatementCounter {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let back = tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    // Untyped messages (length, then code) until the startup message.
    loop {
        let length = from_client.read_i32().await?;
        let code = from_client.read_i32().await?;
        let mut rest = vec![0; usize::try_from(length - 8).unwrap_or(0)];
        from_client.read_exact(&mut rest).await?;
        to_server.write_i32(length).await?;
        to_server.write_i32(code).await?;
        to_server.write_all(&rest).await?;
        if code == PROTOCOL_3 {
            break;
        }
    }
    // Typed messages: a byte, a length that counts itself, the body.
    loop {
        let kind = from_client.read_u8().await?;
        let length = from_client.read_i32().await?;
        let mut body = vec![0; usize::try_from(length - 4).unwrap_or(0)];
        from_client.read_exact(&mut body).await?;
        if kind == b'E' || kind == b'Q' {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        to_server.write_u8(kind).await?;
        to_server.write_i32(length).await?;
        to_server.write_all(&body).await?;
        if kind == b'X' {
            break;
        }
    }
    back.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the stack's Postgres (`DATABASE_URL`), as `make test` gives it.
    #[tokio::test]
    async fn counts_each_statement_run_and_not_the_preparing() -> anyhow::Result<()> {
        let Some(url) = std::env::var_os("DATABASE_URL") else {
            return Ok(());
        };
        let direct: tokio_postgres::Config = url.to_string_lossy().parse()?;
        let host = match direct.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = direct.get_ports().first().copied().unwrap_or(5432);
        let counter = StatementCounter::start(format!("{host}:{port}")).await?;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(counter.port)
            .user(direct.get_user().unwrap_or("postgres"))
            .dbname(direct.get_dbname().unwrap_or("postgres"));
        if let Some(password) = direct.get_password() {
            config.password(password);
        }
        let (client, connection) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            config.connect(tokio_postgres::NoTls),
        )
        .await??;
        tokio::spawn(connection);
        let statement = client.prepare("SELECT $1::int + 1").await?;
        assert_eq!(counter.executed(), 0);
        for i in 0..3 {
            let row = client.query_one(&statement, &[&i]).await?;
            assert_eq!(row.get::<_, i32>(0), i + 1);
        }
        client.batch_execute("SELECT 1").await?;
        assert_eq!(counter.executed(), 4);
        Ok(())
    }
}

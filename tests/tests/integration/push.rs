//! The `@connections` push adapter against a local HTTP server speaking API Gateway's
//! management API: moto accepts every push and delivers nothing, so it cannot test this.

use autocrew_shared::adapters::aws::ApiGatewayPush;
use autocrew_shared::ports::{PushError, RealtimePush};
use autocrew_tests::sdk;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) signed: bool,
    pub(crate) body: Vec<u8>,
}

/// Serves `@connections`: 410 Gone for ids starting with "gone", 200 otherwise.
pub(crate) async fn management_api() -> anyhow::Result<(String, Arc<Mutex<Vec<Seen>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    );
                    let (mut length, mut signed) = (0usize, false);
                    loop {
                        let mut header = String::new();
                        stream.read_line(&mut header).await.ok();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let lower = header.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        signed |= lower.starts_with("authorization: aws4-hmac-sha256");
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.ok();
                    let gone = path
                        .trim_start_matches("/%40connections/")
                        .trim_start_matches("/@connections/")
                        .starts_with("gone");
                    log.lock().expect("log").push(Seen {
                        method,
                        path,
                        signed,
                        body,
                    });
                    let response = if gone {
                        let body = r#"{"message":"Gone"}"#;
                        format!(
                            "HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()
                    };
                    if stream
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, seen))
}

#[tokio::test]
async fn a_push_posts_the_bytes_to_the_connection_and_a_gone_client_is_reported()
-> anyhow::Result<()> {
    let (url, seen) = management_api().await?;
    let push = ApiGatewayPush::new(&sdk().await?, &url);

    push.post("conn-1", br#"{"seq":1,"kind":"run_created"}"#)
        .await?;
    let gone = push.post("gone-7", b"{}").await;

    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert!(
        seen[0].path.ends_with("connections/conn-1"),
        "{}",
        seen[0].path
    );
    assert!(seen[0].signed, "the request carries a SigV4 signature");
    assert_eq!(seen[0].body, br#"{"seq":1,"kind":"run_created"}"#);
    assert!(
        matches!(gone, Err(PushError::Gone(ref id)) if id == "gone-7"),
        "{gone:?}"
    );
    Ok(())
}

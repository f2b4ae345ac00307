//! `WebhookSender` over HTTPS, with the SSRF rules of `domain::notices::UrlPolicy`: a URL
//! naming a private, loopback or link-local address is refused before any connection, and
//! so is a name that resolves to one, checked at the resolution the connection uses (so a
//! name that changes its answer between the check and the connection cannot slip through).
//! Redirects are not followed: a 3xx is an answer, not a delivery.

use crate::domain::notices::{AttemptResult, UrlError, UrlPolicy};
use crate::ports::WebhookSender;
use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a receiver has to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves names as the system does, then refuses any answer the policy forbids.
struct Guarded(UrlPolicy);

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses = resolve(policy, &host).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Every address `host` resolves to, if the policy allows all of them.
async fn resolve(policy: UrlPolicy, host: &str) -> Result<Vec<SocketAddr>, UrlError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| UrlError::Unresolved(host.to_owned()))?
        .collect();
    if addresses.is_empty() {
        return Err(UrlError::Unresolved(host.to_owned()));
    }
    for address in &addresses {
        policy.check_address(host, address.ip())?;
    }
    Ok(addresses)
}

/// Checks a URL as a webhook's: its form, then every address its host resolves to now.
pub async fn check_url(policy: UrlPolicy, url: &str) -> Result<(), UrlError> {
    let parsed = policy.check_form(url)?;
    let host = parsed.host_str().unwrap_or_default();
    match host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(ip) => policy.check_address(host, ip),
        Err(_) => resolve(policy, host).await.map(|_| ()),
    }
}

/// Posts webhooks over HTTPS.
pub struct HttpWebhooks {
    http: reqwest::Client,
    policy: UrlPolicy,
}

impl HttpWebhooks {
    pub fn new(policy: UrlPolicy) -> Result<Self, reqwest::Error> {
        Ok(HttpWebhooks {
            http: reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(Guarded(policy)))
                .user_agent("Autocrew-Webhooks/1.0")
                .build()?,
            policy,
        })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> AttemptResult {
        let started = Instant::now();
        let refused = |error: String| AttemptResult {
            status_code: None,
            error: Some(error),
            duration: started.elapsed(),
        };
        // Literal addresses never reach the resolver: they are checked here.
        let parsed = match self.policy.check_form(url) {
            Ok(parsed) => parsed,
            Err(e) => return refused(e.to_string()),
        };
        let host = parsed.host_str().unwrap_or_default();
        if let Ok(ip) = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            && let Err(e) = self.policy.check_address(host, ip)
        {
            return refused(e.to_string());
        }
        let mut request = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // The answer's body is not kept; reading it frees the connection.
                let _ = response.bytes().await;
                AttemptResult {
                    status_code: Some(status),
                    error: (!(200..300).contains(&status))
                        .then(|| format!("the URL answered {status}")),
                    duration: started.elapsed(),
                }
            }
            Err(e) => refused(describe(&e)),
        }
    }
}

/// A failed request in a line: the refusal of an address, a timeout, or the connection error.
fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<UrlError>() {
            return refused.to_string();
        }
        source = e.source();
    }
    if error.is_timeout() {
        format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs())
    } else if error.is_connect() {
        format!("could not connect: {error}")
    } else {
        error.to_string()
    }
}

//! OAuth 2.0 at the services' sign-in hosts (RFC 6749): form-encoded token requests, and
//! the authorization-code flow X (with PKCE, RFC 7636) and LinkedIn offer for connecting
//! an account. A token endpoint answers JSON; its refusals are `error` and
//! `error_description` fields.

use super::ServiceError;
use crate::config::Secret;
use crate::domain::Service;
use base64::Engine;
use serde::Deserialize;

/// `application/x-www-form-urlencoded`: unreserved characters as they are, the rest
/// percent-encoded (a space too, as `%20`: every token endpoint reads it).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How the client proves itself at the token endpoint.
pub enum ClientAuth<'a> {
    /// A public client: its id in the body only.
    Public { client_id: &'a str },
    /// A confidential client, by HTTP Basic alone (X's way: its SDK sends no `client_id`
    /// in the body then).
    Basic {
        client_id: &'a str,
        secret: &'a Secret<String>,
    },
    /// A confidential client, with the secret in the body (LinkedIn's way).
    Body {
        client_id: &'a str,
        secret: &'a Secret<String>,
    },
}

/// Posts `pairs` form-encoded to `url` and reads a JSON answer. A 4xx is the service's
/// refusal, worded from its `error_description`; a 429 or 5xx is it being unavailable.
pub async fn post_form<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    service: Service,
    url: &str,
    pairs: &[(&str, &str)],
    client: &ClientAuth<'_>,
) -> Result<T, ServiceError> {
    let unavailable = |message: String, source: Option<reqwest::Error>| ServiceError::Unavailable {
        service,
        message,
        source,
    };
    let mut pairs = pairs.to_vec();
    let mut request = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::USER_AGENT, "autocrew");
    match client {
        ClientAuth::Public { client_id } => pairs.push(("client_id", client_id)),
        ClientAuth::Basic { client_id, secret } => {
            let credentials = format!("{client_id}:{}", secret.expose());
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ),
            );
        }
        ClientAuth::Body { client_id, secret } => {
            pairs.push(("client_id", client_id));
            pairs.push(("client_secret", secret.expose()));
        }
    }
    let response = request.body(form(&pairs)).send().await.map_err(|e| {
        unavailable(
            "could not reach its sign-in service".into(),
            Some(e.without_url()),
        )
    })?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| {
        unavailable(
            "could not read its sign-in service's answer".into(),
            Some(e.without_url()),
        )
    })?;
    match status {
        200..=299 => serde_json::from_str(&body).map_err(|e| {
            unavailable(
                format!("its answer is not what its documentation describes: {e}"),
                None,
            )
        }),
        429 | 500.. => Err(unavailable(format!("HTTP {status}"), None)),
        _ => Err(ServiceError::Refused {
            service,
            status,
            message: refusal(&body),
        }),
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// An OAuth error answer in words ("description (code)"), or the body's start.
fn refusal(body: &str) -> String {
    match serde_json::from_str::<ErrorAnswer>(body) {
        Ok(ErrorAnswer {
            error: Some(code),
            error_description,
        }) => format!(
            "{} ({code})",
            error_description.as_deref().unwrap_or("no description")
        ),
        _ => body.chars().take(200).collect(),
    }
}

/// A PKCE pair: the verifier kept (sealed) until the token request, and its S256 challenge
/// sent in the authorization link.
pub struct Pkce {
    pub verifier: Secret<String>,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = random_token();
        Pkce {
            challenge: challenge(&verifier),
            verifier: Secret::new(verifier),
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// `BASE64URL(SHA256(verifier))`, without padding (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// 32 random bytes, base64url: 43 characters, valid as a PKCE verifier and as a state.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the service's consent page is asked for: its URL, our app, where to come back,
/// the scopes, the state, and (X) the PKCE challenge.
pub struct Authorize<'a> {
    pub url: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub state: &'a str,
    pub challenge: Option<&'a str>,
}

impl Authorize<'_> {
    /// The link the user opens.
    pub fn link(&self) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("state", self.state),
        ];
        if let Some(challenge) = self.challenge {
            pairs.push(("code_challenge", challenge));
            pairs.push(("code_challenge_method", "S256"));
        }
        format!("{}?{}", self.url, form(&pairs))
    }
}

/// A token endpoint's answer: the access token, and what it says about renewing it.
#[derive(Debug, Deserialize)]
pub struct Grant {
    pub access_token: Secret<String>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    /// Seconds the access token lives (X: 7200; LinkedIn: 5184000).
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Trades an authorization code for tokens (`grant_type=authorization_code`); the
/// redirect URI is the one the authorization request sent, and the verifier the PKCE one.
pub async fn exchange_code(
    http: &reqwest::Client,
    service: Service,
    token_url: &str,
    client: &ClientAuth<'_>,
    (code, redirect_uri, verifier): (&str, &str, Option<&Secret<String>>),
) -> Result<Grant, ServiceError> {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(verifier) = verifier {
        pairs.push(("code_verifier", verifier.expose()));
    }
    post_form(http, service, token_url, &pairs, client).await
}

/// Renews an access token with a refresh token (`grant_type=refresh_token`); a service
/// that rotates refresh tokens answers a new one.
pub async fn refresh(
    http: &reqwest::Client,
    service: Service,
    token_url: &str,
    client: &ClientAuth<'_>,
    refresh_token: &Secret<String>,
) -> Result<Grant, ServiceError> {
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose().as_str()),
    ];
    post_form(http, service, token_url, &pairs, client).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_body_percent_encodes_what_is_not_unreserved() {
        assert_eq!(
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("scope", "tweet.read tweet.write")
            ]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&scope=tweet.read%20tweet.write"
        );
    }

    #[test]
    fn the_challenge_is_rfc_7636s_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let pkce = Pkce::new();
        assert_eq!(pkce.verifier.expose().len(), 43);
        assert_ne!(Pkce::new().verifier.expose(), pkce.verifier.expose());
    }

    #[test]
    fn the_link_carries_the_challenge_only_when_there_is_one() {
        let mut authorize = Authorize {
            url: "https://x.com/i/oauth2/authorize",
            client_id: "M1M5R3BMVy13QmpScXkzTUt5OE46MTpjaQ",
            redirect_uri: "https://api.example.com/oauth/callback",
            scope: "tweet.read users.read",
            state: "abc",
            challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        };
        assert_eq!(
            authorize.link(),
            "https://x.com/i/oauth2/authorize?response_type=code&client_id=M1M5R3BMVy13QmpScXkzTUt5OE46MTpjaQ&redirect_uri=https%3A%2F%2Fapi.example.com%2Foauth%2Fcallback&scope=tweet.read%20users.read&state=abc&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        );
        authorize.challenge = None;
        assert!(!authorize.link().contains("code_challenge"));
    }

    #[test]
    fn a_refusal_reads_the_oauth_error_fields() {
        assert_eq!(
            refusal(
                r#"{"error":"invalid_request","error_description":"Value passed for the token was invalid."}"#
            ),
            "Value passed for the token was invalid. (invalid_request)"
        );
        assert_eq!(refusal("Bad Request"), "Bad Request");
    }
}

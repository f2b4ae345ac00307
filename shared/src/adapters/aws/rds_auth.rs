//! RDS IAM authentication tokens: instead of a password, a connection to an RDS instance or
//! an RDS Proxy with IAM auth presents a SigV4-presigned `connect` request, valid 15
//! minutes, signed with the function's own credentials (`rds-db:connect` on the database
//! user). The token is what RDS documents: the presigned URL without its scheme,
//! `host:port/?Action=connect&DBUser=user&X-Amz-Algorithm=...&X-Amz-Signature=...`.

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// How long a token is good for (RDS's most).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Makes tokens with the SDK configuration's credentials and region.
#[derive(Clone)]
pub struct RdsAuth {
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    region: String,
}

impl std::fmt::Debug for RdsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsAuth")
            .field("region", &self.region)
            .finish()
    }
}

impl RdsAuth {
    /// `None` when the configuration has no credentials or region.
    pub fn new(sdk: &aws_config::SdkConfig) -> Option<Self> {
        Some(RdsAuth {
            credentials: sdk.credentials_provider()?,
            region: sdk.region()?.to_string(),
        })
    }

    /// A token for `user` at `host:port`, signed at `now`.
    pub async fn token(
        &self,
        (host, port): (&str, u16),
        user: &str,
        now: SystemTime,
    ) -> Result<String, String> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials to sign the database token: {e}"))?;
        presign((host, port), user, &self.region, credentials.into(), now)
    }
}

/// The presigned `connect` request, as RDS takes it for a password.
fn presign(
    (host, port): (&str, u16),
    user: &str,
    region: &str,
    identity: aws_smithy_runtime_api::client::identity::Identity,
    now: SystemTime,
) -> Result<String, String> {
    let mut url = reqwest::Url::parse(&format!("https://{host}:{port}/"))
        .map_err(|e| format!("the database host {host:?}: {e}"))?;
    url.query_pairs_mut()
        .append_pair("Action", "connect")
        .append_pair("DBUser", user);
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (_headers, query) = instructions.into_parts();
    {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in query {
            pairs.append_pair(name, &value);
        }
    }
    Ok(url.as_str().trim_start_matches("https://").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    /// The token has RDS's documented form, and its signature is SigV4's over the
    /// canonical request, recomputed here from the AWS documentation's steps.
    #[test]
    fn a_token_is_a_presigned_connect_request_whose_signature_checks() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let token = presign(
            ("proxy.proxy-abc.us-east-1.rds.amazonaws.com", 5432),
            "autocrew",
            "us-east-1",
            credentials.into(),
            now,
        )
        .expect("a token");
        let (authority, _query) = token.split_once("/?").expect("host:port/?query");
        assert_eq!(
            authority,
            "proxy.proxy-abc.us-east-1.rds.amazonaws.com:5432"
        );
        let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("https://{token}"))
            .expect("a URL")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("Action"), "connect");
        assert_eq!(get("DBUser"), "autocrew");
        assert_eq!(get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(get("X-Amz-Expires"), "900");
        assert_eq!(get("X-Amz-SignedHeaders"), "host");
        assert_eq!(
            get("X-Amz-Credential"),
            "AKIDEXAMPLE/20261130/us-east-1/rds-db/aws4_request"
        );
        // SigV4, by the documentation: canonical request, string to sign, derived key.
        let mut signed: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "X-Amz-Signature")
            .cloned()
            .collect();
        signed.sort();
        let encode = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect::<String>()
        };
        let canonical_query = signed
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let canonical = format!(
            "GET\n/\n{canonical_query}\nhost:{authority}\n\nhost\n{}",
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b""))
        );
        let date = get("X-Amz-Date");
        let scope = "20261130/us-east-1/rds-db/aws4_request";
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                canonical.as_bytes()
            ))
        );
        let hmac = |key: &[u8], data: &str| {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
            aws_lc_rs::hmac::sign(&key, data.as_bytes())
                .as_ref()
                .to_vec()
        };
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20261130");
        for part in ["us-east-1", "rds-db", "aws4_request"] {
            key = hmac(&key, part);
        }
        assert_eq!(get("X-Amz-Signature"), hex::encode(hmac(&key, &to_sign)));
    }
}

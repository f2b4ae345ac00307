//! Timestamped HMAC signatures of webhook payloads, the scheme Stripe signs its webhooks
//! with and Autocrew signs its own outbound webhooks with: a header `t=<unix seconds>,
//! v1=<hex>` where v1 is HMAC-SHA256 under the endpoint's secret over `"{t}.{payload}"`.

use chrono::{DateTime, Utc};

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature's timestamp is more than {0} seconds away from now")]
    Stale(i64),
    #[error("no v1 signature matches the payload under any of the endpoint's secrets")]
    Mismatch,
}

/// How far a signature's timestamp may be from now (Stripe's libraries' default).
pub const TOLERANCE_SECS: i64 = 300;

/// Checks `header` (`t=…,v1=…[,v1=…]`) over `payload`: compared in constant time, the
/// timestamp within the tolerance of `now`. Any of `secrets` may match (several during a
/// rotation).
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) => {
                if let Ok(bytes) = hex::decode(hex) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now.timestamp() - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale(TOLERANCE_SECS));
    }
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(payload);
    for secret in secrets {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        // `verify` compares in constant time.
        if signatures
            .iter()
            .any(|sig| aws_lc_rs::hmac::verify(&key, &signed, sig).is_ok())
        {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The signature header for `payload` at `timestamp` under `secret` (what Stripe sends as
/// `Stripe-Signature`, Autocrew as `Autocrew-Signature`).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(payload);
    let tag = aws_lc_rs::hmac::sign(&key, &signed);
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_under_any_current_secret_and_nothing_else() {
        let now = Utc::now();
        let payload = br#"{"id":"evt_1"}"#;
        let header = sign(payload, "whsec_new", now.timestamp());
        let rotating = ["whsec_old".to_owned(), "whsec_new".to_owned()];
        assert_eq!(verify(Some(&header), payload, &rotating, now), Ok(()));
        assert_eq!(
            verify(Some(&header), payload, &["whsec_old".to_owned()], now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, &rotating, now),
            Err(SignatureError::Mismatch),
            "another payload"
        );
        let stale = sign(payload, "whsec_new", now.timestamp() - 301);
        assert_eq!(
            verify(Some(&stale), payload, &rotating, now),
            Err(SignatureError::Stale(300))
        );
        assert_eq!(
            verify(None, payload, &rotating, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("t=1,v0=abc"), payload, &rotating, now),
            Err(SignatureError::Malformed)
        );
    }
}

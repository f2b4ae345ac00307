//! Sending events to the webhook endpoint as Stripe does: a `Stripe-Signature` of
//! HMAC-SHA256 over `{t}.{payload}`, and retries while the endpoint does not answer 2xx.

use super::super::Fake;

/// How long to wait before each retry (Stripe backs off over days; the fake over seconds).
const RETRIES: [std::time::Duration; 4] = [
    std::time::Duration::from_millis(200),
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(3),
    std::time::Duration::from_secs(5),
];

/// The `Stripe-Signature` header for `payload` now.
pub fn signature(payload: &str, secret: &str) -> String {
    autocrew_shared::domain::signature::sign(
        payload.as_bytes(),
        secret,
        chrono::Utc::now().timestamp(),
    )
}

/// Sends what the last changes queued (or keeps it, while held), in order, each until the
/// endpoint takes it or the retries run out.
pub(crate) fn flush(fake: &Fake) {
    let (payloads, endpoint) = {
        let mut stripe = fake.stripe.lock().unwrap_or_else(|e| e.into_inner());
        let payloads = std::mem::take(&mut stripe.outbox);
        if stripe.hold {
            stripe.held.extend(payloads);
            return;
        }
        (payloads, stripe.endpoint.clone())
    };
    let Some((url, secret)) = endpoint else {
        return;
    };
    if payloads.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        for payload in payloads {
            for wait in std::iter::once(None).chain(RETRIES.iter().map(Some)) {
                if let Some(wait) = wait {
                    tokio::time::sleep(*wait).await;
                }
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", signature(&payload, &secret))
                    .body(payload.clone())
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
            }
        }
    });
}

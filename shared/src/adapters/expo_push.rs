//! `PushService` on Expo's Push API (docs.expo.dev, "Send notifications with the Expo Push
//! Service"): `POST {base}/send` takes an array of up to 100 messages and answers one push
//! ticket per message, in order; `POST {base}/getReceipts` takes `{"ids": [...]}` (up to
//! 1,000) and answers a map of receipt id to receipt, leaving out those not ready. An error
//! of the whole request is a 4xx or 5xx with `errors: [{code, message}]`.

use crate::domain::notices::{PushContent, PushOutcome};
use crate::ports::{PushService, PushServiceError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Expo's push endpoint, without the operation.
pub const EXPO_PUSH_URL: &str = "https://exp.host/--/api/v2/push";

/// The most messages one send takes, and receipts one read.
pub const SEND_BATCH: usize = 100;
pub const RECEIPT_BATCH: usize = 1000;

/// Expo's Push API at `base`, with an access token when the project enabled push security.
pub struct ExpoPush {
    http: reqwest::Client,
    base: String,
    access_token: Option<crate::config::Secret<String>>,
}

impl ExpoPush {
    pub fn new(base: &str, access_token: Option<String>) -> Result<Self, reqwest::Error> {
        Ok(ExpoPush {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .connect_timeout(std::time::Duration::from_secs(3))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            access_token: access_token
                .filter(|t| !t.is_empty())
                .map(crate::config::Secret::new),
        })
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &str,
        body: &impl Serialize,
    ) -> Result<T, PushServiceError> {
        let mut request = self
            .http
            .post(format!("{}/{operation}", self.base))
            .header("accept", "application/json")
            .json(body);
        if let Some(token) = &self.access_token {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| PushServiceError::Unavailable(format!("{operation}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| PushServiceError::Unavailable(format!("{operation}: {e}")))?;
        if !status.is_success() {
            let said = request_errors(&text);
            let error = format!("{operation} answered {status}: {said}");
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                PushServiceError::Unavailable(error)
            } else {
                PushServiceError::Refused(error)
            });
        }
        serde_json::from_str(&text).map_err(|e| {
            PushServiceError::Unavailable(format!(
                "{operation} answered what it documents not: {e}"
            ))
        })
    }
}

/// The `errors` of a failed request, as one line.
fn request_errors(text: &str) -> String {
    let errors = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| serde_json::from_value::<Vec<RequestError>>(e).ok());
    match errors {
        Some(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => text.chars().take(200).collect(),
    }
}

#[derive(Deserialize)]
struct RequestError {
    code: String,
    message: String,
}

/// One message of a send, as documented ("Message request format").
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    to: &'a str,
    title: &'a str,
    body: &'a str,
    data: &'a Value,
    sound: &'static str,
    priority: &'static str,
}

/// A push ticket or a push receipt.
#[derive(Debug, Deserialize)]
struct Ticket {
    status: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<Value>,
}

impl Ticket {
    /// What it says about its push; `ok` is `Ticket(id)` for a ticket, `Delivered` for a
    /// receipt.
    fn outcome(&self, receipt: bool) -> PushOutcome {
        if self.status == "ok" {
            return match (&self.id, receipt) {
                (Some(id), false) => PushOutcome::Ticket(id.clone()),
                (None, false) => PushOutcome::Refused("an ok ticket without an id".into()),
                (_, true) => PushOutcome::Delivered,
            };
        }
        let error = self
            .details
            .as_ref()
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = self.message.clone().unwrap_or_else(|| error.to_owned());
        match error {
            "DeviceNotRegistered" => PushOutcome::DeviceNotRegistered(message),
            // Sent too often to the device: Expo asks to back off and send again.
            "MessageRateExceeded" if !receipt => PushOutcome::Later(message),
            "" => PushOutcome::Refused(message),
            name => PushOutcome::Refused(format!("{name}: {message}")),
        }
    }
}

#[derive(Deserialize)]
struct Tickets {
    data: Vec<Ticket>,
}

#[derive(Deserialize)]
struct Receipts {
    data: HashMap<String, Ticket>,
}

#[async_trait]
impl PushService for ExpoPush {
    async fn send(
        &self,
        pushes: &[(String, PushContent)],
    ) -> Result<Vec<PushOutcome>, PushServiceError> {
        let messages: Vec<Message> = pushes
            .iter()
            .map(|(token, content)| Message {
                to: token,
                title: &content.title,
                body: &content.body,
                data: &content.data,
                sound: "default",
                priority: "high",
            })
            .collect();
        let tickets: Tickets = self.post("send", &messages).await?;
        if tickets.data.len() != pushes.len() {
            return Err(PushServiceError::Unavailable(format!(
                "send answered {} tickets for {} messages",
                tickets.data.len(),
                pushes.len()
            )));
        }
        Ok(tickets.data.iter().map(|t| t.outcome(false)).collect())
    }

    async fn receipts(&self, tickets: &[String]) -> Result<Vec<PushOutcome>, PushServiceError> {
        let receipts: Receipts = self
            .post("getReceipts", &serde_json::json!({ "ids": tickets }))
            .await?;
        Ok(tickets
            .iter()
            .map(|id| match receipts.data.get(id) {
                Some(receipt) => receipt.outcome(true),
                None => PushOutcome::Later("no receipt yet".into()),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented answers, verbatim in shape (docs.expo.dev, "Push tickets" and "Push
    /// receipts"), read as the adapter reads them.
    #[test]
    fn the_documented_tickets_and_receipts_read_as_outcomes() {
        let tickets: Tickets = serde_json::from_str(include_str!(
            "../../../tests/recorded/expo-push-send-device-not-registered.json"
        ))
        .expect("the documented tickets");
        let outcomes: Vec<PushOutcome> = tickets.data.iter().map(|t| t.outcome(false)).collect();
        assert!(matches!(
            &outcomes[0],
            PushOutcome::DeviceNotRegistered(m) if m.contains("is not a registered push notification recipient")
        ));
        assert_eq!(
            outcomes[1],
            PushOutcome::Ticket("XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX".into())
        );
        let receipts: Receipts = serde_json::from_str(include_str!(
            "../../../tests/recorded/expo-push-receipts.json"
        ))
        .expect("the documented receipts");
        let ok = receipts.data["XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"].outcome(true);
        assert_eq!(ok, PushOutcome::Delivered);
        let gone = receipts.data["ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ"].outcome(true);
        assert!(
            matches!(gone, PushOutcome::DeviceNotRegistered(_)),
            "{gone:?}"
        );
        let big = receipts.data["AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA"].outcome(true);
        assert!(
            matches!(big, PushOutcome::Refused(ref m) if m.starts_with("MessageTooBig")),
            "{big:?}"
        );
        assert_eq!(
            request_errors(include_str!(
                "../../../tests/recorded/expo-push-too-many-requests.json"
            )),
            "TOO_MANY_REQUESTS: You are exceeding the request limit of 600 notifications per second per project."
        );
    }
}

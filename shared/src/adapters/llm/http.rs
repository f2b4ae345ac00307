//! What the provider adapters share on the wire: sending a request, reading the answer,
//! and turning an HTTP failure into the neutral error that retry and fallback read.

use crate::ports::llm::LlmError;
use reqwest::header::HeaderMap;

/// Which provider and model a call is for: every error names both.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub provider: &'a str,
    pub model: &'a str,
}

impl Call<'_> {
    /// Sends `request`; returns the status, headers and body, or a timeout or transport
    /// error.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, String), LlmError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| self.transport(e))?;
        Ok((status, headers, body))
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        let (provider, model) = (self.provider.to_owned(), self.model.to_owned());
        if e.is_timeout() {
            LlmError::Timeout { provider, model }
        } else {
            LlmError::Transport {
                provider,
                model,
                source: Box::new(e),
            }
        }
    }

    /// The neutral error for a failed status; `message` is the provider's own words.
    pub(crate) fn status_error(
        &self,
        status: u16,
        retry_after_secs: Option<u64>,
        message: &str,
    ) -> LlmError {
        let (provider, model) = (self.provider.to_owned(), self.model.to_owned());
        match status {
            429 => LlmError::RateLimited {
                provider,
                model,
                retry_after_secs,
            },
            500..=599 => LlmError::Unavailable {
                provider,
                model,
                status,
            },
            401 | 403 => LlmError::Rejected {
                provider,
                model,
                message: format!("the API key was refused ({status}): {message}"),
            },
            _ => LlmError::Rejected {
                provider,
                model,
                message: format!("{status}: {message}"),
            },
        }
    }

    /// An answer that could not be read.
    pub(crate) fn malformed(&self, source: Box<dyn std::error::Error + Send + Sync>) -> LlmError {
        LlmError::Malformed {
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            source,
        }
    }
}

/// The provider's message from `{"error": {"message": ...}}`, else the start of the body.
pub(crate) fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// `retry-after` in seconds (or `retry-after-ms`), when the provider says.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<u64> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<f64>().ok()) {
        return Some(seconds.ceil().max(0.0) as u64);
    }
    header("retry-after-ms")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| ms.div_ceil(1000))
}

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

    /// Sends `request` and reads its answer as server-sent events, calling
    /// `on_event(event, data)` for each until it returns `true` or the stream ends. A failed
    /// status comes back as `Ok(Some((status, headers, body)))` for the adapter to map.
    pub(crate) async fn send_events(
        &self,
        request: reqwest::RequestBuilder,
        mut on_event: impl FnMut(&str, &str) -> Result<bool, LlmError>,
    ) -> Result<Option<(u16, HeaderMap, String)>, LlmError> {
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let body = response.text().await.map_err(|e| self.transport(e))?;
            return Ok(Some((status, headers, body)));
        }
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| self.transport(e))?;
            let ended = chunk.is_none();
            match chunk {
                // Lines may end in CRLF; JSON data never holds a raw CR, so drop them all.
                Some(bytes) => buffer.extend(bytes.iter().filter(|&&b| b != b'\r')),
                None => buffer.extend_from_slice(b"\n\n"),
            }
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                let (event, data) = sse_block(&String::from_utf8_lossy(&block));
                if !data.is_empty() && on_event(&event, &data)? {
                    return Ok(None);
                }
            }
            if ended {
                return Ok(None);
            }
        }
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

    /// The neutral error for a failed status, from the provider's own body. A 400 that
    /// refuses one of our parameters (deprecated, unsupported, unknown) is a configuration
    /// error naming it, never a retry or a fallback.
    pub(crate) fn failure(
        &self,
        status: u16,
        retry_after_secs: Option<u64>,
        body: &str,
    ) -> LlmError {
        let message = error_message(body);
        if status == 400
            && let Some(parameter) = refused_parameter(body, &message)
        {
            return LlmError::Misconfigured {
                provider: self.provider.to_owned(),
                model: self.model.to_owned(),
                parameter,
                message,
            };
        }
        self.status_error(status, retry_after_secs, &message)
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

/// One server-sent event: its name (`message` when unnamed) and its data lines joined.
fn sse_block(block: &str) -> (String, String) {
    let mut event = "message".to_owned();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    (event, data.join("\n"))
}

/// The provider's message from `{"error": {"message": ...}}`, else the start of the body.
pub(crate) fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// The parameter a 400 refuses, when the provider says it refuses one: OpenAI's
/// `unsupported_parameter` (with `param`), Anthropic's "`temperature` is deprecated for this
/// model", Gemini's `Unknown name "additionalProperties"`.
fn refused_parameter(body: &str, message: &str) -> Option<String> {
    let error = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .map(|v| v["error"].clone())
        .unwrap_or_default();
    let lower = message.to_lowercase();
    let code = error["code"].as_str().unwrap_or("");
    let refusal = ["unsupported_parameter", "unsupported_value"].contains(&code)
        || [
            "deprecated",
            "unsupported parameter",
            "not supported",
            "unknown name",
            "extra inputs are not permitted",
            "unrecognized request argument",
        ]
        .iter()
        .any(|p| lower.contains(p));
    if !refusal {
        return None;
    }
    let quoted = |open: char, close: char| {
        let start = message.find(open)? + open.len_utf8();
        let end = start + message[start..].find(close)?;
        Some(message[start..end].to_owned()).filter(|p| !p.is_empty())
    };
    error["param"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| quoted('`', '`'))
        .or_else(|| quoted('"', '"'))
        .or_else(|| quoted('\'', '\''))
        .or(Some("unknown".to_owned()))
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

#[cfg(test)]
mod tests {
    use super::{refused_parameter, sse_block};

    #[test]
    fn a_refused_parameter_is_named_from_each_providers_words() {
        let openai = r#"{"error": {"message": "Unsupported parameter: 'temperature' is not supported with this model.", "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}}"#;
        assert_eq!(
            refused_parameter(
                openai,
                "Unsupported parameter: 'temperature' is not supported with this model."
            )
            .as_deref(),
            Some("temperature")
        );
        let anthropic = "`temperature` is deprecated for this model.";
        assert_eq!(
            refused_parameter("{}", anthropic).as_deref(),
            Some("temperature")
        );
        let gemini = r#"Invalid JSON payload received. Unknown name "additionalProperties" at 'tools[0].function_declarations[0].parameters': Cannot find field."#;
        assert_eq!(
            refused_parameter("{}", gemini).as_deref(),
            Some("additionalProperties")
        );
        assert_eq!(
            refused_parameter("{}", "max_tokens: must be at most 128000"),
            None
        );
    }

    #[test]
    fn an_event_block_gives_its_name_and_data() {
        assert_eq!(
            sse_block("event: content_block_delta\ndata: {\"a\": 1}\n\n"),
            ("content_block_delta".into(), "{\"a\": 1}".into())
        );
        assert_eq!(
            sse_block(": keep-alive\ndata: one\ndata: two\n"),
            ("message".into(), "one\ntwo".into())
        );
    }
}

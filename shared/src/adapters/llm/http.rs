//! What the provider adapters share on the wire: sending a request, reading the answer,
//! and turning an HTTP failure into the neutral error that retry and fallback read.

use super::Patience;
use crate::ports::llm::LlmError;
use reqwest::header::HeaderMap;

/// Which provider and model a call is for (every error names both), and how patient to be
/// with its answer.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub patience: &'a Patience,
    /// The request's own output bound: it sizes the ceiling of an answer sent whole and
    /// cuts a stream that never ends.
    pub max_tokens: u32,
}

/// Pieces a stream may send besides its output (starts, stops, usage, pings) before the
/// piece count alone says it passed `max_tokens`.
const FRAMING_EVENTS: u32 = 64;

impl Call<'_> {
    /// Sends `request`; returns the status, headers and body, or a timeout or transport
    /// error. The whole answer may take `patience.ceiling(max_tokens)`.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, String), LlmError> {
        let ceiling = self.patience.ceiling(self.max_tokens);
        let whole = async {
            let response = request.send().await.map_err(|e| self.transport(e))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.map_err(|e| self.transport(e))?;
            Ok((status, headers, body))
        };
        match tokio::time::timeout(ceiling, whole).await {
            Ok(answer) => answer,
            Err(_) => Err(self.timed_out(format!(
                "no whole answer within {} s (the first byte, then {} tokens at {} a second)",
                ceiling.as_secs(),
                self.max_tokens,
                self.patience.min_tokens_per_sec
            ))),
        }
    }

    /// Sends `request` and reads its answer as server-sent events, calling
    /// `on_event(event, data)` for each until it returns `true` or the stream ends. A failed
    /// status comes back as `Ok(Some((status, headers, body)))` for the adapter to map.
    ///
    /// The stream is judged by its progress: the first byte must come within
    /// `patience.first_byte`, and no silence may last longer than `patience.idle`; a
    /// healthy stream may run as long as it keeps writing. One that sends more pieces than
    /// `max_tokens` allows is cut (`LlmError::Overran`).
    pub(crate) async fn send_events(
        &self,
        request: reqwest::RequestBuilder,
        mut on_event: impl FnMut(&str, &str) -> Result<bool, LlmError>,
    ) -> Result<Option<(u16, HeaderMap, String)>, LlmError> {
        let first_byte = tokio::time::Instant::now() + self.patience.first_byte;
        let waited = |what: &str| {
            format!(
                "no first byte within {} s{what}",
                self.patience.first_byte.as_secs()
            )
        };
        let mut response = match tokio::time::timeout_at(first_byte, request.send()).await {
            Ok(sent) => sent.map_err(|e| self.transport(e))?,
            Err(_) => return Err(self.timed_out(waited(""))),
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let headers = response.headers().clone();
            let body = tokio::time::timeout(self.patience.ceiling(0), response.text())
                .await
                .map_err(|_| self.timed_out("the error's body never ended".into()))?
                .map_err(|e| self.transport(e))?;
            return Ok(Some((status, headers, body)));
        }
        let mut buffer: Vec<u8> = Vec::new();
        let (mut bytes, mut pieces) = (0usize, 0u32);
        loop {
            let next = match bytes {
                0 => tokio::time::timeout_at(first_byte, response.chunk()).await,
                _ => tokio::time::timeout(self.patience.idle, response.chunk()).await,
            };
            let chunk = match next {
                Ok(chunk) => chunk.map_err(|e| self.transport(e))?,
                Err(_) if bytes == 0 => return Err(self.timed_out(waited(" of the stream"))),
                Err(_) => {
                    return Err(self.timed_out(format!(
                        "the stream stalled: no byte for {} s after {bytes} bytes",
                        self.patience.idle.as_secs()
                    )));
                }
            };
            let ended = chunk.is_none();
            match chunk {
                // Lines may end in CRLF; JSON data never holds a raw CR, so drop them all.
                Some(piece) => {
                    bytes += piece.len();
                    buffer.extend(piece.iter().filter(|&&b| b != b'\r'))
                }
                None => buffer.extend_from_slice(b"\n\n"),
            }
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                let (event, data) = sse_block(&String::from_utf8_lossy(&block));
                if data.is_empty() {
                    continue;
                }
                pieces += 1;
                if pieces > self.max_tokens.saturating_add(FRAMING_EVENTS) {
                    return Err(LlmError::Overran {
                        provider: self.provider.to_owned(),
                        model: self.model.to_owned(),
                        max_tokens: self.max_tokens,
                        streamed: pieces - FRAMING_EVENTS,
                    });
                }
                if on_event(&event, &data)? {
                    return Ok(None);
                }
            }
            if ended {
                return Ok(None);
            }
        }
    }

    fn timed_out(&self, waited: String) -> LlmError {
        LlmError::Timeout {
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            waited,
        }
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            return self.timed_out(format!(
                "no connection within {} s",
                self.patience.connect.as_secs()
            ));
        }
        LlmError::Transport {
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            source: Box::new(e),
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
                retry_after_secs,
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

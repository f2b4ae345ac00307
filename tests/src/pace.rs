//! A real model's pace for the servers that stand in for providers: tokens a second, a
//! time to the first token, streams that stall, streams that never end, and files of a
//! real size. Without it they answer at once, which hides every timing fault of the agent
//! loop; with it a run takes as long as it would on a real model.

use autocrew_shared::ports::llm::{Content, LlmResponse};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How a stand-in server plays a model's speed. The default answers at once.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    /// Pieces (about a token each) a second; `None` sends each answer at once.
    pub tokens_per_sec: Option<f64>,
    /// Silence before the first piece of a stream (or before a whole answer).
    pub first_token: Duration,
    /// Each file `write_file` is asked to write grows to about this many tokens, with
    /// comment lines its language accepts: an ordinary file's size for a real model.
    pub file_tokens: Option<u32>,
    /// Every n-th stream stalls after its first piece: the connection stays open and
    /// nothing more comes.
    pub stall_every: Option<u32>,
    /// Streams for this model never end: text pieces come until the client stops reading.
    pub endless_model: Option<String>,
}

impl Pace {
    /// From the environment: `PACE_TPS`, `PACE_FIRST_TOKEN_MS`, `PACE_FILE_TOKENS`,
    /// `PACE_STALL_EVERY`, `PACE_ENDLESS_MODEL` (all optional).
    pub fn from_env() -> anyhow::Result<Pace> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str| -> anyhow::Result<Option<f64>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| *n > 0.0)
                        .ok_or_else(|| {
                            anyhow::anyhow!("{name} must be a number above 0, got {v:?}")
                        })
                })
                .transpose()
        };
        Ok(Pace {
            tokens_per_sec: number("PACE_TPS")?,
            first_token: Duration::from_millis(number("PACE_FIRST_TOKEN_MS")?.unwrap_or(0.0) as u64),
            file_tokens: number("PACE_FILE_TOKENS")?.map(|n| n as u32),
            stall_every: number("PACE_STALL_EVERY")?.map(|n| n as u32),
            endless_model: var("PACE_ENDLESS_MODEL"),
        })
    }

    /// Whether streams go a token a piece (any pacing) or in two halves (none).
    pub fn fine(&self) -> bool {
        self.tokens_per_sec.is_some() || self.stall_every.is_some()
    }

    /// Grows each file `response` writes to `file_tokens`, and its output usage with it.
    pub fn grow_files(&self, response: &mut LlmResponse) {
        let Some(tokens) = self.file_tokens else {
            return;
        };
        let mut added = 0u32;
        for block in &mut response.content {
            let Content::ToolUse { name, input, .. } = block else {
                continue;
            };
            if name != "write_file" {
                continue;
            }
            let (Some(path), Some(content)) = (input["path"].as_str(), input["content"].as_str())
            else {
                continue;
            };
            let Some(grown) = grown(path, content, tokens) else {
                continue;
            };
            added += u32::try_from((grown.len() - content.len()) / 4).unwrap_or(u32::MAX);
            input["content"] = serde_json::Value::String(grown);
        }
        response.usage.output = response.usage.output.saturating_add(added);
    }
}

/// `content` grown to about `tokens` tokens (four characters each) with comment lines
/// that `path`'s language accepts; `None` for a language without comments (JSON).
fn grown(path: &str, content: &str, tokens: u32) -> Option<String> {
    let (open, close) = match path.rsplit_once('.').map(|(_, ext)| ext)? {
        "ts" | "tsx" | "js" | "jsx" | "mjs" | "cjs" => ("// ", ""),
        "md" | "txt" => ("", ""),
        "html" | "htm" => ("<!-- ", " -->"),
        "css" => ("/* ", " */"),
        "py" | "sh" | "yaml" | "yml" | "toml" => ("# ", ""),
        _ => return None,
    };
    let target = tokens as usize * 4;
    let mut grown = content.to_owned();
    let mut line = 0;
    while grown.len() < target {
        line += 1;
        grown.push_str(&format!(
            "\n{open}Note {line}: written at a real model's pace, about one token a piece.{close}"
        ));
    }
    grown.push('\n');
    Some(grown)
}

/// Counts streams, to stall every n-th.
#[derive(Debug, Default)]
pub struct Streams(AtomicU32);

impl Streams {
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// `frames` (whole server-sent events) as a streamed response at `pace`: the first after
/// `first_token`, each next one a token's time later; the stream stalls after its first
/// frame when it is the n-th of `stall_every`.
pub fn stream(frames: Vec<String>, pace: &Pace, streams: &Arc<Streams>) -> Response {
    let stalls = pace
        .stall_every
        .is_some_and(|every| streams.next().is_multiple_of(every));
    let gap = pace
        .tokens_per_sec
        .map(|tps| Duration::from_secs_f64(1.0 / tps))
        .unwrap_or_default();
    let first = pace.first_token;
    let body = futures::stream::unfold(
        (frames.into_iter(), 0usize),
        move |(mut rest, sent)| async move {
            if sent == 1 && stalls {
                // Held open, silent, until the client gives up.
                futures::future::pending::<()>().await;
            }
            tokio::time::sleep(if sent == 0 { first } else { gap }).await;
            let frame = rest.next()?;
            Some((Ok::<_, std::convert::Infallible>(frame), (rest, sent + 1)))
        },
    );
    sse(Body::from_stream(body))
}

/// A stream that never ends: `start`, then `piece` at `pace` (or every millisecond) until
/// the client stops reading.
pub fn endless(start: Vec<String>, piece: String, pace: &Pace) -> Response {
    let gap = pace
        .tokens_per_sec
        .map(|tps| Duration::from_secs_f64(1.0 / tps))
        .unwrap_or(Duration::from_millis(1));
    let head = futures::stream::iter(start.into_iter().map(Ok::<_, std::convert::Infallible>));
    let tail = futures::stream::unfold(piece, move |piece| async move {
        tokio::time::sleep(gap).await;
        Some((Ok(piece.clone()), piece))
    });
    sse(Body::from_stream(futures::StreamExt::chain(head, tail)))
}

fn sse(body: Body) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::grown;

    #[test]
    fn a_file_grows_with_comments_its_language_accepts() {
        let ts = grown("src/a.ts", "export const a = 1;", 100).unwrap();
        assert!(ts.len() >= 400 && ts.starts_with("export const a = 1;\n// Note 1"));
        assert!(grown("app.json", "{}", 100).is_none());
        let html = grown("index.html", "<p>hi</p>", 50).unwrap();
        assert!(
            html.lines()
                .skip(1)
                .all(|l| l.is_empty() || l.starts_with("<!-- "))
        );
    }
}

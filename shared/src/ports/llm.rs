//! The one LLM port. Providers convert their own wire types to and from these at their
//! boundary; nothing else sees a provider's JSON.

use super::BackendError;
use super::budget::BudgetScope;
use crate::domain::capabilities::{Capabilities, ReasoningEffort};
use crate::domain::records::TokenUsage;
use crate::domain::{Decimal, MicroUsd, RunId, RunStatus};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Why a call was refused before it reached a provider. The budget's refusal is told apart
/// by its variant; its text keeps the stable `budget_exceeded` name steps fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The call's worst case is more than a budget has left.
    #[error(
        "budget_exceeded: the call may cost {needed}, {available} is left of the {scope:?} budget"
    )]
    BudgetExceeded {
        scope: BudgetScope,
        needed: MicroUsd,
        available: MicroUsd,
    },
    /// The run has ended: it spends nothing more.
    #[error("run_ended: run {run} is {status}")]
    RunEnded { run: RunId, status: RunStatus },
    /// The model has no price in the table (a call is never made unpriced).
    #[error("{0}")]
    Unpriced(String),
    #[error("provider {0:?} is not configured")]
    ProviderNotConfigured(String),
    /// The routing policy has no model for the call.
    #[error("{0}")]
    NoRoute(String),
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    /// The model asks for a tool call.
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// The answer to a tool call, sent back to the model.
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
    /// The model's reasoning as its provider returned it (an Anthropic thinking block with
    /// its signature, a Gemini thought signature). Opaque: sent back, unchanged and in
    /// place, only to the provider that produced it, which needs it to continue a tool
    /// loop; never shown, never sent elsewhere.
    Reasoning {
        provider: String,
        data: serde_json::Value,
    },
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Content>,
}

impl Message {
    /// A user turn with plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![Content::Text { text: text.into() }],
        }
    }
}

/// A tool the model may call; `input_schema` is a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// A provider-neutral request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmRequest {
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    /// Sent only to a model whose capabilities accept it.
    pub temperature: Option<Decimal>,
    /// How much the caller wants the model to reason; each model maps it to its own
    /// setting (or its default) through its capabilities.
    pub reasoning: Option<ReasoningEffort>,
    /// When set, the answer must be JSON matching this schema.
    pub response_schema: Option<serde_json::Value>,
    /// What the model accepts, set by the gateway from the model table for the model it
    /// calls. Adapters build the body from it and never send what it does not allow.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    Other,
}

/// A provider-neutral answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    pub provider: String,
    pub model: String,
    pub content: Vec<Content>,
    pub stop_reason: StopReason,
    pub usage: TokenUsage,
}

impl LlmResponse {
    /// All text blocks, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }
}

/// Why a call failed. Retry and fallback decisions read the variant, never the message.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} rate-limited {model}")]
    RateLimited {
        provider: String,
        model: String,
        retry_after_secs: Option<u64>,
    },
    /// A 5xx, Anthropic's 529 (overloaded), or no concurrency slot free in time (status 0);
    /// `retry_after_secs` when the provider said how long to wait.
    #[error("{provider} is unavailable for {model} (status {status})")]
    Unavailable {
        provider: String,
        model: String,
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// No progress in time: no connection, no first byte, or a silence in the stream
    /// longer than the idle limit (`waited` says which).
    #[error("{provider} timed out for {model}: {waited}")]
    Timeout {
        provider: String,
        model: String,
        waited: String,
    },
    /// A stream that went on past the request's `max_tokens` without ending: cut there,
    /// and charged for what it sent.
    #[error(
        "{provider} streamed past max_tokens ({max_tokens}) for {model} without ending: cut after {streamed} pieces"
    )]
    Overran {
        provider: String,
        model: String,
        max_tokens: u32,
        /// Pieces of output received; each carries at least one token.
        streamed: u32,
    },
    #[error("{provider} rejected the request for {model}: {message}")]
    Rejected {
        provider: String,
        model: String,
        message: String,
    },
    #[error("{provider} sent a response for {model} that could not be read")]
    Malformed {
        provider: String,
        model: String,
        #[source]
        source: BackendError,
    },
    /// Refused before calling the provider: why is a `Refusal`.
    #[error("the call to {provider} model {model} was refused: {reason}")]
    Refused {
        provider: String,
        model: String,
        reason: Refusal,
    },
    /// The model declined to answer (a safety refusal), as opposed to a failed call.
    #[error("{model} of {provider} refused to answer: {message}")]
    Declined {
        provider: String,
        model: String,
        message: String,
    },
    /// The provider refused a parameter we sent (deprecated or unsupported for this
    /// model): the model table or the adapter is wrong. Retrying or falling back would
    /// repeat it, so the call stops here, naming both.
    #[error(
        "configuration error: {provider} model {model} does not accept the parameter {parameter:?} ({message}); fix its entry in the model table"
    )]
    Misconfigured {
        provider: String,
        model: String,
        parameter: String,
        message: String,
    },
    #[error("{provider} could not be reached for {model}")]
    Transport {
        provider: String,
        model: String,
        #[source]
        source: BackendError,
    },
}

impl LlmError {
    /// Worth trying again (same or next model): rate limits, 5xx, timeouts, transport.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Unavailable { .. }
                | LlmError::Timeout { .. }
                | LlmError::Overran { .. }
                | LlmError::Transport { .. }
        )
    }

    /// How long the provider asked to be left alone, when it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            LlmError::RateLimited {
                retry_after_secs, ..
            }
            | LlmError::Unavailable {
                retry_after_secs, ..
            } => retry_after_secs.map(std::time::Duration::from_secs),
            _ => None,
        }
    }

    /// What a failed call was still charged for: a cut stream's output so far.
    pub fn usage(&self) -> Option<TokenUsage> {
        match self {
            LlmError::Overran { streamed, .. } => Some(TokenUsage {
                output: *streamed,
                ..TokenUsage::default()
            }),
            _ => None,
        }
    }
}

/// A chat model.
#[async_trait]
pub trait LlmClient: Send + Sync {
    /// The provider's name as written to the ledger ("anthropic", "offline").
    fn provider(&self) -> &str;
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError>;
    /// Like `complete`, over the provider's streaming API: `on_text` gets each piece of
    /// output as it arrives (text, and tool arguments as JSON). A provider without
    /// streaming answers whole and passes each block once.
    async fn stream(
        &self,
        request: &LlmRequest,
        on_text: &TextSink,
    ) -> Result<LlmResponse, LlmError> {
        let response = self.complete(request).await?;
        for block in &response.content {
            match block {
                Content::Text { text } if !text.is_empty() => on_text(text),
                Content::ToolUse { input, .. } => on_text(&input.to_string()),
                _ => {}
            }
        }
        Ok(response)
    }
}

/// Where streamed text goes, piece by piece.
pub type TextSink = dyn Fn(&str) + Send + Sync;

/// Vectors for texts, for the semantic cache and agent memory.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The provider's name as written to the ledger.
    fn provider(&self) -> &str;
    /// The model, stored with every vector it makes.
    fn model(&self) -> &str;
    /// One vector per text, and the input tokens it was charged.
    async fn embed(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u32), LlmError>;
}

/// An image to make: what it shows, its size in pixels, and its quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRequest {
    pub prompt: String,
    /// `1024x1024`, `1536x1024` (landscape) or `1024x1536` (portrait).
    pub size: String,
    /// `low`, `medium` or `high`.
    pub quality: String,
    /// A transparent background (a logo, an icon's foreground).
    pub transparent: bool,
}

impl ImageRequest {
    /// The image tokens the provider charges for this size and quality (gpt-image-1's
    /// published counts): the output side of the call's worst case.
    pub fn output_tokens(&self) -> u32 {
        let square = self.size == "1024x1024";
        match (self.quality.as_str(), square) {
            ("low", true) => 272,
            ("low", false) => 408,
            ("medium", true) => 1056,
            ("medium", false) => 1584,
            (_, true) => 4160,
            (_, false) => 6240,
        }
    }
}

/// Images from a prompt, as PNG bytes (the designer's logo and app icon).
#[async_trait]
pub trait ImageMaker: Send + Sync {
    /// The provider's name as written to the ledger.
    fn provider(&self) -> &str;
    fn model(&self) -> &str;
    /// One PNG for `request`, and the tokens it was charged.
    async fn generate(&self, request: &ImageRequest) -> Result<(Vec<u8>, TokenUsage), LlmError>;
}

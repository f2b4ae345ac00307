//! LLM providers behind the `LlmClient` port.

mod anthropic;
mod gemini;
mod http;
mod offline;
mod offline_files;
mod openai;
pub mod select;

pub use anthropic::{ANTHROPIC_VERSION, AnthropicClient};
pub use gemini::GeminiClient;
pub use offline::{OFFLINE_MODEL, OFFLINE_PROVIDER, OfflineLlm};
pub use openai::OpenAiClient;

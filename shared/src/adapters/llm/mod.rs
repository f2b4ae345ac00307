//! LLM providers behind the `LlmClient` port.

mod offline;
mod offline_files;
mod openai;

pub use offline::{OFFLINE_MODEL, OFFLINE_PROVIDER, OfflineLlm};
pub use openai::OpenAiClient;

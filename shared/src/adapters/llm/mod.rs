//! LLM providers behind the `LlmClient` port.

mod anthropic;
mod embeddings;
mod gemini;
mod http;
mod images;
mod offline;
mod offline_files;
mod openai;
mod patience;
pub mod select;

pub use anthropic::{ANTHROPIC_VERSION, AnthropicClient};
pub use embeddings::{
    EMBEDDING_DIM, OFFLINE_EMBEDDING_MODEL, OfflineEmbedder, OpenAiEmbedder, offline_vector,
};
pub use gemini::GeminiClient;
pub use images::{OFFLINE_IMAGE_MODEL, OfflineImages, OpenAiImages};
pub use offline::{OFFLINE_MODEL, OFFLINE_PROVIDER, OfflineLlm};
pub use openai::OpenAiClient;
pub use patience::Patience;

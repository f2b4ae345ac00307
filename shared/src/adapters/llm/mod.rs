//! LLM providers behind the `LlmClient` port.

mod offline;
mod offline_files;

pub use offline::{OFFLINE_MODEL, OFFLINE_PROVIDER, OfflineLlm};

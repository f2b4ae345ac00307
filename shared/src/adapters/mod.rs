//! Adapters: the ports on real backends. Every endpoint comes from config, so the same code
//! talks to AWS or to the local stack.

pub mod aws;
pub mod llm;
pub mod postgres;

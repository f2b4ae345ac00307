//! Embeddings: OpenAI's `/embeddings` (any compatible server too) when configured, and a
//! deterministic offline embedder otherwise. Both give 1536-dimension unit vectors, the
//! dimension `agent_memory`'s HNSW index is built for.

use super::Patience;
use super::http::{Call, error_message, retry_after};
use crate::config::Secret;
use crate::ports::llm::{Embedder, LlmError};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The vectors' dimension.
pub const EMBEDDING_DIM: usize = 1536;
/// The offline embedder's model name, stored with its vectors.
pub const OFFLINE_EMBEDDING_MODEL: &str = "offline-hash-1536";

/// Feature hashing over words and word pairs: texts sharing words get close vectors. It
/// knows no synonyms; it is there so the semantic cache and memory work with no key.
#[derive(Debug, Clone, Default)]
pub struct OfflineEmbedder;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The offline vector for `text`.
pub fn offline_vector(text: &str) -> Vec<f32> {
    let words = words(text);
    let pairs = words.windows(2).map(|w| format!("{} {}", w[0], w[1]));
    let mut vector = vec![0f32; EMBEDDING_DIM];
    for feature in words.iter().cloned().chain(pairs) {
        let digest = Sha256::digest(feature.as_bytes());
        let index = usize::from(u16::from_le_bytes([digest[0], digest[1]])) % EMBEDDING_DIM;
        let sign = if digest[2] & 1 == 0 { 1.0 } else { -1.0 };
        vector[index] += sign;
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    vector
}

#[async_trait]
impl Embedder for OfflineEmbedder {
    fn provider(&self) -> &str {
        super::OFFLINE_PROVIDER
    }

    fn model(&self) -> &str {
        OFFLINE_EMBEDDING_MODEL
    }

    async fn embed(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u32), LlmError> {
        let tokens = texts.iter().map(|t| words(t).len()).sum::<usize>();
        Ok((
            texts.iter().map(|t| offline_vector(t)).collect(),
            u32::try_from(tokens).unwrap_or(u32::MAX),
        ))
    }
}

/// OpenAI's embeddings endpoint.
#[derive(Clone)]
pub struct OpenAiEmbedder {
    http: reqwest::Client,
    patience: Patience,
    base_url: String,
    api_key: Secret<String>,
    model: String,
}

impl OpenAiEmbedder {
    pub fn new(
        base_url: &str,
        api_key: Secret<String>,
        model: &str,
        patience: impl Into<Patience>,
    ) -> Result<Self, reqwest::Error> {
        let patience = patience.into();
        Ok(OpenAiEmbedder {
            http: patience.client()?,
            patience,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: model.to_owned(),
        })
    }
}

#[derive(Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    usage: WireEmbeddingUsage,
}

#[derive(Deserialize)]
struct WireEmbedding {
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct WireEmbeddingUsage {
    prompt_tokens: u32,
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn provider(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, u32), LlmError> {
        let call = Call {
            provider: "openai",
            model: &self.model,
            patience: &self.patience,
            max_tokens: 0,
        };
        let http = self
            .http
            .post(format!("{}/embeddings", self.base_url))
            .bearer_auth(self.api_key.expose())
            .json(&json!({"model": self.model, "input": texts, "dimensions": EMBEDDING_DIM}));
        let (status, headers, body) = call.send(http).await?;
        if !(200..300).contains(&status) {
            return Err(call.status_error(status, retry_after(&headers), &error_message(&body)));
        }
        let mut wire: WireEmbeddings =
            serde_json::from_str(&body).map_err(|e| call.malformed(Box::new(e)))?;
        if wire.data.len() != texts.len() {
            return Err(call.malformed(
                format!("{} vectors for {} texts", wire.data.len(), texts.len()).into(),
            ));
        }
        wire.data.sort_by_key(|d| d.index);
        let vectors: Vec<Vec<f32>> = wire.data.into_iter().map(|d| d.embedding).collect();
        if let Some(bad) = vectors.iter().find(|v| v.len() != EMBEDDING_DIM) {
            return Err(call.malformed(
                format!("a vector has {} dimensions, not {EMBEDDING_DIM}", bad.len()).into(),
            ));
        }
        Ok((vectors, wire.usage.prompt_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn offline_vectors_are_deterministic_unit_vectors_that_track_shared_words() {
        let a = offline_vector("Build a recipe app for keto dieters");
        assert_eq!(a, offline_vector("Build a recipe app for keto dieters"));
        assert_eq!(a.len(), EMBEDDING_DIM);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = offline_vector("build a recipe app for keto dieters!");
        let close = offline_vector("Build a keto recipe app for dieters");
        let far = offline_vector("Write a CRM for dentists in Berlin");
        assert!(cosine(&a, &near) > 0.99);
        assert!(cosine(&a, &close) > cosine(&a, &far));
        assert!(cosine(&a, &far) < 0.3);
    }
}

//! What the caches key on.

use crate::domain::UserId;
use crate::ports::llm::{Content, LlmRequest};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The exact-match key: sha-256 over the user it belongs to (`None`: shared by every user),
/// the provider and everything in the request that shapes the answer (model, system
/// prompt, messages, tools and parameters). serde_json writes object keys in sorted order,
/// so equal requests give equal keys.
pub fn cache_key(owner: Option<UserId>, provider: &str, request: &LlmRequest) -> String {
    #[derive(Serialize)]
    struct Keyed<'a> {
        owner: Option<UserId>,
        provider: &'a str,
        request: &'a LlmRequest,
    }
    let keyed = Keyed {
        owner,
        provider,
        request,
    };
    let bytes = serde_json::to_vec(&keyed).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// The user's question: the text of the last user turn.
pub fn question_of(request: &LlmRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .filter(|m| m.role == crate::ports::llm::Role::User)
        .flat_map(|m| m.content.iter())
        .find_map(|c| match c {
            Content::Text { text } => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::llm::Message;

    fn request(text: &str, temperature: Option<&str>) -> LlmRequest {
        LlmRequest {
            model: "gpt-6-luna".into(),
            system: "be brief".into(),
            messages: vec![Message::user(text)],
            max_tokens: 100,
            temperature: temperature.map(|t| crate::domain::Decimal::parse(t).unwrap()),
            ..LlmRequest::default()
        }
    }

    #[test]
    fn the_key_changes_with_anything_that_shapes_the_answer() {
        let ana = Some(UserId::new());
        let base = cache_key(ana, "openai", &request("hi", Some("0.2")));
        assert_eq!(base.len(), 64);
        assert_eq!(base, cache_key(ana, "openai", &request("hi", Some("0.2"))));
        assert_ne!(base, cache_key(ana, "openai", &request("hi!", Some("0.2"))));
        assert_ne!(base, cache_key(ana, "openai", &request("hi", Some("0.3"))));
        assert_ne!(
            base,
            cache_key(ana, "openai-compatible", &request("hi", Some("0.2")))
        );
        assert_ne!(
            base,
            cache_key(Some(UserId::new()), "openai", &request("hi", Some("0.2"))),
            "another user's same prompt is another key"
        );
        assert_ne!(base, cache_key(None, "openai", &request("hi", Some("0.2"))));
        assert_eq!(
            question_of(&request("what is keto?", None)),
            "what is keto?"
        );
    }
}

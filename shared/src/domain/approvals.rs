//! Approvals: a critical action waits for a person's decision, bound to the exact payload
//! that person was shown. No I/O here.

use super::actions::ApprovedAction;
use super::ids::{ApprovalId, ProjectId, RunId, TaskId, UserId};
use super::kinds::ApprovalStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A request for a decision on one critical tool call, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    pub id: ApprovalId,
    pub project_id: ProjectId,
    pub run_id: RunId,
    pub task_id: TaskId,
    /// The tool the agent called.
    pub tool: String,
    /// The exact action, as shown to the person and as it will run.
    pub payload: ApprovedAction,
    /// `payload.hash()`: a decision must quote it.
    pub payload_hash: String,
    pub status: ApprovalStatus,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<UserId>,
    pub reason: Option<String>,
    /// When the approved action ran, and what it returned (once).
    pub executed_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub created_at: DateTime<Utc>,
}

/// What a critical call asks to do, before it is stored as an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    pub tool: String,
    /// The tool call's idempotency key (`crew::tools::call_key`).
    pub call_key: String,
    pub payload: ApprovedAction,
    pub expires_at: DateTime<Utc>,
}

/// A person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn status(self) -> ApprovalStatus {
        match self {
            Decision::Approve => ApprovalStatus::Approved,
            Decision::Reject => ApprovalStatus::Rejected,
        }
    }
}

/// The sha-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The sha-256 (hex) of the payload's canonical JSON: object keys sorted at every level,
/// no whitespace. A client can compute it from the payload it shows.
pub fn payload_hash(payload: &Value) -> String {
    let mut text = String::new();
    canonical(payload, &mut text);
    sha256_hex(text.as_bytes())
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_ignores_key_order_but_not_content() {
        let a = json!({"tool": "publish", "args": {"path": "a.html", "n": [1, 2]}});
        let b: Value =
            serde_json::from_str(r#"{"args":{"n":[1,2],"path":"a.html"},"tool":"publish"}"#)
                .unwrap();
        assert_eq!(payload_hash(&a), payload_hash(&b));
        assert_ne!(
            payload_hash(&a),
            payload_hash(&json!({"tool": "publish", "args": {"path": "b.html", "n": [1, 2]}}))
        );
        assert_eq!(payload_hash(&a).len(), 64);
        // As Python computes it: sha256(json.dumps(v, sort_keys=True, separators=(",", ":"),
        // ensure_ascii=False).encode()).
        assert_eq!(
            payload_hash(&json!({"b": 1, "a": "x"})),
            hex::encode(Sha256::digest(br#"{"a":"x","b":1}"#))
        );
    }
}

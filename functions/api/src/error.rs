//! The one mapping from errors to HTTP statuses. A 4xx says exactly what is wrong with the
//! request; a 5xx says nothing and sends the cause chain to the log.

use autocrew_shared::ports::{StateMachineError, StoreError};
use lambda_http::{Body, Response};

/// What every error answer holds.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What is wrong, in words.
    pub error: String,
    /// The field, parameter or header at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            field: None,
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    /// 401: no credentials, or ones that do not hold; says which.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// The request is well formed but cannot be processed as sent (Stripe's 422 for an
    /// idempotency key reused with another request).
    #[error("{0}")]
    Unprocessable(String),
    /// 503: a dependency outside us failed (the mail provider); trying later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Unprocessable(_) => 422,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    /// The response: `{"error": ..., "field": ...}` for 4xx, an opaque body for 5xx.
    pub fn into_response(self) -> Response<Body> {
        let body = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %self, cause = ?cause, "request failed");
                ErrorBody::new("internal error")
            }
            ApiError::BadRequest { field, message } => ErrorBody {
                error: message.clone(),
                field: Some(field.clone()),
            },
            other => ErrorBody::new(other.to_string()),
        };
        let mut response = json_response(self.status(), &body);
        if let ApiError::Unauthorized(_) = self
            && let Ok(value) = r#"Bearer error="invalid_token""#.parse()
        {
            response.headers_mut().insert("www-authenticate", value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, .. } => ApiError::NotFound(what),
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            e @ StoreError::RunEnded { .. } => ApiError::Conflict(e.to_string()),
            e @ StoreError::IdempotencyMismatch { .. } => ApiError::Unprocessable(e.to_string()),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<StateMachineError> for ApiError {
    fn from(e: StateMachineError) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

/// A JSON response with `status`.
pub fn json_response(status: u16, body: &impl serde::Serialize) -> Response<Body> {
    // The answers are ids, text, numbers, times and JSON values: they always serialise.
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be serialised");
            (500, r#"{"error":"internal error"}"#.to_owned())
        }
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(text))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

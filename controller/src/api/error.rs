//! API failures and how they become HTTP replies with an `ApiError` body.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use vmctl_protocol::api::ApiError;
use vmctl_state::StoreError;

/// A failed request: a status code and a body a person can act on.
#[derive(Debug)]
pub struct ApiFailure {
    status: StatusCode,
    body: ApiError,
}

impl ApiFailure {
    /// A failure with a code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiFailure {
            status,
            body: ApiError {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    /// 404 for a named object.
    pub fn not_found(kind: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} {name:?} does not exist"),
        )
    }

    /// 400 with the reasons a document was refused.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "Store failed while serving a request");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

//! Error answers in the API's shape: a status code and
//! `{"id": "not_found", "message": "...", "request_id": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::ids;
use super::shapes;

/// One error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The short id the API uses for it.
    pub id: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// 404 for a resource that does not exist (or no longer does).
    pub fn not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            id: "not_found",
            message: "The resource you were accessing could not be found.".into(),
        }
    }

    /// 422 with `message`.
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            id: "unprocessable_entity",
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            id: "bad_request",
            message: message.into(),
        }
    }

    /// 401, worded as the real API words it.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            id: "Unauthorized",
            message: "Unable to authenticate you".into(),
        }
    }

    /// 429.
    pub fn too_many_requests() -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            id: "too_many_requests",
            message: "API Rate limit exceeded.".into(),
        }
    }

    /// 500 with `message`.
    pub fn server_error(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            id: "server_error",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = shapes::error(self.id, &self.message, &ids::uuid());
        (self.status, Json(body)).into_response()
    }
}

/// Parses a JSON request body, answering 400 the way the API does when it cannot.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))
}

/// Parses an integer path id; anything else names no resource, so 404.
pub fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| ApiError::not_found())
}

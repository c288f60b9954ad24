//! The JSON error every API failure answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// `{"error": {"status": 400, "parameter": "step", "message": "..."}}`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The query or path parameter at fault, for 400s.
    pub parameter: Option<&'static str>,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
    message: &'a str,
}

impl ApiError {
    pub fn bad_parameter(parameter: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            parameter: Some(parameter),
            message: format!("invalid parameter '{parameter}': {}", message.into()),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            parameter: None,
            message: message.into(),
        }
    }

    /// What the Engine (behind the agent) failed to answer.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            parameter: None,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            parameter: None,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "API request failed");
        }
        let body = Body {
            error: Detail {
                status: self.status.as_u16(),
                parameter: self.parameter,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

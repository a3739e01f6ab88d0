//! Domain errors as gRPC status codes: one place decides what a caller sees.

use c2d_subscriber::log_position::LogPositionError;
use tonic::Status;

use crate::store::StoreError;

/// A request CrmService cannot answer, in the directory's words.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the stream's state from NATS: {0}")]
    Stream(String),
    #[error(transparent)]
    LogPosition(#[from] LogPositionError),
}

impl From<CrmError> for Status {
    fn from(error: CrmError) -> Status {
        match error {
            CrmError::InvalidArgument(message) => Status::invalid_argument(message),
            CrmError::NotFound(message) => Status::not_found(message),
            // The store or NATS is down: worth retrying, and the operator's to fix.
            CrmError::Store(error) => {
                tracing::error!(%error, "CrmService call failed");
                Status::unavailable(format!("{error}; check the store (CRM_STORE_URL)"))
            }
            CrmError::Stream(message) => Status::unavailable(message),
            CrmError::LogPosition(error) => Status::unavailable(error.to_string()),
        }
    }
}

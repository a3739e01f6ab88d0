//! Domain errors as gRPC status codes: one place decides what a caller sees.

use tonic::Status;

use crate::query::QueryError;

impl From<QueryError> for Status {
    fn from(error: QueryError) -> Status {
        // Every query error is the caller's to fix; the message says how.
        Status::invalid_argument(error.to_string())
    }
}

//! Domain errors as gRPC status codes: one place decides what a caller sees.

use c2d_calendar::CalendarError;
use c2d_calendar::store::StoreError;
use tonic::Status;

use crate::query::QueryError;

impl From<QueryError> for Status {
    fn from(error: QueryError) -> Status {
        // Every query error is the caller's to fix; the message says how.
        Status::invalid_argument(error.to_string())
    }
}

/// What a calendar call's caller sees of a failure of the calendars' bucket.
pub fn calendar_store_status(error: StoreError) -> Status {
    match error {
        // The caller's to fix: a tenant name or a calendar the bucket refuses.
        StoreError::BadTenant(_) | StoreError::Calendar(_) => {
            Status::invalid_argument(error.to_string())
        }
        // NATS: try again once the operator has seen to it.
        _ => Status::unavailable(error.to_string()),
    }
}

/// What the caller of SetCalendar sees of a calendar that does not parse: the message names
/// the place in the JSON and the fix.
pub fn calendar_status(error: CalendarError) -> Status {
    Status::invalid_argument(error.to_string())
}

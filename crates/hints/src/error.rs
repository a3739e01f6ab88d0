//! What a caller of HintsService can get wrong, and what the service cannot do right now, as
//! gRPC status codes: one place decides what a caller sees.

use tonic::Status;

/// Why a HintsService call was not answered.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("tenant is empty: name the Chat2Desk account (the {{tenant}} of its webhook URL)")]
    NoTenant,
    #[error(
        "nothing to suggest for: give message_id, text, or the client_id/dialog_id of a conversation"
    )]
    NothingAsked,
    #[error("feedback needs message_id and hint_id above 0, as Chat2Desk sends them")]
    IncompleteFeedback,
    #[error(
        "the event log cannot take the feedback now ({0}); is NATS up and the gateway started (it creates the CHAT2DESK stream)? Retry"
    )]
    LogUnavailable(String),
}

impl From<RequestError> for Status {
    fn from(error: RequestError) -> Status {
        match error {
            RequestError::LogUnavailable(_) => Status::unavailable(error.to_string()),
            _ => Status::invalid_argument(error.to_string()),
        }
    }
}

//! Finding the newest events a search asks for, in a log that may hold millions.
//!
//! A search wants the newest matches, not the oldest of its time range: it walks back from the
//! end of the log a stretch at a time (2,000 sequences, then four times more each step) until
//! it has a page of matches, reaches the start of its range, or has read
//! `CONSOLE_SEARCH_LIMIT` events. A page of a busy tenant's recent events therefore costs one
//! short read whatever the size of the log; only a search that matches rarely reads far.

use std::time::SystemTime;

use c2d_proto::events::STREAM;
use c2d_proto::events::v1::Event;
use c2d_subscriber::history::{self, StoredEvent};
use prost::Message as _;

use crate::auth::Principal;
use crate::typed;

/// The first stretch read back from the end.
const FIRST_STRETCH: u64 = 2_000;

/// What an event must hold, besides its subject.
#[derive(Debug, Default, Clone)]
pub struct Matcher {
    /// Text the raw body contains, ignoring ASCII case; empty: any.
    pub text: String,
    /// The client the event is about (its payload's `client_id`).
    pub client: Option<i64>,
    /// The request the event is about (its payload's `request_id`).
    pub request: Option<i64>,
}

impl Matcher {
    /// Whether `event` is one the search asks for. The ids are first looked for as text in
    /// the raw body (cheap), then checked on the typed event.
    pub fn matches(&self, event: &Event) -> bool {
        if !self.text.is_empty() && !contains(&event.raw, &self.text) {
            return false;
        }
        let ids = [("client_id", self.client), ("request_id", self.request)];
        if ids
            .iter()
            .any(|(_, id)| id.is_some_and(|id| !contains(&event.raw, &id.to_string())))
        {
            return false;
        }
        if ids.iter().all(|(_, id)| id.is_none()) {
            return true;
        }
        let Some(typed) = typed::decode(&event.encode_to_vec()) else {
            return false;
        };
        ids.iter()
            .all(|(name, id)| id.is_none() || typed::id(&typed, name) == *id)
    }
}

/// What a search found, newest first.
#[derive(Debug, Default)]
pub struct Found {
    pub events: Vec<StoredEvent>,
    /// Events read to find them.
    pub read: usize,
    /// Whether `CONSOLE_SEARCH_LIMIT` stopped the walk before the start of the range.
    pub limited: bool,
}

/// Why the log could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the event log cannot be read: {0}")]
    Stream(String),
    #[error(transparent)]
    Read(#[from] c2d_subscriber::SubscribeError),
}

/// The newest `wanted` events on `subject` received at or after `since` that `principal` may
/// see and `matcher` accepts, reading at most `limit` events.
pub async fn newest(
    nats: &async_nats::Client,
    subject: &str,
    since: SystemTime,
    matcher: &Matcher,
    principal: &Principal,
    wanted: usize,
    limit: usize,
) -> Result<Found, SearchError> {
    let mut stream = async_nats::jetstream::new(nats.clone())
        .get_stream(STREAM)
        .await
        .map_err(|error| SearchError::Stream(error.to_string()))?;
    let state = stream
        .info()
        .await
        .map_err(|error| SearchError::Stream(error.to_string()))?
        .state
        .clone();
    let mut found = Found::default();
    if state.messages == 0 {
        return Ok(found);
    }
    let since = prost_types::Timestamp::from(since);
    let (mut to, mut stretch) = (state.last_sequence, FIRST_STRETCH);
    loop {
        let from = to.saturating_sub(stretch - 1).max(state.first_sequence);
        let part = history::read_between(
            nats.clone(),
            from,
            to,
            Some(subject.to_owned()),
            limit - found.read,
        )
        .await?;
        found.read += part.events.len();
        let mut before_range = false;
        for stored in part.events.into_iter().rev() {
            let received = stored.event.received_at.unwrap_or_default();
            if (received.seconds, received.nanos) < (since.seconds, since.nanos) {
                before_range = true;
                continue;
            }
            if found.events.len() < wanted
                && principal.may_see(&stored.event.tenant)
                && matcher.matches(&stored.event)
            {
                found.events.push(stored);
            }
        }
        if found.events.len() >= wanted || before_range || from == state.first_sequence {
            return Ok(found);
        }
        if found.read >= limit || part.truncated {
            found.limited = true;
            return Ok(found);
        }
        to = from - 1;
        stretch = stretch.saturating_mul(4);
    }
}

/// Whether `raw` contains `text`, ignoring ASCII case.
pub fn contains(raw: &[u8], text: &str) -> bool {
    let text = text.as_bytes();
    raw.windows(text.len())
        .any(|window| window.eq_ignore_ascii_case(text))
}

#[cfg(test)]
mod tests {
    use c2d_proto::events::v1::{Message, event::Payload};

    use super::*;

    #[test]
    fn text_is_found_whatever_its_case() {
        assert!(contains(br#"{"text":"Hello World"}"#, "hello world"));
        assert!(!contains(b"abc", "abcd"));
    }

    #[test]
    fn a_client_is_matched_on_the_typed_event_not_on_any_number_in_the_body() {
        let event = |client_id: i64, raw: &str| Event {
            raw: raw.as_bytes().to_vec().into(),
            payload: Some(Payload::Inbox(Message {
                client_id: Some(client_id),
                request_id: Some(9),
                ..Default::default()
            })),
            ..Default::default()
        };
        let matcher = Matcher {
            client: Some(512),
            ..Default::default()
        };
        assert!(matcher.matches(&event(512, r#"{"client_id":512}"#)));
        // 512 in the text, but the event is about client 7.
        assert!(!matcher.matches(&event(7, r#"{"client_id":7,"text":"room 512"}"#)));
        let both = Matcher {
            client: Some(512),
            request: Some(9),
            text: "HELLO".into(),
        };
        assert!(both.matches(&event(
            512,
            r#"{"client_id":512,"request_id":9,"text":"hello"}"#
        )));
        assert!(!both.matches(&event(512, r#"{"client_id":512,"request_id":9}"#)));
    }
}

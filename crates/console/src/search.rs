//! Finding the newest events a search asks for, in a log that may hold millions.
//!
//! A search wants the newest matches, not the oldest of its time range: it walks back from the
//! end of the log (or from where the previous page stopped) a stretch at a time (2,000
//! sequences, then four times more each step, never more than the events it may still read)
//! until it has a page of matches or reaches the first event of its time range. A page stops
//! early, and says where the next page goes on, when it has read `CONSOLE_SEARCH_LIMIT` events
//! or walked [`MOST_STRETCHES`] stretches (a narrow subject in a busy log reads little per
//! stretch, but each stretch is a few round trips to NATS). So a page of a busy tenant's
//! recent events costs one short read whatever the size of the log, a page's cost is bounded
//! whatever the search, and nothing is out of reach.

use std::time::SystemTime;

use c2d_proto::events::STREAM;
use c2d_proto::events::v1::Event;
use c2d_subscriber::StartAt;
use c2d_subscriber::history::{self, StoredEvent};
use prost::Message as _;

use crate::auth::Principal;
use crate::typed;

/// The first stretch read back from the end.
const FIRST_STRETCH: u64 = 2_000;
/// Stretches one page walks at most.
pub const MOST_STRETCHES: usize = 16;

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
            .any(|(_, id)| id.is_some_and(|id| !contains_number(&event.raw, id)))
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
    /// Where the next page goes on, when this one stopped before the start of the range: the
    /// oldest sequence it examined (the next page reads before it).
    pub older_from: Option<u64>,
    /// Whether a limit (events read, stretches walked) stopped it, not a full page.
    pub limited: bool,
    /// The last sequence of the stream when the search began: a live tail goes on after it.
    pub last_sequence: u64,
}

/// Why the log could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the event log cannot be read: {0}")]
    Stream(String),
    #[error(transparent)]
    Read(#[from] c2d_subscriber::SubscribeError),
}

/// What one page of a search asks for.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The subjects (a tenant's, a hook type's, or all).
    pub subject: &'a str,
    /// The start of the time range (by when the gateway received an event).
    pub since: SystemTime,
    /// Only events before this sequence: where the previous page stopped.
    pub before: Option<u64>,
    pub matcher: &'a Matcher,
    /// Matches on a full page.
    pub wanted: usize,
    /// Events read at most (`CONSOLE_SEARCH_LIMIT`).
    pub limit: usize,
}

/// The newest events of `page` that `principal` may see.
pub async fn newest(
    nats: &async_nats::Client,
    jetstream: &async_nats::jetstream::Context,
    principal: &Principal,
    page: Page<'_>,
) -> Result<Found, SearchError> {
    let Page {
        subject,
        since,
        before,
        matcher,
        wanted,
        limit,
    } = page;
    let mut stream = jetstream
        .get_stream(STREAM)
        .await
        .map_err(|error| SearchError::Stream(error.to_string()))?;
    let state = stream
        .info()
        .await
        .map_err(|error| SearchError::Stream(error.to_string()))?
        .state
        .clone();
    let mut found = Found {
        last_sequence: state.last_sequence,
        ..Found::default()
    };
    if state.messages == 0 {
        return Ok(found);
    }
    // The first event of the range: the walk ends there, not at the start of the stream.
    let Some(lower) = first_since(nats, since).await? else {
        return Ok(found);
    };
    let since = prost_types::Timestamp::from(since);
    let last = match before {
        Some(before) => before.saturating_sub(1).min(state.last_sequence),
        None => state.last_sequence,
    };
    if last < lower {
        return Ok(found);
    }
    let (mut to, mut stretch) = (last, FIRST_STRETCH);
    for walked in 1..=MOST_STRETCHES {
        // Never more sequences than the events left to read: a stretch is read oldest first,
        // and one cut short by the limit would skip its newest events.
        let span = stretch.min((limit - found.read) as u64).max(1);
        let from = to.saturating_sub(span - 1).max(lower);
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
        let mut oldest = from;
        for stored in part.events.into_iter().rev() {
            let received = stored.event.received_at.unwrap_or_default();
            if (received.seconds, received.nanos) < (since.seconds, since.nanos) {
                before_range = true;
                continue;
            }
            if found.events.len() == wanted {
                break;
            }
            oldest = stored.stream_sequence;
            if principal.may_see(&stored.event.tenant) && matcher.matches(&stored.event) {
                found.events.push(stored);
            }
        }
        if before_range || (from == lower && found.events.len() < wanted) {
            return Ok(found);
        }
        if found.events.len() == wanted {
            found.older_from = Some(oldest);
            return Ok(found);
        }
        if found.read >= limit || walked == MOST_STRETCHES {
            found.limited = true;
            found.older_from = Some(oldest);
            return Ok(found);
        }
        to = from - 1;
        stretch = stretch.saturating_mul(4);
    }
    Ok(found)
}

/// The sequence of the first event stored at or after `since`, if any.
async fn first_since(
    nats: &async_nats::Client,
    since: SystemTime,
) -> Result<Option<u64>, SearchError> {
    let first = history::read(nats.clone(), StartAt::Time(since), None, 1).await?;
    Ok(first.events.first().map(|stored| stored.stream_sequence))
}

/// Whether `raw` holds the number `id` whole (not as a part of a longer number).
pub fn contains_number(raw: &[u8], id: i64) -> bool {
    let digits = id.to_string();
    let digits = digits.as_bytes();
    raw.windows(digits.len()).enumerate().any(|(at, window)| {
        window == digits
            && (at == 0 || !raw[at - 1].is_ascii_digit())
            && raw
                .get(at + digits.len())
                .is_none_or(|next| !next.is_ascii_digit())
    })
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
    fn a_number_is_found_whole_only() {
        assert!(contains_number(br#"{"client_id":1234}"#, 1234));
        assert!(contains_number(b"1234", 1234));
        assert!(!contains_number(br#"{"message_id":12345}"#, 1234));
        assert!(!contains_number(br#"{"id":91234}"#, 1234));
    }

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

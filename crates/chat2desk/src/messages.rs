//! `GET /v1/messages`: an account's messages, as public integrations list them; and
//! `GET /v1/clients/{id}`, a client's card. Filters
//! `start_date`/`finish_date` (the time the message was created), `type` (`from_client`,
//! `to_client`, ...), `client_id`, `channel_id`; paging with `limit` (at most [`MAX_PAGE`]) and
//! `offset`; the answer is `{"data": [...], "meta": {"total", "limit", "offset"}}`.
//!
//! Messages are kept as the JSON objects the API gives: their fields are as loose as the
//! webhooks' (EVENTS.md), and c2d-keeper turns them into webhook bodies that the one parser of
//! c2d-hooks reads, quirks and all.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::{ApiError, Chat2DeskApi};

/// The most messages one page holds: Chat2Desk caps `limit` at 200.
pub const MAX_PAGE: u32 = 200;

/// What to list. Dates are RFC 3339 (`2026-12-06T20:00:00Z`); both ends are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_date: Option<String>,
    /// `from_client`, `to_client`, ...
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

/// One page of messages and where it lies in the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// Each message as the API wrote it (a JSON object).
    pub data: Vec<Json>,
    /// How many messages match the query in all.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

impl MessagePage {
    /// The offset of the next page, None once this one is the last.
    pub fn next_offset(&self) -> Option<u32> {
        let next = u64::from(self.offset) + self.data.len() as u64;
        (!self.data.is_empty() && next < self.total).then_some(next as u32)
    }
}

impl Chat2DeskApi {
    /// One page of `GET /v1/messages`. A page that is not `{"data": [objects], "meta": {...}}`
    /// is [`ApiError::Unexpected`] (worth a retry: a proxy's error page, a truncated answer).
    pub async fn messages(&self, query: &MessageQuery) -> Result<MessagePage, ApiError> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let mut add = |name, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        add("start_date", query.start_date.clone());
        add("finish_date", query.finish_date.clone());
        add("type", query.kind.clone());
        add("client_id", query.client_id.map(|v| v.to_string()));
        add("channel_id", query.channel_id.map(|v| v.to_string()));
        add("limit", query.limit.map(|v| v.to_string()));
        add("offset", query.offset.map(|v| v.to_string()));
        let answer = self
            .call_with(reqwest::Method::GET, "/messages", &pairs, None)
            .await?;
        page(&answer, query)
    }
}

impl Chat2DeskApi {
    /// Every message `query` matches, page after page from its offset: for tools and tests
    /// that want the whole listing at once (c2d-keeper pages itself, storing as it goes).
    pub async fn all_messages(&self, query: &MessageQuery) -> Result<Vec<Json>, ApiError> {
        let mut query = query.clone();
        let mut all = Vec::new();
        loop {
            let page = self.messages(&query).await?;
            all.extend(page.data.iter().cloned());
            match page.next_offset() {
                Some(next) => query.offset = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// `GET /v1/clients/{id}`: the client's card as the API writes it, None when the account
    /// has no such client (404).
    pub async fn client(&self, id: i64) -> Result<Option<Json>, ApiError> {
        match self
            .call_with(reqwest::Method::GET, &format!("/clients/{id}"), &[], None)
            .await
        {
            Ok(answer) => match answer.get("data") {
                Some(card) if card.is_object() => Ok(Some(card.clone())),
                _ => Err(ApiError::Unexpected(format!(
                    "a client without a data object: {}",
                    answer.to_string().chars().take(200).collect::<String>()
                ))),
            },
            Err(ApiError::Refused { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Reads an answer of `GET /v1/messages`.
pub fn page(answer: &Json, query: &MessageQuery) -> Result<MessagePage, ApiError> {
    let malformed = |what: &str| {
        let shown: String = answer.to_string().chars().take(200).collect();
        ApiError::Unexpected(format!("a messages page {what}: {shown}"))
    };
    let data = answer
        .get("data")
        .and_then(Json::as_array)
        .ok_or_else(|| malformed("without a data list"))?;
    if let Some(bad) = data.iter().find(|m| !m.is_object()) {
        return Err(malformed(&format!(
            "with a message that is not an object ({bad})"
        )));
    }
    let meta = answer.get("meta");
    let number = |name: &str| meta.and_then(|m| m.get(name)).and_then(json_u64);
    // Paging goes on from the offset asked for, not the one echoed: an API (or a proxy) that
    // echoes a wrong one would otherwise have the same page asked for again, without end.
    let offset = u64::from(query.offset.unwrap_or(0));
    let total = number("total").ok_or_else(|| malformed("without meta.total"))?;
    let limit = number("limit").unwrap_or(u64::from(query.limit.unwrap_or(MAX_PAGE)));
    Ok(MessagePage {
        data: data.clone(),
        total,
        limit: u32::try_from(limit).unwrap_or(MAX_PAGE),
        offset: u32::try_from(offset).map_err(|_| malformed("with an offset out of range"))?,
    })
}

/// A count as a number or a string of digits (the API writes both).
fn json_u64(value: &Json) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_are_read_and_malformed_ones_named() {
        let query = MessageQuery {
            limit: Some(2),
            ..MessageQuery::default()
        };
        let answer = json!({"data": [{"id": 1}, {"id": 2}], "meta": {"total": "3", "limit": 2, "offset": 0}});
        let first = page(&answer, &query).unwrap();
        assert_eq!((first.total, first.next_offset()), (3, Some(2)));
        // The next page is asked from where this one was asked, plus what it held: an API
        // that echoes a wrong offset (0 here) does not make the same page come back forever.
        let second = MessageQuery {
            offset: first.next_offset(),
            ..query.clone()
        };
        let last = page(
            &json!({"data": [{"id": 3}], "meta": {"total": 3, "limit": 2, "offset": 0}}),
            &second,
        )
        .unwrap();
        assert_eq!(last.next_offset(), None);
        for bad in [
            json!({"status": "error"}),
            json!({"data": [1, 2], "meta": {"total": 2}}),
            json!({"data": []}),
            json!("<html>bad gateway</html>"),
        ] {
            let error = page(&bad, &query).unwrap_err();
            assert!(error.is_transient(), "{error}");
            assert!(error.to_string().contains("messages page"), "{error}");
        }
    }

    #[test]
    fn the_query_is_written_as_chat2desk_names_it() {
        let query = MessageQuery {
            kind: Some("from_client".into()),
            client_id: Some(7),
            ..MessageQuery::default()
        };
        assert_eq!(
            serde_json::to_value(&query).unwrap(),
            json!({"type": "from_client", "client_id": 7})
        );
    }
}

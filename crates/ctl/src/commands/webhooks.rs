//! `c2dctl webhooks`: an account's Chat2Desk webhooks, and `register`, which points one at this
//! pipeline's gateway with every hook type, creating it or updating it in place so that it can
//! run again and again (and re-enables a webhook Chat2Desk disabled).

use c2d_proto::events::HookType;
use serde_json::json;

pub use c2dctl::chat2desk::register::{Registered, register};
use c2dctl::chat2desk::{Webhook, every_hook_type};
use c2dctl::output::Rows;

/// Webhooks as rows; the token in a URL's query is not shown.
pub fn rows(webhooks: &[Webhook]) -> Rows {
    let mut rows = Rows::new(&["id", "name", "url", "events", "disabled", "errors"]);
    for w in webhooks {
        rows.push(vec![
            json!(w.id),
            json!(w.name),
            json!(redact(&w.url)),
            json!(w.events),
            json!(w.disabled),
            json!(w.errors),
        ]);
    }
    rows
}

/// A URL without the value of its `token` parameter.
pub fn redact(url: &str) -> String {
    match url.split_once("token=") {
        Some((before, after)) => {
            let rest = after.find('&').map_or("", |i| &after[i..]);
            format!("{before}token=***{rest}")
        }
        None => url.to_owned(),
    }
}

/// `a,b,c` as hook types, each checked.
pub fn parse_events(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            HookType::parse(e)
                .map(|h| h.as_str().to_owned())
                .ok_or_else(|| {
                    format!(
                        "{e:?} is not a hook type; known: {}",
                        every_hook_type().join(", ")
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_api_reports_under_errors_is_listed_as_it_comes() {
        let listed: Webhook = serde_json::from_value(json!({
            "id": 7,
            "name": "c2d-gateway",
            "url": "https://gw.example.com/hooks/chat2desk/acme?token=s3cret",
            "events": ["inbox"],
            "errors": [{"code": 502, "date": "2026-11-30 10:00"}]
        }))
        .unwrap();
        let table = rows(&[listed]).to_table();
        assert!(
            table.contains(r#"{"code":502,"date":"2026-11-30 10:00"}"#),
            "{table}"
        );
        assert!(!table.contains("s3cret"), "{table}");
    }

    #[test]
    fn tokens_are_not_shown() {
        assert_eq!(
            redact("http://gw/hooks/chat2desk/acme?token=s3cret&x=1"),
            "http://gw/hooks/chat2desk/acme?token=***&x=1"
        );
        assert_eq!(redact("https://crm/hook"), "https://crm/hook");
    }

    #[test]
    fn events_are_checked() {
        assert_eq!(
            parse_events("inbox, delete_tag_to_client").unwrap(),
            ["inbox", "delete_tag_from_client"]
        );
        assert!(
            parse_events("inbox,smoke")
                .unwrap_err()
                .contains("\"smoke\"")
        );
        assert_eq!(every_hook_type().len(), 14);
    }
}

//! `c2dctl webhooks`: an account's Chat2Desk webhooks, and `register`, which points one at this
//! pipeline's gateway with every hook type, creating it or updating it in place so that it can
//! run again and again (and re-enables a webhook Chat2Desk disabled).

use c2d_proto::events::HookType;
use serde_json::json;

use c2dctl::chat2desk::{
    ApiError, MAX_WEBHOOKS, Webhook, WebhookSpec, WebhooksApi, every_hook_type,
};
use c2dctl::output::Rows;

/// The name `register` gives the gateway's webhook, and finds it by.
pub const GATEWAY_WEBHOOK: &str = "c2d-gateway";

/// The gateway's webhook URL for `tenant`.
pub fn gateway_url(gateway: &str, tenant: &str, token: &str) -> String {
    format!(
        "{}/hooks/chat2desk/{tenant}?token={token}",
        gateway.trim_end_matches('/')
    )
}

/// Webhooks as rows; the token in a URL's query is not shown.
pub fn rows(webhooks: &[Webhook]) -> Rows {
    let mut rows = Rows::new(&["id", "name", "url", "events", "disabled"]);
    for w in webhooks {
        rows.push(vec![
            json!(w.id),
            json!(w.name),
            json!(redact(&w.url)),
            json!(w.events),
            json!(w.disabled),
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

/// What `register` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Registered {
    Created(Webhook),
    Updated(Webhook),
}

/// Creates or updates the account's `c2d-gateway` webhook (or one already pointing at the same
/// gateway URL) so that it sends every hook type to `url`.
pub async fn register(api: &WebhooksApi, url: &str) -> Result<Registered, ApiError> {
    let existing = api.list().await?;
    let path = url.split('?').next().unwrap_or(url);
    let spec = WebhookSpec {
        name: Some(GATEWAY_WEBHOOK.into()),
        url: Some(Some(url.to_owned())),
        events: Some(every_hook_type()),
    };
    let mine = existing
        .iter()
        .find(|w| w.name == GATEWAY_WEBHOOK || w.url.split('?').next() == Some(path));
    match mine {
        Some(webhook) => {
            let updated = api.update(webhook.id, &spec).await?;
            updated
                .map(Registered::Updated)
                .ok_or_else(|| ApiError::Unexpected("the update deleted the webhook".into()))
        }
        None if existing.len() >= MAX_WEBHOOKS => Err(ApiError::Refused {
            status: 400,
            message: format!(
                "the account already has {MAX_WEBHOOKS} webhooks, the most Chat2Desk allows; delete one (c2dctl webhooks delete ID) first"
            ),
        }),
        None => api.create(&spec).await.map(Registered::Created),
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

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
/// Where a tenant's deliveries go on the gateway (`/hooks/chat2desk/{tenant}`).
const HOOK_PATH: &str = "/hooks/chat2desk/";

/// The gateway's webhook URL for `tenant`. The token is percent-encoded: the gateway reads the
/// query as a form, where a raw `+` would arrive as a space and `&` or `#` would cut the secret.
pub fn gateway_url(gateway: &str, tenant: &str, token: &str) -> String {
    format!(
        "{}{HOOK_PATH}{tenant}?token={}",
        gateway.trim_end_matches('/'),
        percent_encoded(token)
    )
}

/// `text` with every byte but the unreserved ones (RFC 3986) as `%XX`.
fn percent_encoded(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The gateway a webhook URL made by [`gateway_url`] points at.
fn gateway_of(url: &str) -> Option<&str> {
    url.split_once(HOOK_PATH).map(|(gateway, _)| gateway)
}

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

/// What `register` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Registered {
    Created(Webhook),
    Updated(Webhook),
}

/// Why `register` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(
        "the account has no {GATEWAY_WEBHOOK} webhook to keep the gateway of: give --gateway-url (or C2D_GATEWAY_URL), the address at which Chat2Desk reaches the gateway, e.g. https://webhooks.example.com"
    )]
    NoGateway,
}

/// Creates or updates the account's `c2d-gateway` webhook (or one already pointing at this
/// tenant on the gateway) so that it sends every hook type to the gateway, with `token`.
/// Without `gateway` an existing webhook keeps the gateway it points at, so that a token
/// rotation changes nothing else. (The tenant is checked as the command line reads it.)
pub async fn register(
    api: &WebhooksApi,
    gateway: Option<&str>,
    tenant: &str,
    token: &str,
) -> Result<Registered, RegisterError> {
    let existing = api.list().await?;
    let mine = existing.iter().find(|w| {
        w.name == GATEWAY_WEBHOOK
            || w.url.split('?').next().is_some_and(|path| {
                path.ends_with(&format!("{HOOK_PATH}{tenant}"))
                    && gateway.is_none_or(|g| gateway_of(path) == Some(g.trim_end_matches('/')))
            })
    });
    let gateway = match (gateway, mine) {
        (Some(gateway), _) => gateway,
        (None, Some(webhook)) => gateway_of(&webhook.url).ok_or(RegisterError::NoGateway)?,
        (None, None) => return Err(RegisterError::NoGateway),
    };
    let spec = WebhookSpec {
        name: Some(GATEWAY_WEBHOOK.into()),
        url: Some(Some(gateway_url(gateway, tenant, token))),
        events: Some(every_hook_type()),
    };
    match mine {
        Some(webhook) => {
            let updated = api.update(webhook.id, &spec).await?;
            updated
                .map(Registered::Updated)
                .ok_or_else(|| ApiError::Unexpected("the update deleted the webhook".into()).into())
        }
        None if existing.len() >= MAX_WEBHOOKS => Err(ApiError::Refused {
            status: 400,
            message: format!(
                "the account already has {MAX_WEBHOOKS} webhooks, the most Chat2Desk allows; delete one (c2dctl webhooks delete ID) first"
            ),
        }
        .into()),
        None => Ok(Registered::Created(api.create(&spec).await?)),
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
    fn the_token_is_percent_encoded_and_the_gateway_read_back() {
        let url = gateway_url("https://gw.example.com/", "acme", "a+b/c=&d#e~_.-9");
        assert_eq!(
            url,
            "https://gw.example.com/hooks/chat2desk/acme?token=a%2Bb%2Fc%3D%26d%23e~_.-9"
        );
        assert_eq!(gateway_of(&url), Some("https://gw.example.com"));
        assert_eq!(gateway_of("https://crm.example.com/hook"), None);
    }

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

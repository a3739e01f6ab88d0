//! Registering the pipeline's gateway as the account's `c2d-gateway` webhook with every hook
//! type, creating it or updating it in place so that it can run again and again: what
//! `c2dctl webhooks register` does once and c2d-keeper does whenever the webhook is missing,
//! changed or disabled (an update enables a webhook Chat2Desk disabled).

use crate::{ApiError, Chat2DeskApi, MAX_WEBHOOKS, Webhook, WebhookSpec, every_hook_type};

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
pub fn gateway_of(url: &str) -> Option<&str> {
    url.split_once(HOOK_PATH).map(|(gateway, _)| gateway)
}

/// The account's webhook that delivers `tenant`'s events to this pipeline: the one named
/// [`GATEWAY_WEBHOOK`], or one already pointing at the tenant's path on `gateway` (any gateway
/// when None).
pub fn gateway_webhook<'a>(
    webhooks: &'a [Webhook],
    gateway: Option<&str>,
    tenant: &str,
) -> Option<&'a Webhook> {
    webhooks.iter().find(|w| {
        w.name == GATEWAY_WEBHOOK
            || w.url.split('?').next().is_some_and(|path| {
                path.ends_with(&format!("{HOOK_PATH}{tenant}"))
                    && gateway.is_none_or(|g| gateway_of(path) == Some(g.trim_end_matches('/')))
            })
    })
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
/// rotation changes nothing else. (The tenant is checked by the caller.)
pub async fn register(
    api: &Chat2DeskApi,
    gateway: Option<&str>,
    tenant: &str,
    token: &str,
) -> Result<Registered, RegisterError> {
    let existing = api.list().await?;
    let mine = gateway_webhook(&existing, gateway, tenant);
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
}

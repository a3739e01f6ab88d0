//! The webhook check: each tenant's `c2d-gateway` webhook, as Chat2Desk's API lists it, must
//! exist, be enabled and point at the gateway with every hook type. When it does not, the
//! keeper registers it again as `c2dctl webhooks register` does (an update also enables a
//! disabled webhook), and writes a `webhook_repaired` event to the log, which an alerting rule
//! (kind `event`) turns into an alert; [`crate::repairs`] sees that the event gets there.

use c2d_chat2desk::register::{gateway_of, gateway_url, gateway_webhook, register};
use c2d_chat2desk::{Chat2DeskApi, RegisterError, Webhook, every_hook_type};
use c2d_proto::events::{Event, Origin};
use serde_json::json;

use crate::cfg::Tenant;

/// The hook type of the keeper's own event about a repaired webhook.
pub const REPAIRED_HOOK_TYPE: &str = "webhook_repaired";

/// What was wrong with a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Problem {
    /// The account has no webhook to the gateway for this tenant.
    Missing,
    /// Chat2Desk disabled it (5 hours without a successful delivery).
    Disabled,
    /// It points elsewhere, carries another token, or lacks hook types.
    Changed,
}

impl Problem {
    /// The word for metrics, status and the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::Disabled => "disabled",
            Problem::Changed => "changed",
        }
    }
}

/// What is wrong with the tenant's webhook among `webhooks`, if anything; `gateway` is the
/// configured gateway address (None: any gateway the webhook points at).
pub fn problem(webhooks: &[Webhook], gateway: Option<&str>, tenant: &Tenant) -> Option<Problem> {
    let Some(webhook) = gateway_webhook(webhooks, gateway, &tenant.name) else {
        return Some(Problem::Missing);
    };
    if webhook.disabled {
        return Some(Problem::Disabled);
    }
    let Some(points_at) = gateway.or_else(|| gateway_of(&webhook.url)) else {
        return Some(Problem::Changed);
    };
    let mut events = webhook.events.clone();
    events.sort();
    let mut every = every_hook_type();
    every.sort();
    let known_token = tenant
        .gateway_tokens
        .iter()
        .any(|token| webhook.url == gateway_url(points_at, &tenant.name, token));
    (!known_token || events != every).then_some(Problem::Changed)
}

/// Registers the tenant's webhook again, as `c2dctl webhooks register` does: created when
/// missing, updated (and so enabled) otherwise.
pub async fn repair(
    api: &Chat2DeskApi,
    tenant: &Tenant,
    gateway: Option<&str>,
) -> Result<Webhook, RegisterError> {
    match register(api, gateway, &tenant.name, tenant.gateway_token()).await? {
        c2d_chat2desk::Registered::Created(w) | c2d_chat2desk::Registered::Updated(w) => Ok(w),
    }
}

/// The keeper's event about a repair: hook type [`REPAIRED_HOOK_TYPE`], origin keeper, read by
/// the same parser as a delivery (an unknown hook type keeps its fields), its id from its body
/// (the tenant, the webhook, the problem and the second it was found), so that writing it
/// again stores it once.
pub fn repaired_event(tenant: &str, problem: Problem, webhook_id: i64, found_at: i64) -> Event {
    let at = prost_types::Timestamp {
        seconds: found_at,
        nanos: 0,
    };
    let body = json!({
        "hook_type": REPAIRED_HOOK_TYPE,
        "problem": problem.as_str(),
        "webhook_id": webhook_id,
        "event_time": found_at,
    });
    // A JSON object always parses.
    let mut event = c2d_hooks::parse_delivery(tenant, body.to_string().into(), at)
        .unwrap_or_else(|_| Event::default());
    event.origin = Origin::Keeper.into();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            name: "acme".into(),
            api_token: "api".into(),
            gateway_tokens: vec!["s0".into(), "s+1".into()],
        }
    }

    fn webhook(url: &str, disabled: bool) -> Webhook {
        Webhook {
            id: 3,
            name: "c2d-gateway".into(),
            url: url.into(),
            events: every_hook_type(),
            disabled,
            errors: None,
        }
    }

    #[test]
    fn what_is_wrong_is_named() {
        let good = gateway_url("https://gw", "acme", "s+1");
        assert_eq!(problem(&[webhook(&good, false)], None, &tenant()), None);
        assert_eq!(
            problem(&[webhook(&good, false)], Some("https://gw/"), &tenant()),
            None
        );
        assert_eq!(problem(&[], None, &tenant()), Some(Problem::Missing));
        assert_eq!(
            problem(&[webhook(&good, true)], None, &tenant()),
            Some(Problem::Disabled)
        );
        // While a token rotates, the old and the new one are both right.
        let rotating = gateway_url("https://gw", "acme", "s0");
        assert_eq!(problem(&[webhook(&rotating, false)], None, &tenant()), None);
        let old_token = gateway_url("https://gw", "acme", "old");
        assert_eq!(
            problem(&[webhook(&old_token, false)], None, &tenant()),
            Some(Problem::Changed)
        );
        let elsewhere = gateway_url("https://old-gw", "acme", "s+1");
        assert_eq!(
            problem(&[webhook(&elsewhere, false)], Some("https://gw"), &tenant()),
            Some(Problem::Changed)
        );
        let mut fewer = webhook(&good, false);
        fewer.events.truncate(2);
        assert_eq!(problem(&[fewer], None, &tenant()), Some(Problem::Changed));
    }

    #[test]
    fn the_repair_event_is_the_keepers() {
        let event = repaired_event("acme", Problem::Disabled, 3, 1_700_000_000);
        assert_eq!(event.hook_type, REPAIRED_HOOK_TYPE);
        assert_eq!(event.origin(), Origin::Keeper);
        assert_eq!(event.event_time.map(|t| t.seconds), Some(1_700_000_000));
        let again = repaired_event("acme", Problem::Disabled, 3, 1_700_000_000);
        assert_eq!(event.event_id, again.event_id);
    }
}

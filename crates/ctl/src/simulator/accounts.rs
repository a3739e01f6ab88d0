//! The simulated Chat2Desk accounts and their webhooks, under the seed's rules: at most 5
//! webhooks per account, a name and a URL required, events among the 14 hook types, a null
//! URL in an update deletes. A webhook that has not had a successful delivery for 5 hours is
//! disabled, as Chat2Desk does, and the deliveries it still had queued are dropped; updating it
//! (e.g. `c2dctl webhooks register` again) enables it.
//!
//! Every inbox and outbox message the traffic made is also kept as the messages API lists it
//! ([`Account::messages`], `GET /v1/messages`), delivered or not: what c2d-keeper backfills from.

use std::collections::BTreeMap;

use c2d_proto::events::HookType;
use serde_json::Value as Json;

use crate::chat2desk::{MAX_WEBHOOKS, Webhook, WebhookSpec};

/// One account: its API token and webhooks.
#[derive(Debug, Clone)]
pub struct Account {
    pub tenant: String,
    pub api_token: String,
    pub webhooks: Vec<Registered>,
    /// Every message of the account in the order made, as `GET /v1/messages` lists them.
    pub messages: Vec<ApiMessage>,
    /// Every client's card as `GET /v1/clients/{id}` answers it (the last new_client or
    /// client_updated body, without `hook_type` and `event_time`).
    pub clients: BTreeMap<i64, Json>,
}

/// One message as the messages API lists it, with its creation time read once for the filters.
#[derive(Debug, Clone)]
pub struct ApiMessage {
    /// Unix seconds of `created`.
    pub created: i64,
    pub json: Json,
}

/// A webhook and how its deliveries go.
#[derive(Debug, Clone)]
pub struct Registered {
    pub webhook: Webhook,
    /// When its deliveries started failing without a success since (simulator clock, ms).
    pub failing_since: Option<u64>,
    /// How many times it was disabled: a delivery queued before a disabling is dropped, as
    /// Chat2Desk drops a disabled webhook's queue, even once the webhook is enabled again.
    pub disablings: u64,
}

/// Why the API refuses a call: the field and the message, as Chat2Desk answers them.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub field: &'static str,
    pub message: String,
}

impl Refusal {
    fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            field,
            message: message.into(),
        }
    }
}

/// Every account, by tenant.
#[derive(Debug, Default)]
pub struct Accounts {
    pub accounts: BTreeMap<String, Account>,
    next_id: i64,
}

impl Accounts {
    /// Accounts from `tenant=api_token` pairs.
    pub fn new(pairs: &[(String, String)]) -> Accounts {
        Accounts {
            accounts: pairs
                .iter()
                .map(|(tenant, token)| {
                    (
                        tenant.clone(),
                        Account {
                            tenant: tenant.clone(),
                            api_token: token.clone(),
                            webhooks: Vec::new(),
                            messages: Vec::new(),
                            clients: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            next_id: 1,
        }
    }

    /// The account whose API token this is.
    pub fn by_token(&mut self, token: &str) -> Option<&mut Account> {
        self.accounts
            .values_mut()
            .find(|a| !token.is_empty() && a.api_token == token)
    }

    /// POST /v1/webhooks.
    pub fn create(&mut self, tenant: &str, spec: WebhookSpec) -> Result<Webhook, Refusal> {
        let id = self.next_id;
        let account = self.account(tenant)?;
        if account.webhooks.len() >= MAX_WEBHOOKS {
            return Err(Refusal::invalid(
                "webhooks",
                format!("at most {MAX_WEBHOOKS} webhooks per account; delete one first"),
            ));
        }
        let name = spec
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| Refusal::invalid("name", "is required"))?;
        let url = match spec.url {
            Some(Some(url)) => valid_url(url)?,
            _ => return Err(Refusal::invalid("url", "is required")),
        };
        let events = valid_events(spec.events.unwrap_or_default())?;
        let webhook = Webhook {
            id,
            name,
            url,
            events,
            disabled: false,
            errors: None,
        };
        account.webhooks.push(Registered {
            webhook: webhook.clone(),
            failing_since: None,
            disablings: 0,
        });
        self.next_id += 1;
        Ok(webhook)
    }

    /// PUT /v1/webhooks/{id}: `Ok(None)` when a null url deleted it.
    pub fn update(
        &mut self,
        tenant: &str,
        id: i64,
        spec: WebhookSpec,
    ) -> Result<Option<Webhook>, Refusal> {
        let account = self.account(tenant)?;
        let index = position(account, id)?;
        if spec.url == Some(None) {
            account.webhooks.remove(index);
            return Ok(None);
        }
        let registered = &mut account.webhooks[index];
        if let Some(name) = spec.name {
            if name.trim().is_empty() {
                return Err(Refusal::invalid("name", "cannot be empty"));
            }
            registered.webhook.name = name;
        }
        if let Some(Some(url)) = spec.url {
            registered.webhook.url = valid_url(url)?;
        }
        if let Some(events) = spec.events {
            registered.webhook.events = valid_events(events)?;
        }
        registered.webhook.disabled = false;
        registered.failing_since = None;
        Ok(Some(registered.webhook.clone()))
    }

    /// DELETE /v1/webhooks/{id}.
    pub fn delete(&mut self, tenant: &str, id: i64) -> Result<(), Refusal> {
        let account = self.account(tenant)?;
        let index = position(account, id)?;
        account.webhooks.remove(index);
        Ok(())
    }

    /// Keeps an inbox or outbox webhook body as the messages API lists it: `id` for
    /// `message_id`, `created` for `event_time`, no `hook_type` and no webhook-only fields
    /// (the embedded client card, the new-request and new-client flags); and a new_client or
    /// client_updated body as the client's card. Other hook types are not kept.
    pub fn record_message(&mut self, tenant: &str, hook_type: &str, body: &Json) {
        let (Some(account), Some(fields)) = (self.accounts.get_mut(tenant), body.as_object())
        else {
            return;
        };
        if hook_type == "new_client" || hook_type == "client_updated" {
            let mut card = fields.clone();
            card.remove("hook_type");
            card.remove("event_time");
            if let Some(id) = card.get("id").and_then(Json::as_i64) {
                account.clients.insert(id, Json::Object(card));
            }
            return;
        }
        if hook_type != "inbox" && hook_type != "outbox" {
            return;
        }
        let mut message = serde_json::Map::new();
        for (name, value) in fields {
            let name = match name.as_str() {
                "hook_type" | "client" | "is_new_request" | "is_new_client" => continue,
                "message_id" => "id",
                "event_time" => "created",
                other => other,
            };
            message.insert(name.to_owned(), value.clone());
        }
        let created = message
            .get("created")
            .and_then(Json::as_str)
            .and_then(c2d_hooks::time::parse_time_text)
            .map_or(0, |t| t.seconds);
        account.messages.push(ApiMessage {
            created,
            json: Json::Object(message),
        });
    }

    fn account(&mut self, tenant: &str) -> Result<&mut Account, Refusal> {
        self.accounts.get_mut(tenant).ok_or(Refusal {
            status: 401,
            field: "token",
            message: "unknown account".into(),
        })
    }
}

fn position(account: &Account, id: i64) -> Result<usize, Refusal> {
    account
        .webhooks
        .iter()
        .position(|w| w.webhook.id == id)
        .ok_or(Refusal {
            status: 404,
            field: "id",
            message: format!("no webhook {id} in this account"),
        })
}

fn valid_url(url: String) -> Result<String, Refusal> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(Refusal::invalid("url", "must be an http or https URL"))
    }
}

/// The hook types, canonical; Chat2Desk's documented typo is accepted and stored as the
/// canonical name.
fn valid_events(events: Vec<String>) -> Result<Vec<String>, Refusal> {
    if events.is_empty() {
        return Err(Refusal::invalid("events", "at least one event is required"));
    }
    let mut valid = Vec::new();
    for event in events {
        let hook = HookType::parse(&event)
            .ok_or_else(|| Refusal::invalid("events", format!("unknown event {event:?}")))?;
        let name = hook.as_str().to_owned();
        if !valid.contains(&name) {
            valid.push(name);
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, url: Option<&str>, events: &[&str]) -> WebhookSpec {
        WebhookSpec {
            name: Some(name.into()),
            url: Some(url.map(str::to_owned)),
            events: Some(events.iter().map(|e| (*e).to_owned()).collect()),
        }
    }

    #[test]
    fn the_seed_rules_hold() {
        let mut accounts = Accounts::new(&[("acme".into(), "t1".into())]);
        for n in 0..5 {
            accounts
                .create(
                    "acme",
                    spec(&format!("w{n}"), Some("https://x/h"), &["inbox"]),
                )
                .unwrap();
        }
        let sixth = accounts
            .create("acme", spec("w5", Some("https://x/h"), &["inbox"]))
            .unwrap_err();
        assert!(sixth.message.contains("at most 5"), "{sixth:?}");

        let deleted = accounts
            .update(
                "acme",
                1,
                WebhookSpec {
                    url: Some(None),
                    ..WebhookSpec::default()
                },
            )
            .unwrap();
        assert_eq!(deleted, None);
        assert_eq!(accounts.accounts["acme"].webhooks.len(), 4);

        let typo = accounts
            .create(
                "acme",
                spec("w6", Some("https://x/h"), &["delete_tag_to_client"]),
            )
            .unwrap();
        assert_eq!(typo.events, ["delete_tag_from_client"]);
        let unknown = accounts
            .update(
                "acme",
                typo.id,
                spec("w6", Some("https://x/h"), &["inbox", "smoke"]),
            )
            .unwrap_err();
        assert_eq!((unknown.field, unknown.status), ("events", 400));
        let missing = accounts.delete("acme", 999).unwrap_err();
        assert_eq!(missing.status, 404);
        let no_url = accounts.create("acme", spec("w7", None, &["inbox"]));
        assert!(no_url.is_err());
    }

    #[test]
    fn messages_and_client_cards_are_kept_as_the_api_lists_them() {
        let mut accounts = Accounts::new(&[("acme".into(), "t1".into())]);
        let inbox = serde_json::json!({"hook_type": "inbox", "message_id": 9, "type": "from_client",
            "client_id": 7, "client": {"id": 7}, "is_new_client": 1,
            "event_time": "2026-12-06T20:00:00Z"});
        accounts.record_message("acme", "inbox", &inbox);
        accounts.record_message("acme", "outbox_status", &serde_json::json!({"id": 9}));
        let card =
            serde_json::json!({"id": 7, "name": "Ana", "event_time": "2026-12-06T20:00:00Z"});
        accounts.record_message("acme", "new_client", &card);
        let account = &accounts.accounts["acme"];
        assert_eq!(
            account.messages.len(),
            1,
            "only inbox and outbox are messages"
        );
        let listed = &account.messages[0];
        assert_eq!(listed.created, 1_796_587_200);
        assert_eq!(
            listed.json,
            serde_json::json!({"id": 9, "type": "from_client", "client_id": 7,
                               "created": "2026-12-06T20:00:00Z"})
        );
        assert_eq!(
            account.clients[&7],
            serde_json::json!({"id": 7, "name": "Ana"})
        );
    }
}

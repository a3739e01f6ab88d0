//! The scripted history of tenant globex that the directory tests share: Ana's requests, tags,
//! cards (one of them late), a transfer and closings; Boris on Telegram; Carla with a card only.

#![allow(dead_code)]

use serde_json::{Value as Json, json};

/// 2024-05-01T10:00:00Z: the scripted history's clock.
pub const T: i64 = 1_714_557_600;

pub fn at(minutes: i64) -> i64 {
    T + 60 * minutes
}

pub fn message(
    hook: &str,
    client: Json,
    request: i64,
    transport: &str,
    channel: i64,
    operator: Option<i64>,
    minute: i64,
) -> Json {
    json!({
        "message_id": 1_000 * request + minute, "type": if hook == "inbox" { "from_client" } else { "to_client" },
        "text": "Olá, tudo bem? Привет 👋", "transport": transport, "client_id": client["id"], "operator_id": operator,
        "dialog_id": 70_000 + request % 1_000, "channel_id": channel, "client": client, "hook_type": hook,
        "request_id": request, "is_new_request": if hook == "inbox" { "1" } else { "" }, "event_time": at(minute)
    })
}

pub fn tag(hook: &str, id: i64, name: &str, client_id: i64, minute: i64) -> Json {
    json!({"id": id.to_string(), "name": name, "description": "", "group_id": 5, "group_name": "Sales",
           "client_id": client_id, "hook_type": hook, "event_time": at(minute)})
}

pub fn dialog(hook: &str, request: i64, client_id: i64, operator: i64, minute: i64) -> Json {
    json!({"dialog_id": 70_000 + request % 1_000, "request_id": request, "created": at(0), "updated": at(minute),
           "channel_id": 10, "client_id": client_id, "operator_id": operator, "current_operator_id": operator,
           "last_operator_id": 76, "transport": "whatsapp", "hook_type": hook, "event_time": at(minute)})
}

/// Tenant globex: Ana's history (with a late card, a late tag and a duplicate), Boris, Carla.
pub fn globex_script() -> Vec<Json> {
    let ana = json!({"id": 501, "phone": "+55 11 98888-7777", "client_phone": "+55 11 98888-7777", "name": "Ana",
                     "assigned_name": null, "external_id": "crm-501"});
    let card = |hook: &str, name: &str, comment: Option<&str>, minute: i64| {
        json!({"id": 501, "phone": "+55 11 98888-7777", "name": name, "avatar": null, "assigned_name": "Ana S.",
               "comment": comment, "client_phone": "+55 11 98888-7777", "channels": {"id": 10, "transports": ["whatsapp"]},
               "custom_fields": {"city": "São Paulo", "vip_level": 2}, "region_id": "7", "country_id": 55,
               "hook_type": hook, "event_time": at(minute)})
    };
    vec![
        card("new_client", "Ana", None, 0),
        message("inbox", ana.clone(), 9001, "whatsapp", 10, None, 1),
        message("outbox", ana.clone(), 9001, "whatsapp", 10, Some(77), 2),
        tag("add_tag_to_client", 1, "VIP", 501, 3),
        tag("add_tag_to_client", 2, "Lead", 501, 3),
        tag("add_tag_to_request", 3, "Urgent", 501, 4),
        dialog("dialog_transferred", 9001, 501, 78, 5),
        // The newer card first, then a late older one: the newer stays.
        card("client_updated", "Ana Souza", Some("prefers mornings"), 7),
        card("client_updated", "Ana Old", Some("stale"), 6),
        message(
            "inbox",
            json!({"id": 501, "name": "Ana via Telegram"}),
            9001,
            "telegram",
            11,
            None,
            8,
        ),
        // The removal of Lead, then a late add that is older than the removal: Lead stays off.
        tag("delete_tag_from_client", 2, "Lead", 501, 9),
        tag("add_tag_to_client", 2, "Lead", 501, 4),
        dialog("close_request", 9001, 501, 78, 10),
        dialog("close_dialog", 9001, 501, 78, 10),
        message("inbox", ana.clone(), 9002, "whatsapp", 10, None, 11),
        message("outbox", ana, 9002, "whatsapp", 10, Some(79), 12),
        // Boris: Telegram only, an open request.
        json!({"id": 502, "phone": "[tg] 4242", "name": "Борис", "channels": [{"id": 11, "transports": ["telegram"]}],
               "hook_type": "new_client", "event_time": at(1)}),
        message(
            "inbox",
            json!({"id": 502, "name": "Борис"}),
            9100,
            "telegram",
            11,
            None,
            2,
        ),
        // Carla: a card, nothing else (and the generic CRM refuses her).
        json!({"id": 503, "name": "Carla", "client_phone": "+351 912 345 678", "channels": [],
               "hook_type": "new_client", "event_time": at(3)}),
    ]
}

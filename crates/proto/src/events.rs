//! `chat2desk.events.v1`: the event envelope, the typed payloads, and where they are stored.
//!
//! The subject scheme is part of the public contract (DESIGN.md): users subscribe their own
//! services to these subjects, so they are built here and nowhere else.

use std::fmt;

/// Generated code of `proto/chat2desk/events/v1/events.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/chat2desk.events.v1.rs"));
}

pub use v1::{
    Client, ClientChannel, DeadLetter, DialogEvent, Event, HintChosen, HintsRequest, Message,
    MessageClient, Origin, OutboxStatus, QrCode, Tag, Unknown, event::Payload,
};

/// Where every service looks for NATS when `NATS_URL` is not set: a server on this machine.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The JetStream stream that holds every event: the log every read model is rebuilt from.
pub const STREAM: &str = "CHAT2DESK";
/// Subjects of [`STREAM`].
pub const STREAM_SUBJECTS: &str = "chat2desk.events.>";
/// The stream that keeps deliveries the gateway could not decode, apart from the event log so
/// that consumers of `chat2desk.events.>` never see them.
pub const DLQ_STREAM: &str = "CHAT2DESK_DLQ";
/// Subjects of [`DLQ_STREAM`].
pub const DLQ_STREAM_SUBJECTS: &str = "chat2desk.dlq.>";
/// Subject token for hook types this schema does not know yet.
pub const UNKNOWN_HOOK_TYPE: &str = "unknown";

/// `chat2desk.events.{tenant}.{hook_type}`: where an event of this tenant and hook type is
/// published. Hook types that are not [`HookType`]s go to `...{tenant}.unknown`.
pub fn event_subject(tenant: &str, hook_type: &str) -> String {
    let token = match HookType::parse(hook_type) {
        Some(known) => known.as_str(),
        None => UNKNOWN_HOOK_TYPE,
    };
    format!("chat2desk.events.{tenant}.{token}")
}

/// `chat2desk.dlq.{tenant}`: where undecodable deliveries of a tenant are kept.
pub fn dlq_subject(tenant: &str) -> String {
    format!("chat2desk.dlq.{tenant}")
}

/// `chat2desk.dlq.consumer.{consumer}`: where a subscriber puts the events its handler could
/// not process (four tokens, so it never collides with a tenant's `chat2desk.dlq.{tenant}`).
pub fn consumer_dlq_subject(consumer: &str) -> String {
    format!("chat2desk.dlq.consumer.{consumer}")
}

/// What a subject of [`event_subject`] or [`dlq_subject`] names, read back from it: for those
/// that hold only a subject, such as the gateway's spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// `chat2desk.events.{tenant}.{hook_type}`.
    Event { tenant: &'a str, hook_type: &'a str },
    /// `chat2desk.dlq.{tenant}`.
    DeadLetter { tenant: &'a str },
}

impl<'a> Subject<'a> {
    /// The subject's meaning, or `None` for one this scheme does not make (a consumer's
    /// `chat2desk.dlq.consumer.{name}`, say).
    pub fn parse(subject: &'a str) -> Option<Subject<'a>> {
        let mut tokens = subject.split('.');
        let (root, kind, tenant) = (tokens.next()?, tokens.next()?, tokens.next()?);
        let (hook_type, rest) = (tokens.next(), tokens.next());
        match (root, kind, hook_type, rest) {
            ("chat2desk", "events", Some(hook_type), None) => {
                Some(Subject::Event { tenant, hook_type })
            }
            ("chat2desk", "dlq", None, None) => Some(Subject::DeadLetter { tenant }),
            _ => None,
        }
    }
}

/// Whether `tenant` can name a tenant: it becomes one token of a NATS subject and one segment
/// of a URL path, so it is 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Event {
    /// The subject this event is published on.
    pub fn subject(&self) -> String {
        event_subject(&self.tenant, &self.hook_type)
    }
}

/// The 14 hook types Chat2Desk documents, by their canonical names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookType {
    Inbox,
    Outbox,
    OutboxStatus,
    NewClient,
    AddTagToClient,
    AddTagToRequest,
    DeleteTagFromClient,
    DeleteTagFromRequest,
    ClientUpdated,
    CloseDialog,
    CloseRequest,
    DialogTransferred,
    NewQrCode,
    AiHintsRequested,
}

impl HookType {
    /// Every hook type, in the order of Chat2Desk's documentation: what a webhook registered
    /// for "everything" subscribes to.
    pub const ALL: [HookType; 14] = [
        HookType::Inbox,
        HookType::Outbox,
        HookType::OutboxStatus,
        HookType::NewClient,
        HookType::AddTagToClient,
        HookType::AddTagToRequest,
        HookType::DeleteTagFromClient,
        HookType::DeleteTagFromRequest,
        HookType::ClientUpdated,
        HookType::CloseDialog,
        HookType::CloseRequest,
        HookType::DialogTransferred,
        HookType::NewQrCode,
        HookType::AiHintsRequested,
    ];

    /// The canonical name, as used in subjects and in the envelope's `hook_type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookType::Inbox => "inbox",
            HookType::Outbox => "outbox",
            HookType::OutboxStatus => "outbox_status",
            HookType::NewClient => "new_client",
            HookType::AddTagToClient => "add_tag_to_client",
            HookType::AddTagToRequest => "add_tag_to_request",
            HookType::DeleteTagFromClient => "delete_tag_from_client",
            HookType::DeleteTagFromRequest => "delete_tag_from_request",
            HookType::ClientUpdated => "client_updated",
            HookType::CloseDialog => "close_dialog",
            HookType::CloseRequest => "close_request",
            HookType::DialogTransferred => "dialog_transferred",
            HookType::NewQrCode => "new_qr_code",
            HookType::AiHintsRequested => "ai_hints_requested",
        }
    }

    /// Reads a hook type as Chat2Desk sends it: the canonical name, or the alias
    /// `delete_tag_to_client` that Chat2Desk's own documentation uses. Case and surrounding
    /// blanks are forgiven.
    pub fn parse(name: &str) -> Option<HookType> {
        // Real deliveries spell it exactly: the common case costs one comparison per type.
        if let Some(exact) = HookType::ALL.into_iter().find(|hook| hook.as_str() == name) {
            return Some(exact);
        }
        let name = name.trim();
        if name.eq_ignore_ascii_case("delete_tag_to_client") {
            return Some(HookType::DeleteTagFromClient);
        }
        HookType::ALL
            .into_iter()
            .find(|hook| hook.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for HookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_type_round_trips_through_its_name() {
        for hook in HookType::ALL {
            assert_eq!(HookType::parse(hook.as_str()), Some(hook));
        }
    }

    #[test]
    fn the_docs_alias_is_the_canonical_delete_tag_from_client() {
        assert_eq!(
            HookType::parse("delete_tag_to_client"),
            Some(HookType::DeleteTagFromClient)
        );
        assert_eq!(
            event_subject("acme", "delete_tag_to_client"),
            "chat2desk.events.acme.delete_tag_from_client"
        );
    }

    #[test]
    fn unknown_hook_types_share_one_subject() {
        assert_eq!(HookType::parse("video_call_started"), None);
        assert_eq!(
            event_subject("acme", "video_call_started"),
            "chat2desk.events.acme.unknown"
        );
    }

    #[test]
    fn subjects_read_back_as_what_they_name() {
        assert_eq!(
            Subject::parse(&event_subject("acme", "inbox")),
            Some(Subject::Event {
                tenant: "acme",
                hook_type: "inbox"
            })
        );
        assert_eq!(
            Subject::parse(&dlq_subject("acme")),
            Some(Subject::DeadLetter { tenant: "acme" })
        );
        for other in [
            consumer_dlq_subject("crm-sync"),
            "chat2desk.events.acme".to_owned(),
            "chat2desk.alerts.acme.firing".to_owned(),
            "other.events.acme.inbox".to_owned(),
        ] {
            assert_eq!(Subject::parse(&other), None, "{other}");
        }
    }

    #[test]
    fn tenants_are_single_subject_tokens() {
        assert!(is_valid_tenant("acme-br_01"));
        for bad in ["", "a.b", "a b", "*", ">", "ação", &"x".repeat(65)] {
            assert!(!is_valid_tenant(bad), "{bad:?} must be rejected");
        }
    }
}

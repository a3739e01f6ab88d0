//! The projection's tables, as numbered migrations applied once each, in order.
//!
//! The SQL is written once for both backends: BIGINT times in microseconds since the epoch,
//! TEXT for JSON, 0/1 for flags, `ON CONFLICT .. DO UPDATE .. WHERE` for last-writer-wins.
//! Only the outbox's auto-increment key differs, so a migration may give a statement per
//! backend. A migration that is applied is never edited: a change is a new migration.

/// One step of the schema.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// Statements for both backends, with `{id}` standing for the auto-increment key type.
    pub statements: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "client directory and connector outbox",
        statements: &[
            // The last stream sequence applied, written in the same transaction as each change.
            "CREATE TABLE consumer_position (
            consumer TEXT PRIMARY KEY,
            stream_sequence BIGINT NOT NULL
        )",
            // The profile comes from the newest client card (new_client, client_updated) by
            // (profile_at, profile_seq); message fields only fill what no card has said.
            "CREATE TABLE clients (
            tenant TEXT NOT NULL,
            client_id BIGINT NOT NULL,
            name TEXT,
            name_key TEXT,
            phone TEXT,
            phone_digits TEXT,
            client_phone TEXT,
            client_phone_digits TEXT,
            avatar TEXT,
            assigned_name TEXT,
            comment TEXT,
            extra_comment_1 TEXT,
            extra_comment_2 TEXT,
            extra_comment_3 TEXT,
            region_id BIGINT,
            country_id BIGINT,
            custom_fields TEXT,
            profile_at BIGINT,
            profile_seq BIGINT,
            external_id TEXT,
            external_id_at BIGINT,
            first_contact_at BIGINT,
            last_contact_at BIGINT,
            crm_hash TEXT,
            crm_version BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, client_id)
        )",
            "CREATE INDEX clients_by_phone ON clients (tenant, phone_digits)",
            "CREATE INDEX clients_by_client_phone ON clients (tenant, client_phone_digits)",
            "CREATE INDEX clients_by_external_id ON clients (tenant, external_id)",
            // Every (transport, channel) a client was seen on; channel 0 = named without a channel.
            "CREATE TABLE client_channels (
            tenant TEXT NOT NULL,
            client_id BIGINT NOT NULL,
            transport TEXT NOT NULL,
            channel_id BIGINT NOT NULL,
            PRIMARY KEY (tenant, client_id, transport, channel_id)
        )",
            "CREATE INDEX client_channels_by_transport ON client_channels (tenant, transport)",
            // Tags keep a row when removed (present = 0): a late add older than the removal loses.
            "CREATE TABLE client_tags (
            tenant TEXT NOT NULL,
            client_id BIGINT NOT NULL,
            tag_id BIGINT NOT NULL,
            name TEXT,
            description TEXT,
            group_id BIGINT,
            group_name TEXT,
            present BIGINT NOT NULL,
            changed_at BIGINT NOT NULL,
            changed_seq BIGINT NOT NULL,
            PRIMARY KEY (tenant, client_id, tag_id)
        )",
            "CREATE INDEX client_tags_by_name ON client_tags (tenant, name)",
            // request_id 0: the client had no known request when the tag arrived.
            "CREATE TABLE request_tags (
            tenant TEXT NOT NULL,
            request_id BIGINT NOT NULL,
            tag_id BIGINT NOT NULL,
            client_id BIGINT NOT NULL,
            name TEXT,
            description TEXT,
            group_id BIGINT,
            group_name TEXT,
            present BIGINT NOT NULL,
            changed_at BIGINT NOT NULL,
            changed_seq BIGINT NOT NULL,
            PRIMARY KEY (tenant, request_id, tag_id, client_id)
        )",
            "CREATE INDEX request_tags_by_client ON request_tags (tenant, client_id)",
            // A request is closed once closed_at is set; its operator is the newest assignment.
            "CREATE TABLE requests (
            tenant TEXT NOT NULL,
            request_id BIGINT NOT NULL,
            client_id BIGINT,
            dialog_id BIGINT,
            channel_id BIGINT,
            transport TEXT,
            opened_at BIGINT,
            closed_at BIGINT,
            last_message_at BIGINT,
            operator_id BIGINT,
            operator_at BIGINT,
            operator_seq BIGINT,
            PRIMARY KEY (tenant, request_id)
        )",
            "CREATE INDEX requests_by_client ON requests (tenant, client_id)",
            // A dialog is closed when its last closing is not older than its last activity.
            "CREATE TABLE dialogs (
            tenant TEXT NOT NULL,
            dialog_id BIGINT NOT NULL,
            client_id BIGINT,
            channel_id BIGINT,
            transport TEXT,
            operator_id BIGINT,
            operator_at BIGINT,
            operator_seq BIGINT,
            last_activity_at BIGINT,
            closed_at BIGINT,
            PRIMARY KEY (tenant, dialog_id)
        )",
            // Each connector's durable queue of client changes; delivered rows are deleted.
            "CREATE TABLE crm_outbox (
            id {id},
            connector TEXT NOT NULL,
            tenant TEXT NOT NULL,
            client_id BIGINT NOT NULL,
            idempotency_key TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            queued_at BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
            last_error TEXT,
            UNIQUE (connector, idempotency_key)
        )",
            "CREATE INDEX crm_outbox_due ON crm_outbox (connector, state, next_attempt_at)",
            "CREATE INDEX crm_outbox_by_client ON crm_outbox (connector, tenant, client_id, id)",
        ],
    },
    Migration {
        version: 2,
        name: "requests and dialogs take their channel from their earliest event",
        statements: &[
            // The time of the event that named the channel, transport and dialog: an earlier event
            // replaces them, whatever order events arrive in.
            "ALTER TABLE requests ADD COLUMN origin_at BIGINT",
            "ALTER TABLE dialogs ADD COLUMN origin_at BIGINT",
        ],
    },
];

//! One reader per payload shape of Chat2Desk's documentation.
//!
//! Several hook types share a shape ("as inbox", "as close_dialog" in EVENTS.md), so they share
//! a reader and a protobuf message; the envelope's hook type tells them apart.

use c2d_proto::events::{
    Client, ClientChannel, DialogEvent, HintChosen, HintsRequest, Message, MessageClient,
    OutboxStatus, QrCode, Tag,
};

use crate::fields::Fields;

/// inbox and outbox.
pub fn message(f: &mut Fields<'_>) -> Message {
    Message {
        message_id: f.id("message_id"),
        r#type: f.text("type"),
        text: f.text("text"),
        transport: f.text("transport"),
        client_id: f.id("client_id"),
        operator_id: f.id("operator_id"),
        dialog_id: f.id("dialog_id"),
        channel_id: f.id("channel_id"),
        photo: f.text("photo"),
        coordinates: f.text("coordinates"),
        audio: f.text("audio"),
        pdf: f.text("pdf"),
        client: f
            .nested("client", "client.")
            .map(|mut c| message_client(&mut c)),
        request_id: f.id("request_id"),
        attachments: f.values("attachments"),
        is_new_request: f.flag("is_new_request"),
        is_new_client: f.flag("is_new_client"),
        extra_data: f.structure("extra_data"),
    }
}

fn message_client(f: &mut Fields<'_>) -> MessageClient {
    MessageClient {
        id: f.id("id"),
        phone: f.text("phone"),
        client_phone: f.text("client_phone"),
        name: f.text("name"),
        assigned_name: f.text("assigned_name"),
        external_id: f.text("external_id"),
    }
}

pub fn outbox_status(f: &mut Fields<'_>) -> OutboxStatus {
    OutboxStatus {
        id: f.id("id"),
        external_id: f.text("external_id"),
        dialog_id: f.id("dialog_id"),
        client_id: f.id("client_id"),
        channel_id: f.id("channel_id"),
        created: f.time("created"),
        gateway_status: f.text("gateway_status"),
        error: f.text("error"),
    }
}

/// new_client and client_updated.
pub fn client(f: &mut Fields<'_>) -> Client {
    Client {
        id: f.id("id"),
        phone: f.text("phone"),
        name: f.text("name"),
        avatar: f.text("avatar"),
        assigned_name: f.text("assigned_name"),
        comment: f.text("comment"),
        extra_comment_1: f.text("extra_comment_1"),
        extra_comment_2: f.text("extra_comment_2"),
        extra_comment_3: f.text("extra_comment_3"),
        client_phone: f.text("client_phone"),
        channels: f.each("channels", "channels.", |c| ClientChannel {
            id: c.id("id"),
            transports: c.texts("transports"),
        }),
        region_id: f.id("region_id"),
        country_id: f.id("country_id"),
        custom_fields: f.structure("custom_fields"),
    }
}

/// The four tag hook types.
pub fn tag(f: &mut Fields<'_>) -> Tag {
    Tag {
        id: f.id("id"),
        name: f.text("name"),
        description: f.text("description"),
        group_id: f.id("group_id"),
        group_name: f.text("group_name"),
        client_id: f.id("client_id"),
        all_client_channels: f.id("all_client_channels"),
    }
}

/// close_dialog, close_request and dialog_transferred.
pub fn dialog_event(f: &mut Fields<'_>) -> DialogEvent {
    DialogEvent {
        dialog_id: f.id("dialog_id"),
        request_id: f.id("request_id"),
        created: f.time("created"),
        updated: f.time("updated"),
        client_id: f.id("client_id"),
        channel_id: f.id("channel_id"),
        operator_id: f.id("operator_id"),
        transport: f.text("transport"),
        current_operator_id: f.id("current_operator_id"),
        last_operator_id: f.id("last_operator_id"),
        scenario_id: f.id("scenario_id"),
    }
}

pub fn qr_code(f: &mut Fields<'_>) -> QrCode {
    QrCode {
        qrcode_data: f.text("qrcode_data"),
        qrcode_image: f.text("qrcode_image"),
        phone: f.text("phone"),
        device_owner: f.text("device_owner"),
    }
}

pub fn hints_request(f: &mut Fields<'_>) -> HintsRequest {
    HintsRequest {
        client_id: f.id("client_id"),
        operator_id: f.id("operator_id"),
        dialog_id: f.id("dialog_id"),
        request_id: f.id("request_id"),
        channel_id: f.id("channel_id"),
        message_id: f.id("message_id"),
    }
}

pub fn hint_chosen(f: &mut Fields<'_>) -> HintChosen {
    HintChosen {
        client_id: f.id("client_id"),
        message_id: f.id("message_id"),
        hint_id: f.id("hint_id"),
    }
}

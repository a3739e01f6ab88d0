//! A complete new service: log every message Chat2Desk could not deliver.
//!
//! `NATS_URL=nats://127.0.0.1:4222 cargo run -p c2d-subscriber --example delivery_failures`
//! (on the cluster, also `NATS_USER=reader` and its `NATS_PASSWORD`).

use c2d_proto::events::Payload;
use c2d_subscriber::{Delivery, HandlerError, Subscriber, SubscriberConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = c2d_telemetry::init("delivery-failures")?;
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    // As the user NATS_USER and NATS_PASSWORD name, when they are set.
    let client = c2d_subscriber::connect("delivery-failures", &url).await?;

    // One durable consumer per service: it resumes where it stopped after a restart.
    let config =
        SubscriberConfig::new("delivery-failures").filters(["chat2desk.events.*.outbox_status"]);
    let subscriber = Subscriber::open(client, config).await?;

    subscriber
        .run(log_failure, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    telemetry.shutdown();
    Ok(())
}

/// Handles one outbox_status event: a messenger refused an operator's message.
async fn log_failure(delivery: Delivery) -> Result<(), HandlerError> {
    let Some(Payload::OutboxStatus(status)) = &delivery.event.payload else {
        return Ok(());
    };
    tracing::warn!(
        tenant = %delivery.event.tenant,
        message_id = ?status.id,
        client_id = ?status.client_id,
        dialog_id = ?status.dialog_id,
        status = status.gateway_status.as_deref().unwrap_or("unknown"),
        error = status.error.as_deref().unwrap_or("no reason given"),
        "message not delivered"
    );
    Ok(())
}

//! One trace from the webhook to the consumer and on to a gRPC call: the consumer's span is a
//! child of the gateway's span, and a gRPC server's span is a child of the consumer's.
//! In its own test binary, because it installs the process-wide tracing subscriber.

use std::sync::{Arc, Mutex};

use c2d_subscriber::{Delivery, Subscriber, SubscriberConfig};
use c2d_testkit::Pipeline;
use c2d_testkit::fixture;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::sync::Notify;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} span among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[tokio::test]
async fn the_consumer_span_is_a_child_of_the_gateway_span_and_the_parent_of_grpc_calls() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();

    let pipeline = Pipeline::start().await;
    pipeline.post(fixture("outbox_status")).await;

    let done = Arc::new(Notify::new());
    let header = Arc::new(Mutex::new(String::new()));
    let (done_in, header_in) = (done.clone(), header.clone());
    let subscriber = Subscriber::open(pipeline.client().await, SubscriberConfig::new("traced"))
        .await
        .unwrap();
    subscriber
        .run(
            move |delivery: Delivery| {
                let (done, header) = (done_in.clone(), header_in.clone());
                async move {
                    // The consumer calls another service over gRPC...
                    let mut request = tonic::Request::new(());
                    c2d_telemetry::grpc::inject(&mut request, &delivery.span);
                    *header.lock().unwrap() = request
                        .metadata()
                        .get("traceparent")
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned();
                    // ...whose handler continues the trace.
                    let server = tracing::info_span!("grpc-server");
                    c2d_telemetry::grpc::continue_from(&request, &server);
                    drop(server);
                    done.notify_one();
                    Ok(())
                }
            },
            async move { done.notified().await },
        )
        .await
        .unwrap();
    let _ = provider.force_flush();

    let spans = exporter.get_finished_spans().unwrap();
    let webhook = span(&spans, "webhook");
    let consume = span(&spans, "consume");
    let server = span(&spans, "grpc-server");
    assert_ne!(webhook.span_context.trace_id(), TraceId::INVALID);
    assert_eq!(
        consume.span_context.trace_id(),
        webhook.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(
        consume.parent_span_id,
        webhook.span_context.span_id(),
        "consume is a child of the gateway's webhook span"
    );
    assert!(
        consume.parent_span_is_remote,
        "the parent came through the NATS header"
    );
    assert_eq!(
        server.span_context.trace_id(),
        webhook.span_context.trace_id()
    );
    assert_eq!(
        server.parent_span_id,
        consume.span_context.span_id(),
        "the gRPC server span is a child of consume"
    );
    assert_ne!(server.parent_span_id, SpanId::INVALID);
    let header = header.lock().unwrap().clone();
    assert_eq!(
        c2d_telemetry::trace_id(&header),
        Some(webhook.span_context.trace_id().to_string().as_str())
    );
}

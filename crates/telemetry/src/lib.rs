//! How every service binary of the pipeline runs, the same way in each: logs and traces (this
//! module), its Prometheus endpoint and gRPC call metrics ([`metrics`]), its configuration
//! from the environment ([`env`]) and from TOML files ([`config_file`]), binding its ports and
//! reading its flags ([`startup`]), the stop signal ([`shutdown`]), and how long to wait
//! before retrying ([`backoff`]). One crate for the scaffolding a binary needs, so that no
//! service writes its own; domain code stays in the service crates.
//!
//! One trace runs from the webhook to every service it touched: the gateway writes the W3C
//! `traceparent` of its request span into the NATS message headers ([`traceparent`]), and each
//! consumer continues it ([`continue_trace`]), as do gRPC calls between services. Spans are
//! exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; logs go to stderr either way.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `RUST_LOG` | `info` | log filter, e.g. `info,c2d_gateway=debug` |
//! | `LOG_FORMAT` | `text` | `text` for people, `json` for log collectors |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset | OTLP/gRPC collector, e.g. `http://otel-collector:4317`; unset: no export |
//! | `OTEL_SERVICE_NAME` | the binary's name | service name on exported spans |

use std::collections::HashMap;
use std::io::IsTerminal as _;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The W3C trace context header, in HTTP and in NATS message headers alike.
pub const TRACEPARENT: &str = "traceparent";

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is not a valid log filter ({0}); try RUST_LOG=info")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("LOG_FORMAT={0:?} is not supported; use LOG_FORMAT=text or LOG_FORMAT=json")]
    Format(String),
    #[error(
        "cannot set up the OTLP exporter for OTEL_EXPORTER_OTLP_ENDPOINT ({0}); check the URL, e.g. http://otel-collector:4317"
    )]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes spans not yet exported.
#[must_use = "dropping the guard without shutdown() may lose the last spans"]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports what is still buffered. Call it last, after the service has stopped.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("telemetry: spans may be lost at shutdown: {error}");
        }
    }
}

/// Installs logging and tracing for `service` from the environment (see the module docs),
/// logging at INFO unless RUST_LOG says otherwise: what a service's operator wants to read.
pub fn init(service: &'static str) -> Result<Telemetry, TelemetryError> {
    init_at(service, "info")
}

/// As [`init`], at `level` unless RUST_LOG says otherwise: a command line logs at WARN, so
/// that its tables are not interleaved with the NATS client's progress.
pub fn init_at(service: &'static str, level: &str) -> Result<Telemetry, TelemetryError> {
    let filter =
        EnvFilter::try_new(std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned()))?;
    let format = std::env::var("LOG_FORMAT").unwrap_or_else(|_| "text".into());
    let logs = match format.as_str() {
        // Colours only for a person at a terminal: a log file or collector gets plain text (and
        // every span field is formatted once per record, so the escapes cost on each webhook).
        "text" => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(log_fields::PlainFields)
            .with_writer(std::io::stderr)
            .boxed(),
        "json" => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        other => return Err(TelemetryError::Format(other.to_owned())),
    };

    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(name).build());
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    if endpoint.is_some() {
        // The builder reads the endpoint and the other OTEL_EXPORTER_OTLP_* variables itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    // Spans are only worth their cost where they are exported; without an exporter,
    // `traceparent` still starts a fresh trace per unit of work, so ids keep linking services.
    let traces = endpoint
        .is_some()
        .then(|| tracing_opentelemetry::layer().with_tracer(provider.tracer(service)));

    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()?;
    if let Some(endpoint) = endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// The `traceparent` value that makes `span` the parent of work done elsewhere.
///
/// Without a tracing layer (a library driven by tests, say) the span has no trace id; a fresh
/// random trace is started then, so that every message still carries a valid header that joins
/// its consumers' spans into one trace.
pub fn traceparent(span: &Span) -> String {
    let mut context = span.context();
    if !context.span().span_context().is_valid() {
        let ids = RandomIdGenerator::default();
        let root = SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        context = Context::new().with_remote_span_context(root);
    }
    w3c_traceparent(context.span().span_context())
}

/// The W3C form of `span_context`, written directly as TraceContextPropagator writes it
/// (version 00, the sampled flag only): the gateway does this for every delivery, and the
/// propagator's map and its lookups, or even `format!`'s machinery, cost more than the header
/// itself.
fn w3c_traceparent(span_context: &SpanContext) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut header = String::with_capacity(55);
    header.push_str("00-");
    let trace_id = span_context.trace_id().to_bytes();
    let span_id = span_context.span_id().to_bytes();
    for (i, byte) in trace_id.iter().chain(&span_id).enumerate() {
        if i == trace_id.len() {
            header.push('-');
        }
        header.push(char::from(HEX[usize::from(byte >> 4)]));
        header.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    header.push_str(if span_context.is_sampled() {
        "-01"
    } else {
        "-00"
    });
    header
}

/// Makes the trace of `traceparent` (from a NATS header or gRPC metadata) the parent of `span`.
/// A missing or malformed value leaves `span` as the root of a new trace.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    let headers = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&headers);
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled, and then there is nothing to link.
        let _ = span.set_parent(parent);
    }
}

pub mod backoff;
pub mod config_file;
pub mod env;
mod log_fields;
pub mod metrics;
pub mod shutdown;
pub mod startup;

pub use shutdown::shutdown_signal;

/// Trace context in gRPC metadata, so a call between services stays in the caller's trace.
pub mod grpc {
    use tonic::metadata::MetadataValue;
    use tracing::Span;

    use super::{TRACEPARENT, continue_trace, traceparent};

    /// Adds `span`'s `traceparent` to an outgoing request: the server's span becomes its child.
    pub fn inject<T>(request: &mut tonic::Request<T>, span: &Span) {
        if let Ok(value) = MetadataValue::try_from(traceparent(span)) {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
    }

    /// Makes the caller's span (from the request's `traceparent`) the parent of `span`.
    pub fn continue_from<T>(request: &tonic::Request<T>, span: &Span) {
        let value = request
            .metadata()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok());
        continue_trace(span, value);
    }
}

/// The trace id of a `traceparent` value, for logs and tests.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_without_a_tracer_still_gets_a_valid_traceparent() {
        let value = traceparent(&Span::none());
        let parts: Vec<_> = value.split('-').collect();
        assert_eq!(parts.len(), 4, "{value}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_ne!(
            traceparent(&Span::none()),
            value,
            "each root is a new trace"
        );
    }

    #[test]
    fn the_header_is_what_the_propagator_writes() {
        let ids = RandomIdGenerator::default();
        for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
            let span_context = SpanContext::new(
                ids.new_trace_id(),
                ids.new_span_id(),
                flags,
                true,
                TraceState::default(),
            );
            let context = Context::new().with_remote_span_context(span_context.clone());
            let mut headers = HashMap::new();
            TraceContextPropagator::new().inject_context(&context, &mut headers);
            assert_eq!(headers[TRACEPARENT], w3c_traceparent(&span_context));
        }
    }

    #[test]
    fn trace_ids_are_read_from_traceparent() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(value), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id("garbage"), None);
    }
}

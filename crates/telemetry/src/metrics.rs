//! What a service counts, exposed to Prometheus the same way by every service that serves
//! `GET /metrics`: the text format of a `prometheus_client` registry, with its content type.

use prometheus_client::registry::Registry;

/// The content type of the Prometheus text exposition (format 0.0.4), which every Prometheus
/// and compatible scraper reads.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

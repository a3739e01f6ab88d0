//! Threshold rules ask AnalyticsService: the tenant's total in the channel summary over the
//! rule's window gives the failure rate, the inbound volume and the first-response p90 (a
//! quantile of every sample in the window, not an average of channels' quantiles); a spike is
//! the window's inbound volume against the baseline before it, scaled to the window. Analytics
//! counts each event in the minute of its own time, so late deliveries count where they
//! belong, and a redelivery is not counted twice.

use std::time::{Duration, SystemTime};

use c2d_proto::analytics::AnalyticsServiceClient;
use c2d_proto::analytics::v1::{Summary, SummaryRequest, TimeRange};
use tonic::transport::{Channel, Endpoint};

use crate::rules::ThresholdMetric;

/// How long one evaluation waits for AnalyticsService.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// AnalyticsService.
#[derive(Clone)]
pub struct Analytics {
    client: AnalyticsServiceClient<Channel>,
}

impl Analytics {
    /// AnalyticsService at `url` (e.g. `http://127.0.0.1:50052`), connected on first use.
    pub fn connect(url: &str) -> Result<Analytics, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .connect_lazy();
        Ok(Analytics {
            client: AnalyticsServiceClient::new(channel),
        })
    }

    /// `metric` for `tenant` over the `window` that ends now; None when analytics does not
    /// know the tenant yet (no event) or cannot answer (logged).
    pub async fn measure(
        &self,
        tenant: &str,
        metric: ThresholdMetric,
        window: Duration,
    ) -> Option<f64> {
        let now = SystemTime::now();
        let total = self.total(tenant, now.checked_sub(window)?, now).await?;
        Some(match metric {
            ThresholdMetric::DeliveryFailureRate => {
                let (outbound, failures) = (total.outbound_messages, total.delivery_failures);
                if failures == 0 {
                    0.0
                } else {
                    100.0 * failures as f64 / outbound.max(failures) as f64
                }
            }
            ThresholdMetric::InboundMessages => total.inbound_messages as f64,
            // No answer in the window is no slow answer.
            ThresholdMetric::FirstResponseP90Seconds => {
                total.first_response_seconds.map_or(0.0, |q| q.p90)
            }
            ThresholdMetric::InboundSpikeRatio { baseline } => {
                let start = now.checked_sub(window)?;
                let before = self
                    .total(tenant, start.checked_sub(baseline)?, start)
                    .await?;
                // The baseline's rate over a window's length; at least one message, so that
                // a quiet baseline does not turn the first messages into an infinite spike.
                let usual =
                    before.inbound_messages as f64 * window.as_secs_f64() / baseline.as_secs_f64();
                total.inbound_messages as f64 / usual.max(1.0)
            }
        })
    }

    /// The tenant's total over `[start, end)`.
    async fn total(&self, tenant: &str, start: SystemTime, end: SystemTime) -> Option<Summary> {
        let request = SummaryRequest {
            sla_business_minutes: 0,
            tenant: tenant.to_owned(),
            range: Some(TimeRange {
                start: Some(start.into()),
                end: Some(end.into()),
            }),
        };
        match self.client.clone().channel_summary(request).await {
            Ok(answer) => Some(answer.into_inner().total.unwrap_or_default()),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                tracing::debug!(%tenant, %status, "analytics has nothing for this tenant yet");
                None
            }
            Err(status) => {
                tracing::warn!(%tenant, %status, "AnalyticsService did not answer; the threshold rule waits for the next evaluation");
                None
            }
        }
    }
}

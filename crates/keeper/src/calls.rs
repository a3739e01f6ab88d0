//! Calls to Chat2Desk's API, retried the way each failure asks: a 429 after its `Retry-After`,
//! an unreachable API, a 5xx or a malformed page after a doubling backoff, a few times; a
//! refused token (401/403) or request at once, as an error that says what to fix. Nothing here
//! panics or gives up on the keeper: the caller records the error and tries again at the next
//! check.

use std::future::Future;
use std::time::Duration;

use c2d_chat2desk::ApiError;

use crate::metrics::Metrics;

/// How a call is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retries {
    /// Tries in all.
    pub attempts: u32,
    /// The wait after the first failure; doubles after each.
    pub backoff: Duration,
    /// No wait is longer, whatever `Retry-After` asks.
    pub max_wait: Duration,
}

impl Default for Retries {
    fn default() -> Retries {
        Retries {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Runs `call` until it succeeds, fails for good, or `retries.attempts` are spent; every
/// failure is counted in `metrics` under the tenant and logged with what was being done.
pub async fn retrying<T, F, Fut>(
    retries: Retries,
    metrics: &Metrics,
    tenant: &str,
    what: &str,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        metrics.api_error(tenant, kind(&error));
        if !error.is_transient() || attempt >= retries.attempts {
            return Err(error);
        }
        let wait = match &error {
            ApiError::RateLimited {
                retry_after: Some(after),
            } => *after,
            _ => {
                c2d_telemetry::backoff::exponential(retries.backoff, attempt - 1, retries.max_wait)
            }
        }
        .min(retries.max_wait);
        tracing::warn!(%tenant, attempt, wait_ms = wait.as_millis() as u64, %error, "{what} failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// The metric label of an API error.
pub fn kind(error: &ApiError) -> &'static str {
    match error {
        ApiError::Unreachable { .. } => "unreachable",
        ApiError::Unauthorized { .. } => "unauthorized",
        ApiError::RateLimited { .. } => "rate_limited",
        ApiError::Refused { status, .. } if *status >= 500 => "server_error",
        ApiError::Refused { .. } => "refused",
        ApiError::Unexpected(_) => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_a_refused_token_is_not() {
        let metrics = Metrics::default();
        let calls = AtomicU32::new(0);
        let answer = retrying(Retries::default(), &metrics, "acme", "listing", || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 => Err(ApiError::RateLimited {
                    retry_after: Some(Duration::from_secs(2)),
                }),
                1 => Err(ApiError::Refused {
                    status: 502,
                    message: "bad gateway".into(),
                }),
                2 => Err(ApiError::Unexpected("a truncated page".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 7);
        assert_eq!(calls.load(Ordering::Relaxed), 4);

        calls.store(0, Ordering::Relaxed);
        let refused: Result<(), _> =
            retrying(Retries::default(), &metrics, "acme", "listing", || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::Unauthorized { status: 401 })
            })
            .await;
        assert!(refused.unwrap_err().to_string().contains("C2D_API_TOKEN"));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "a refused token is not retried"
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"c2d_keeper_api_errors_total{tenant="acme",kind="rate_limited"} 1"#),
            "{text}"
        );
    }
}

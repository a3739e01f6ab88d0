//! Waiting for something to become true, the one way every test does it: a condition polled
//! until it holds or a deadline passes, and then a failure that says what was awaited and what
//! was last seen. A test never sleeps a guessed time and then asserts; it waits on the signal.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] asks again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Ok`, and returns its value; panics with `what` and the last
/// `Err` (what was seen instead) once `limit` has passed.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("gave up after {limit:?} waiting for {what}: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut asked = 0;
        let value = eventually("the third answer", Duration::from_secs(5), || {
            asked += 1;
            let now = asked;
            async move {
                if now >= 3 {
                    Ok(now)
                } else {
                    Err(format!("answer {now}"))
                }
            }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a miracle: still nothing")]
    async fn fails_loudly_with_what_it_saw() {
        eventually("a miracle", Duration::from_millis(120), || async {
            Err::<(), _>("still nothing".to_owned())
        })
        .await;
    }
}

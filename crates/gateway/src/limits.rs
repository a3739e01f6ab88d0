//! Protection against floods and strangers: a token bucket and a cap on requests in flight per
//! tenant (one misbehaving account, or someone who learned its URL, cannot take the gateway
//! from the others), and an optional allow-list of source networks.
//!
//! A refusal is costly with this sender: Chat2Desk retries a delivery only three times (after
//! 10 s, 5 min and 2 h), so every 429 spends one of them. The limits therefore absorb what a
//! real account sends and refuse only abuse:
//! - the bucket is deep ([`crate::cfg::DEFAULT_TENANT_BURST`]): a mass mailing whose thousands
//!   of `outbox_status` arrive at once is taken at full speed;
//! - over its rate, a request first waits for its token, up to `max_wait`, as in a queue, so a
//!   burst beyond the bucket is slowed rather than refused;
//! - only a request that would wait longer, or one over the tenant's requests in flight, gets
//!   429 with `Retry-After`; Chat2Desk retries, and the retry is stored once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per-tenant limits.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    /// Requests per second a tenant may sustain.
    pub rate: f64,
    /// Requests a tenant may send at once above its rate.
    pub burst: f64,
    /// Requests of a tenant being handled at the same time.
    pub concurrency: usize,
    /// How long a request over the rate may wait for its token before it is refused.
    pub max_wait: Duration,
}

#[derive(Debug)]
struct TenantState {
    tokens: f64,
    refilled: Instant,
    in_flight: usize,
}

/// Why a request is refused for now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// Over the rate: a token comes back in this many seconds.
    Rate { retry_after_secs: u64 },
    /// Too many requests in flight.
    Concurrency,
}

/// The limits of every tenant.
#[derive(Debug)]
pub struct TenantLimits {
    settings: LimitSettings,
    tenants: Mutex<HashMap<String, TenantState>>,
}

/// A request of a tenant in flight; dropping it frees its place.
pub struct Permit {
    limits: Arc<TenantLimits>,
    tenant: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut tenants = self.limits.lock();
        if let Some(state) = tenants.get_mut(&self.tenant) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

impl TenantLimits {
    pub fn new(settings: LimitSettings) -> Arc<TenantLimits> {
        Arc::new(TenantLimits {
            settings,
            tenants: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TenantState>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets one request of `tenant` in, after the returned wait (zero within its rate), or says
    /// why not. A waiting request holds its token and its place in flight, so the requests of a
    /// burst are let in one after another at the rate, in the order they came.
    pub fn admit(
        self: &Arc<Self>,
        tenant: &str,
        now: Instant,
    ) -> Result<(Permit, Duration), Refused> {
        let mut tenants = self.lock();
        let state = tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantState {
                tokens: self.settings.burst,
                refilled: now,
                in_flight: 0,
            });
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.settings.rate).min(self.settings.burst);
        state.refilled = now;
        if state.in_flight >= self.settings.concurrency {
            return Err(Refused::Concurrency);
        }
        // The token may be borrowed from the future: the bucket goes below zero by the
        // requests waiting, and each waits until the refill has paid for it.
        let wait = ((1.0 - state.tokens) / self.settings.rate.max(f64::MIN_POSITIVE)).max(0.0);
        if wait > self.settings.max_wait.as_secs_f64() {
            let beyond = wait - self.settings.max_wait.as_secs_f64();
            return Err(Refused::Rate {
                retry_after_secs: beyond.ceil().max(1.0) as u64,
            });
        }
        state.tokens -= 1.0;
        state.in_flight += 1;
        let permit = Permit {
            limits: Arc::clone(self),
            tenant: tenant.to_owned(),
        };
        Ok((permit, Duration::from_secs_f64(wait)))
    }
}

/// A network, e.g. `203.0.113.0/24` or `2001:db8::/32` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = address.parse().map_err(|_| {
            format!("{text:?} is not a network: write 203.0.113.0/24 or 2001:db8::/32")
        })?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(Cidr { network, prefix })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_tenant_over_its_rate_or_concurrency_is_refused_and_others_are_not() {
        let limits = TenantLimits::new(LimitSettings {
            rate: 2.0,
            burst: 3.0,
            concurrency: 2,
            max_wait: Duration::ZERO,
        });
        let t0 = Instant::now();
        let a = limits.admit("acme", t0).unwrap();
        let b = limits.admit("acme", t0).unwrap();
        assert_eq!(limits.admit("acme", t0).err(), Some(Refused::Concurrency));
        assert!(
            limits.admit("globex", t0).is_ok(),
            "another tenant is not affected"
        );
        drop((a, b));
        let _c = limits.admit("acme", t0).unwrap();
        assert_eq!(
            limits.admit("acme", t0).err(),
            Some(Refused::Rate {
                retry_after_secs: 1
            })
        );
        // Half a second later one token is back.
        assert!(
            limits
                .admit("acme", t0 + Duration::from_millis(500))
                .is_ok()
        );
    }

    #[test]
    fn a_burst_beyond_the_bucket_waits_its_turn_before_it_is_refused() {
        let limits = TenantLimits::new(LimitSettings {
            rate: 10.0,
            burst: 2.0,
            concurrency: 100,
            max_wait: Duration::from_millis(500),
        });
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..7)
            .map(|_| {
                limits.admit("acme", t0).map(|(permit, wait)| {
                    std::mem::forget(permit);
                    wait
                })
            })
            .collect::<Result<_, _>>()
            .unwrap();
        // Two from the bucket at once, then one every 100 ms, in order.
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [0, 0, 100, 200, 300, 400, 500]);
        // The eighth would wait 600 ms, past the 500 allowed: refused, to come back after the
        // part of its wait that was too long.
        assert_eq!(
            limits.admit("acme", t0).err(),
            Some(Refused::Rate {
                retry_after_secs: 1
            })
        );
        // A second later the queue has drained and a token is there again.
        let (_, wait) = limits.admit("acme", t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(wait, Duration::ZERO);
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(net.contains("203.0.113.77".parse().unwrap()));
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:203.0.113.9".parse().unwrap()),
            "IPv4-mapped"
        );
        let host: Cidr = "10.1.2.3".parse().unwrap();
        assert!(host.contains("10.1.2.3".parse().unwrap()));
        assert!(!host.contains("10.1.2.4".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        assert!(
            "10.0.0.0/33"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!("ten".parse::<Cidr>().is_err());
    }
}

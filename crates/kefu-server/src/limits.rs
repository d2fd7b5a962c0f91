//! Rate limits, keyed by client IP or account, with GCRA from `governor`.
//! Keys of idle clients are pruned by the maintenance task.

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;

pub struct Limiter<K: Hash + Eq + Clone> {
    inner: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `per_minute` requests a minute with a burst of `burst`; 0 disables.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        let inner = NonZeroU32::new(per_minute).map(|n| {
            let burst = NonZeroU32::new(burst).unwrap_or(n);
            RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst))
        });
        Limiter { inner }
    }

    pub fn per_second(per_second: u32, burst: u32) -> Self {
        let inner = NonZeroU32::new(per_second).map(|n| {
            let burst = NonZeroU32::new(burst).unwrap_or(n);
            RateLimiter::keyed(Quota::per_second(n).allow_burst(burst))
        });
        Limiter { inner }
    }

    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(l) = &self.inner else { return Ok(()) };
        l.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }

    pub fn prune(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_burst_and_zero_disables() {
        let l = Limiter::per_minute(60, 3);
        for _ in 0..3 {
            assert!(l.check(&"1.2.3.4").is_ok());
        }
        assert!(matches!(
            l.check(&"1.2.3.4"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(l.check(&"5.6.7.8").is_ok(), "keys are independent");
        let off = Limiter::per_minute(0, 0);
        for _ in 0..1000 {
            assert!(off.check(&"x").is_ok());
        }
    }
}

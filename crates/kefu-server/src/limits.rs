//! Rate limits, keyed by client IP or account, with GCRA from `governor`.
//! Keys of idle clients are pruned by the maintenance task. Logins per
//! account are not limited but delayed per address: [`LoginGuard`].

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

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

/// Failed logins, remembered per account and address. Replaces a hard
/// per-account limit, which let anyone lock an agent out by failing on
/// purpose: here the address that fails waits (1 s after its free
/// failures, doubling to 15 minutes: a guesser stays slow), while the
/// owner, from another address, is never refused because of it. When the
/// account fails from many addresses at once (a distributed guesser), every
/// attempt on it is answered more slowly — delayed, never refused, so the
/// right password still gets in.
pub struct LoginGuard {
    /// Failures before delays begin, per account and address; 0 = off.
    free: u32,
    pairs: Mutex<HashMap<(String, IpAddr), Failures>>,
    accounts: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The first wait after the free failures; it doubles with each failure.
pub const LOGIN_FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest an address waits between attempts on one account.
pub const LOGIN_MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// The longest any attempt on an account under attack is held.
pub const LOGIN_MAX_SLOWDOWN: Duration = Duration::from_secs(5);
/// Failures older than this are forgotten (per address: a day, so that a
/// slow guesser does not get its free failures back every hour).
const PAIR_MEMORY: Duration = Duration::from_secs(24 * 3600);
const ACCOUNT_MEMORY: Duration = Duration::from_secs(15 * 60);

impl LoginGuard {
    pub fn new(free_failures: u32) -> LoginGuard {
        LoginGuard {
            free: free_failures,
            pairs: Mutex::default(),
            accounts: Mutex::default(),
        }
    }

    /// Before a password is checked: refused (429, Retry-After) while this
    /// address must still wait for this account; otherwise how long to hold
    /// the attempt before answering (zero unless the account is failing
    /// from many addresses).
    pub fn admit(&self, account: &str, ip: IpAddr, now: Instant) -> Result<Duration, ApiError> {
        if self.free == 0 {
            return Ok(Duration::ZERO);
        }
        let key = (account.to_string(), ip);
        if let Some(f) = lock(&self.pairs)
            .get(&key)
            .copied()
            .filter(|f| fresh(f, now, PAIR_MEMORY))
        {
            let ready = f.last + self.delay_after(f.count);
            if ready > now {
                let wait = ready - now;
                return Err(ApiError::RateLimited {
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                });
            }
        }
        let failing = lock(&self.accounts)
            .get(account)
            .filter(|f| fresh(f, now, ACCOUNT_MEMORY))
            .map_or(0, |f| f.count);
        // Beyond ten addresses' worth of free failures: 100 ms more per
        // failure, up to the cap.
        let over = failing.saturating_sub(self.free.saturating_mul(10));
        Ok((Duration::from_millis(100) * over).min(LOGIN_MAX_SLOWDOWN))
    }

    /// The wait an address has earned after `count` failures.
    fn delay_after(&self, count: u32) -> Duration {
        if count < self.free {
            return Duration::ZERO;
        }
        let doublings = (count - self.free).min(20);
        (LOGIN_FIRST_DELAY * 2u32.pow(doublings)).min(LOGIN_MAX_DELAY)
    }

    pub fn failed(&self, account: &str, ip: IpAddr, now: Instant) {
        bump(&self.pairs, (account.to_string(), ip), now, PAIR_MEMORY);
        bump(&self.accounts, account.to_string(), now, ACCOUNT_MEMORY);
    }

    /// The right password: this address starts afresh (the account's
    /// count stays, since others may still be guessing).
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        lock(&self.pairs).remove(&(account.to_string(), ip));
    }

    pub fn prune(&self, now: Instant) {
        lock(&self.pairs).retain(|_, f| fresh(f, now, PAIR_MEMORY));
        lock(&self.accounts).retain(|_, f| fresh(f, now, ACCOUNT_MEMORY));
    }
}

/// Counts one more failure under `key` (starting over if the last one is
/// forgotten).
fn bump<K: Hash + Eq>(map: &Mutex<HashMap<K, Failures>>, key: K, now: Instant, memory: Duration) {
    let mut map = lock(map);
    let f = map.entry(key).or_insert(Failures {
        count: 0,
        last: now,
    });
    f.count = if fresh(f, now, memory) {
        f.count.saturating_add(1)
    } else {
        1
    };
    f.last = now;
}

fn fresh(f: &Failures, now: Instant, memory: Duration) -> bool {
    now.saturating_duration_since(f.last) < memory
}

/// A poisoned lock only means a panic elsewhere mid-update of counters:
/// the counters are still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_address_waits_longer_and_longer_but_not_the_owner() {
        let guard = LoginGuard::new(3);
        let (attacker, owner): (IpAddr, IpAddr) = (
            "203.0.113.9".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
        );
        let t0 = Instant::now();
        let mut now = t0;
        for _ in 0..3 {
            assert_eq!(
                guard.admit("a@kefu.test", attacker, now).unwrap(),
                Duration::ZERO
            );
            guard.failed("a@kefu.test", attacker, now);
        }
        // 1 s, 2 s, 4 s … after the free failures, capped at 15 minutes.
        let mut waits = Vec::new();
        for _ in 0..16 {
            let Err(ApiError::RateLimited { retry_after_secs }) =
                guard.admit("a@kefu.test", attacker, now)
            else {
                panic!("not refused");
            };
            waits.push(retry_after_secs);
            now += Duration::from_secs(retry_after_secs);
            assert!(guard.admit("a@kefu.test", attacker, now).is_ok());
            guard.failed("a@kefu.test", attacker, now);
            // The owner, elsewhere, is never refused.
            assert!(guard.admit("a@kefu.test", owner, now).is_ok());
        }
        assert_eq!(&waits[..5], [1, 2, 4, 8, 16]);
        assert_eq!(waits.last(), Some(&900), "{waits:?}");
        assert!(
            guard.admit("b@kefu.test", attacker, now).is_ok(),
            "per account"
        );
        // A success starts that address afresh.
        guard.succeeded("a@kefu.test", attacker);
        assert!(guard.admit("a@kefu.test", attacker, now).is_ok());
        // Forgotten after a day; pruned too.
        guard.failed("a@kefu.test", attacker, now);
        guard.prune(now + PAIR_MEMORY);
        assert!(lock(&guard.pairs).is_empty() && lock(&guard.accounts).is_empty());
    }

    #[test]
    fn an_account_failing_everywhere_is_slowed_not_closed() {
        let guard = LoginGuard::new(3);
        let now = Instant::now();
        for i in 0..40u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            guard.failed("a@kefu.test", ip, now);
        }
        // 40 failures, 30 free (ten addresses' worth): 1 s for everyone.
        let owner = IpAddr::from([192, 168, 1, 2]);
        assert_eq!(
            guard.admit("a@kefu.test", owner, now).unwrap(),
            Duration::from_secs(1)
        );
        for i in 0..200u8 {
            guard.failed("a@kefu.test", IpAddr::from([10, 0, 1, i]), now);
        }
        assert_eq!(
            guard.admit("a@kefu.test", owner, now).unwrap(),
            LOGIN_MAX_SLOWDOWN
        );
        assert_eq!(
            guard.admit("b@kefu.test", owner, now).unwrap(),
            Duration::ZERO
        );
        let off = LoginGuard::new(0);
        for _ in 0..100 {
            off.failed("a@kefu.test", owner, now);
        }
        assert_eq!(
            off.admit("a@kefu.test", owner, now).unwrap(),
            Duration::ZERO
        );
    }

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

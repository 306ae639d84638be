//! Sign-in throttling: how many password checks one client address, and one username, may ask
//! for. A password check costs tens of milliseconds of a core (argon2id), so an unthrottled
//! `/login` lets anyone keep the server busy; the account lockout alone does not help (it
//! still hashes, and anyone can lock out a known username). Both budgets refill continuously
//! (the generic cell rate algorithm of the `governor` crate): a burst of `n`, then `n` a
//! minute. A throttled attempt is refused before any database or hashing work.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Usernames are keyed by at most this many characters (a key's memory stays small).
const USERNAME_KEY_CHARS: usize = 64;

pub struct LoginThrottle {
    by_client: DefaultKeyedRateLimiter<IpAddr>,
    by_username: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// Which budget ran out, and when the next attempt is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

impl LoginThrottle {
    pub fn new(per_client_per_minute: u32, per_username_per_minute: u32) -> Self {
        LoginThrottle {
            by_client: RateLimiter::keyed(quota(per_client_per_minute)),
            by_username: RateLimiter::keyed(quota(per_username_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one sign-in attempt from `client` for `username`. The client's budget is asked
    /// first, so a throttled client cannot use up (or fill the memory with) usernames' budgets.
    pub fn attempt(&self, client: Option<IpAddr>, username: &str) -> Result<(), Throttled> {
        let now = self.clock.now();
        if let Some(ip) = client {
            self.by_client.check_key(&ip).map_err(|n| Throttled { retry_after: n.wait_time_from(now) })?;
        }
        let key: String = username.trim().to_lowercase().chars().take(USERNAME_KEY_CHARS).collect();
        self.by_username.check_key(&key).map_err(|n| Throttled { retry_after: n.wait_time_from(now) })
    }

    /// Forgets clients and usernames whose budget is full again (run now and then).
    pub fn forget_idle(&self) {
        self.by_client.retain_recent();
        self.by_client.shrink_to_fit();
        self.by_username.retain_recent();
        self.by_username.shrink_to_fit();
    }

    pub fn tracked(&self) -> usize {
        self.by_client.len() + self.by_username.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_and_a_username_each_get_their_burst_then_wait() {
        let t = LoginThrottle::new(5, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            t.attempt(Some(a), "admin").unwrap();
        }
        // The username's budget is spent, from any address, in any letter case.
        let e = t.attempt(Some(b), " ADMIN ").unwrap_err();
        assert!(e.retry_after > Duration::ZERO && e.retry_after <= Duration::from_secs(20), "{e:?}");
        // The client still has two attempts for other usernames, then none.
        t.attempt(Some(a), "kim").unwrap();
        t.attempt(Some(a), "lee").unwrap();
        assert!(t.attempt(Some(a), "park").is_err());
        assert!(t.attempt(Some(b), "park").is_ok(), "another client is not affected");
        assert!(t.tracked() > 0);
    }
}

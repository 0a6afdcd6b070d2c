//! Per-source flood protection: a token bucket per source address, checked
//! before a message is even parsed.
//!
//! Memory is fixed whatever the number of sources: buckets live in a table
//! of `slots` entries indexed by a keyed hash of the address (a random key per
//! process, so an attacker cannot aim at a trunk's slot). Two sources that
//! share a slot share a budget, which only ever errs on the strict side for
//! them. Trunk sources use a separate, larger budget and a separate table.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A budget: sustained rate and burst, in requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests per second; 0 disables limiting.
    pub rate: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f32,
    /// Milliseconds since the limiter started.
    refilled_ms: u32,
    /// When a drop from this slot was last logged.
    logged_ms: u32,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Drop; `log` is true once per source slot per log interval.
    Drop {
        log: bool,
    },
}

/// Token buckets for ordinary sources and for trunk sources.
#[derive(Debug)]
pub struct Limiter {
    shards: Vec<Mutex<Vec<Bucket>>>,
    hasher: RandomState,
    start: Instant,
    public: Budget,
    trunk: Budget,
    log_every_ms: u32,
}

const SHARDS: usize = 64;

impl Limiter {
    /// `slots` buckets per table (rounded up to a multiple of 64).
    pub fn new(slots: usize, public: Budget, trunk: Budget, log_every: Duration) -> Self {
        let per_shard = slots.div_ceil(SHARDS).max(1);
        let empty = Bucket {
            tokens: f32::NAN,
            refilled_ms: 0,
            logged_ms: 0,
        };
        Self {
            // Two tables (public, trunk) in one: the trunk half follows the public half.
            shards: (0..SHARDS)
                .map(|_| Mutex::new(vec![empty; per_shard * 2]))
                .collect(),
            hasher: RandomState::new(),
            start: Instant::now(),
            public,
            trunk,
            log_every_ms: u32::try_from(log_every.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Bytes held by the buckets (constant for the limiter's life).
    pub fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |v| v.len()))
            .sum::<usize>()
            * std::mem::size_of::<Bucket>()
    }

    /// Takes one token from `ip`'s bucket.
    pub fn check(&self, ip: IpAddr, is_trunk: bool) -> Verdict {
        let budget = if is_trunk { self.trunk } else { self.public };
        if budget.rate <= 0.0 {
            return Verdict::Allow;
        }
        let hash = self.hasher.hash_one(ip) as usize;
        let now_ms = u32::try_from(self.start.elapsed().as_millis()).unwrap_or(u32::MAX);
        let mut shard = self.shards[hash % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let half = shard.len() / 2;
        let slot = (hash / SHARDS) % half + if is_trunk { half } else { 0 };
        let bucket = &mut shard[slot];
        if bucket.tokens.is_nan() {
            *bucket = Bucket {
                tokens: budget.burst as f32,
                refilled_ms: now_ms,
                logged_ms: 0,
            };
        }
        let elapsed = f64::from(now_ms.saturating_sub(bucket.refilled_ms)) / 1000.0;
        bucket.tokens = (f64::from(bucket.tokens) + elapsed * budget.rate).min(budget.burst) as f32;
        bucket.refilled_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Allow;
        }
        let log =
            bucket.logged_ms == 0 || now_ms.saturating_sub(bucket.logged_ms) >= self.log_every_ms;
        if log {
            bucket.logged_ms = now_ms.max(1);
        }
        Verdict::Drop { log }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: f64) -> Limiter {
        Limiter::new(
            1024,
            Budget { rate, burst },
            Budget {
                rate: 1000.0,
                burst: 1000.0,
            },
            Duration::from_secs(10),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let l = limiter(10.0, 5.0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..7).map(|_| l.check(ip, false)).collect();
        assert_eq!(&verdicts[..5], [Verdict::Allow; 5]);
        assert_eq!(
            verdicts[5],
            Verdict::Drop { log: true },
            "first drop is logged"
        );
        assert_eq!(verdicts[6], Verdict::Drop { log: false }, "then quiet");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(l.check(ip, false), Verdict::Allow, "refilled at 10/s");
        assert_eq!(
            l.check("192.0.2.2".parse().unwrap(), false),
            Verdict::Allow,
            "other sources unaffected"
        );
        assert_eq!(
            l.check(ip, true),
            Verdict::Allow,
            "trunk budget is separate"
        );
    }

    #[test]
    fn memory_does_not_grow_with_sources() {
        let l = limiter(1.0, 1.0);
        let before = l.memory_bytes();
        for n in 0..100_000u32 {
            l.check(IpAddr::from(n.to_be_bytes()), false);
        }
        assert_eq!(l.memory_bytes(), before);
        assert!(before <= 64 * 1024, "{before}");
    }

    #[test]
    fn zero_rate_disables() {
        let l = limiter(0.0, 0.0);
        assert!((0..100).all(|_| l.check("192.0.2.1".parse().unwrap(), false) == Verdict::Allow));
    }
}

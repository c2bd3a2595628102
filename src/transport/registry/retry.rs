//! When to try a registry request again, and how long to wait first: one
//! policy (exponential backoff with full jitter, `Retry-After` honoured up
//! to a cap) and the attempt budget a run of tries spends.

use std::time::Duration;

/// The longest `Retry-After` strata honours: a registry asking for more
/// gets a retry after this long (which will fail again if it meant it).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// How often and how patiently to try a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The first retry's backoff ceiling; each further retry doubles it.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy that tries once.
    pub fn once() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff ceiling before retry number `retry` (1 for the first):
    /// `base`·2^(retry−1), at most `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// How long to wait before retry number `retry`: a uniformly random
    /// time up to the ceiling ("full jitter", so parallel clients that
    /// failed together do not come back together), or what the registry
    /// asked for (capped at [`RETRY_AFTER_CAP`]) plus up to `base` of
    /// jitter.
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => asked.min(RETRY_AFTER_CAP) + jitter(self.base),
            None => jitter(self.ceiling(retry)),
        }
    }
}

/// A uniformly random duration in `[0, up_to]`.
fn jitter(up_to: Duration) -> Duration {
    let nanos = up_to.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// The tries a run of attempts has left. One budget covers a whole
/// operation: a blob download shares it between the requests that open the
/// blob and the resumptions of a broken body, so a blob that always fails
/// costs `attempts` requests, not `attempts` squared. Progress (bytes
/// received) gives the whole budget back.
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: RetryPolicy,
    failures: u32,
    throttles: u32,
}

impl Attempts {
    /// A fresh budget under `policy`.
    pub fn new(policy: RetryPolicy) -> Attempts {
        Attempts {
            policy,
            failures: 0,
            throttles: 0,
        }
    }

    /// Records a failed try. Returns how long to wait before the next one,
    /// or `None` when the budget is spent.
    pub fn failed(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.failures += 1;
        (self.failures < self.policy.attempts.max(1))
            .then(|| self.policy.wait(self.failures, retry_after))
    }

    /// Records a refusal to serve now (429): the request waits as asked
    /// and tries again. A rate limit says "slower", not "broken", so it has
    /// a budget of its own, four times the policy's attempts, and does not
    /// spend the budget for failures.
    pub fn throttled(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.throttles += 1;
        (self.throttles < self.policy.attempts.max(1).saturating_mul(4))
            .then(|| self.policy.wait(self.throttles, retry_after))
    }

    /// Records progress: the budget starts over.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }

    /// Failed tries since the last progress.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Every failed try, refusals to serve (429) included.
    pub fn tries(&self) -> u32 {
        self.failures + self.throttles
    }

    /// The policy this budget follows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date (IMF
/// fixdate, RFC 850 or asctime form) taken relative to now. A date in the
/// past means "now".
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, chrono::Utc::now())
}

/// [`parse_retry_after`] with "now" given.
pub fn parse_retry_after_at(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(v, f).ok())?
    .and_utc();
    Some(
        when.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_ceilings_double_up_to_the_maximum() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(5), Duration::from_secs(1));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jittered_waits_stay_within_their_ceiling_and_vary() {
        let p = policy();
        for retry in 1..8 {
            let waits: Vec<Duration> = (0..200).map(|_| p.wait(retry, None)).collect();
            assert!(waits.iter().all(|w| *w <= p.ceiling(retry)), "{waits:?}");
            let distinct: std::collections::HashSet<_> = waits.iter().collect();
            assert!(distinct.len() > 100, "full jitter spreads waits out");
            // Full jitter: about half the waits fall below half the ceiling.
            let low = waits.iter().filter(|w| **w < p.ceiling(retry) / 2).count();
            assert!((50..150).contains(&low), "{low} of 200 below half");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy();
        for _ in 0..50 {
            let w = p.wait(1, Some(Duration::from_secs(3)));
            assert!(w >= Duration::from_secs(3) && w <= Duration::from_millis(3100));
            let w = p.wait(1, Some(Duration::from_secs(3600)));
            assert!(w >= RETRY_AFTER_CAP && w <= RETRY_AFTER_CAP + p.base);
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .to_utc();
        let at = |v| parse_retry_after_at(v, now);
        assert_eq!(at("120"), Some(Duration::from_secs(120)));
        assert_eq!(at(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            at("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            at("Wednesday, 21-Oct-15 07:29:00 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(at("Wed Oct 21 07:28:05 2015"), Some(Duration::from_secs(5)));
        assert_eq!(at("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("soon"), None);
        assert_eq!(at("-5"), None);
    }

    #[test]
    fn a_budget_allows_attempts_tries_and_progress_renews_it() {
        let mut a = Attempts::new(policy());
        assert!(a.failed(None).is_some());
        assert!(a.failed(None).is_some());
        assert!(a.failed(None).is_some());
        assert_eq!(a.failed(None), None, "the fourth failure ends it");
        let mut a = Attempts::new(policy());
        for _ in 0..10 {
            assert!(a.failed(None).is_some());
            assert!(a.failed(None).is_some());
            a.progressed();
        }
        assert_eq!(a.failures(), 0);
        let mut throttled = Attempts::new(policy());
        for _ in 0..15 {
            assert!(throttled.throttled(None).is_some());
        }
        assert!(
            throttled.failed(None).is_some(),
            "429s leave the failure budget"
        );
        assert_eq!(throttled.throttled(None), None, "the sixteenth 429 ends it");
        let mut once = Attempts::new(RetryPolicy::once());
        assert_eq!(once.failed(None), None);
    }
}

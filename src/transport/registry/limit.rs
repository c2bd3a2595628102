//! How many requests go to a registry at once. A [`Limiter`] bounds the
//! requests in flight; an adaptive one (one per registry) halves its
//! current limit when the registry answers 429 and grows it by one after
//! each window of answers that were not, up to its maximum (AIMD). A fixed
//! one bounds requests across registries ([`Limiter::global`]).
//!
//! A request holds a [`Permit`] from before it is sent until its response
//! has been consumed. Streaming bodies (a blob download read by a sink, an
//! upload fed by a source) count as in flight too, but they may be waiting
//! for another request of the same copy: a mirror's upload is fed by a
//! download from the same registry, and a download being resumed halfway
//! through an upload needs a new request. So a request waits for room only
//! while some other request is still before its response headers (those
//! finish without help); it never waits for streaming bodies alone. While
//! bodies fill the limit, new requests start one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};

/// Requests in flight to one registry at most, by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// Requests in flight across all registries at most, by default.
pub const DEFAULT_GLOBAL_MAX: usize = 64;

/// A bound on requests in flight.
#[derive(Debug)]
pub struct Limiter {
    adaptive: bool,
    state: Mutex<State>,
    room: Condvar,
}

#[derive(Debug)]
struct State {
    max: usize,
    limit: usize,
    /// Requests not yet past their response headers.
    starting: usize,
    /// Streaming bodies.
    streaming: usize,
    /// Answers since the limit last changed.
    successes: usize,
    /// Bumped by every decrease, so the 429s of requests sent under an
    /// older limit do not halve it again.
    epoch: u64,
}

impl Limiter {
    /// An adaptive limiter: starts at `max`, halves on 429, grows back.
    pub fn adaptive(max: usize) -> Arc<Limiter> {
        Arc::new(Limiter::with(max, true))
    }

    /// A limiter that stays at `max`.
    pub fn fixed(max: usize) -> Arc<Limiter> {
        Arc::new(Limiter::with(max, false))
    }

    fn with(max: usize, adaptive: bool) -> Limiter {
        let max = max.max(1);
        Limiter {
            adaptive,
            state: Mutex::new(State {
                max,
                limit: max,
                starting: 0,
                streaming: 0,
                successes: 0,
                epoch: 0,
            }),
            room: Condvar::new(),
        }
    }

    /// The adaptive limiter every client of `registry` in this process
    /// shares while one holds it; made with `max` by the first to ask.
    pub fn for_registry(registry: &str, max: usize) -> Arc<Limiter> {
        static SHARED: OnceLock<Mutex<HashMap<String, Weak<Limiter>>>> = OnceLock::new();
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(l) = shared.get(registry).and_then(Weak::upgrade) {
            return l;
        }
        shared.retain(|_, l| l.strong_count() > 0);
        let l = Limiter::adaptive(max);
        shared.insert(registry.to_string(), Arc::downgrade(&l));
        l
    }

    /// The process-wide bound across registries
    /// ([`DEFAULT_GLOBAL_MAX`] until [`Limiter::set_max`] changes it).
    pub fn global() -> Arc<Limiter> {
        static GLOBAL: OnceLock<Arc<Limiter>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Limiter::fixed(DEFAULT_GLOBAL_MAX))
            .clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for room for one more request and takes it.
    pub fn acquire(self: &Arc<Self>) -> Permit {
        let mut s = self.state();
        while s.starting > 0 && s.starting + s.streaming >= s.limit {
            s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.starting += 1;
        Permit {
            limiter: self.clone(),
            streaming: false,
            epoch: s.epoch,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state().limit
    }

    /// The largest the limit may grow to.
    pub fn max(&self) -> usize {
        self.state().max
    }

    /// Changes the maximum (and, for a fixed limiter, the limit).
    pub fn set_max(&self, max: usize) {
        let mut s = self.state();
        s.max = max.max(1);
        if !self.adaptive || s.limit > s.max {
            s.limit = s.max;
        }
        drop(s);
        self.room.notify_all();
    }

    /// Requests in flight now, streaming bodies included.
    pub fn in_flight(&self) -> usize {
        let s = self.state();
        s.starting + s.streaming
    }

    fn release(&self, streaming: bool) {
        let mut s = self.state();
        if streaming {
            s.streaming -= 1;
        } else {
            s.starting -= 1;
        }
        drop(s);
        self.room.notify_all();
    }
}

/// Room for one request, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    streaming: bool,
    epoch: u64,
}

impl Permit {
    /// The request's headers are done and its body streams at the pace of
    /// whoever reads or feeds it: it stays in flight, but no longer keeps
    /// other requests waiting.
    pub fn stream(&mut self) {
        if self.streaming {
            return;
        }
        self.streaming = true;
        let mut s = self.limiter.state();
        s.starting -= 1;
        s.streaming += 1;
        drop(s);
        self.limiter.room.notify_all();
    }

    /// The registry answered 429: halves the limit (not below 1), unless a
    /// decrease already followed this request's start. True when it halved.
    pub fn throttled(&self) -> bool {
        if !self.limiter.adaptive {
            return false;
        }
        let mut s = self.limiter.state();
        s.successes = 0;
        if s.epoch != self.epoch {
            return false;
        }
        s.limit = (s.limit / 2).max(1);
        s.epoch += 1;
        true
    }

    /// The registry answered without throttling: after a window of such
    /// answers as large as the limit, the limit grows by one.
    pub fn succeeded(&self) {
        if !self.limiter.adaptive {
            return;
        }
        let mut s = self.limiter.state();
        if s.limit >= s.max {
            return;
        }
        s.successes += 1;
        if s.successes >= s.limit {
            s.limit += 1;
            s.successes = 0;
            drop(s);
            self.limiter.room.notify_all();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(self.streaming);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Takes a permit on another thread; the receiver gets it when granted.
    fn acquire_later(l: &Arc<Limiter>) -> mpsc::Receiver<Permit> {
        let (tx, rx) = mpsc::channel();
        let l = l.clone();
        std::thread::spawn(move || {
            let _ = tx.send(l.acquire());
        });
        rx
    }

    const SHORT: Duration = Duration::from_millis(100);

    #[test]
    fn requests_beyond_the_limit_wait_and_drop_releases() {
        let l = Limiter::fixed(2);
        let a = l.acquire();
        let _b = l.acquire();
        assert_eq!(l.in_flight(), 2);
        let third = acquire_later(&l);
        assert!(third.recv_timeout(SHORT).is_err(), "the third waits");
        drop(a);
        let c = third.recv_timeout(Duration::from_secs(5)).expect("granted");
        assert_eq!(l.in_flight(), 2);
        drop(c);
        assert_eq!(l.in_flight(), 1);
    }

    #[test]
    fn the_limit_halves_on_429_not_below_one_and_grows_after_a_window() {
        let l = Limiter::adaptive(16);
        for expected in [8, 4, 2, 1, 1] {
            let p = l.acquire();
            p.throttled();
            assert_eq!(l.limit(), expected);
        }
        // At 1, each success is a full window: 1 → 2; then two more → 3.
        l.acquire().succeeded();
        assert_eq!(l.limit(), 2);
        l.acquire().succeeded();
        assert_eq!(l.limit(), 2);
        l.acquire().succeeded();
        assert_eq!(l.limit(), 3);
        // Never above the maximum.
        let small = Limiter::adaptive(2);
        for _ in 0..10 {
            small.acquire().succeeded();
        }
        assert_eq!(small.limit(), 2);
        // A fixed limiter ignores both.
        let fixed = Limiter::fixed(4);
        fixed.acquire().throttled();
        assert_eq!(fixed.limit(), 4);
    }

    #[test]
    fn throttled_requests_sent_under_the_old_limit_halve_it_once() {
        let l = Limiter::adaptive(16);
        let burst: Vec<Permit> = (0..6).map(|_| l.acquire()).collect();
        let halved = burst.iter().filter(|p| p.throttled()).count();
        assert_eq!((halved, l.limit()), (1, 8));
        drop(burst);
        // A request sent after the decrease may halve it again.
        assert!(l.acquire().throttled());
        assert_eq!(l.limit(), 4);
    }

    #[test]
    fn streaming_bodies_never_starve_the_request_they_wait_for() {
        // The limit has fallen to 1; a mirror's download streams its body
        // into an upload to the same registry. The upload must start.
        let l = Limiter::adaptive(2);
        l.acquire().throttled();
        assert_eq!(l.limit(), 1);
        let mut download = l.acquire();
        download.stream();
        let mut upload = acquire_later(&l)
            .recv_timeout(Duration::from_secs(5))
            .expect("the upload starts while only a body is in flight");
        upload.stream();
        // A resumed download needed halfway through the upload starts too.
        let resume = acquire_later(&l)
            .recv_timeout(Duration::from_secs(5))
            .expect("the resumed download starts");
        assert_eq!(l.in_flight(), 3);
        // But requests still before their headers keep others waiting.
        let waiting = acquire_later(&l);
        assert!(waiting.recv_timeout(SHORT).is_err());
        drop(resume);
        assert!(waiting.recv_timeout(Duration::from_secs(5)).is_ok());
        drop((download, upload));
    }

    #[test]
    fn clients_of_one_registry_share_a_limiter_while_it_lives() {
        let a = Limiter::for_registry("limit-test.example:1", 4);
        let b = Limiter::for_registry("limit-test.example:1", 9);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.max(), 4);
        let other = Limiter::for_registry("limit-test.example:2", 4);
        assert!(!Arc::ptr_eq(&a, &other));
        drop((a, b));
        let fresh = Limiter::for_registry("limit-test.example:1", 9);
        assert_eq!(fresh.max(), 9);
    }
}

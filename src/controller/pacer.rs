//! The cluster-wide pace of rollout restarts (`--max-restarts-per-minute`): a mass rotation must
//! not restart hundreds of workloads at once.
//!
//! At most `limit` restarts are granted in any minute (a sliding window). A credential whose
//! restart finds no room joins one queue shared by every reconcile and keeps its place while it
//! asks again; the room that frees up goes to those ahead of it first. A queued credential that
//! stops asking (deleted, or its Secret no longer needs the restarts) loses its place after
//! [`STALE`], so it never blocks the others. Pure bookkeeping over times given by the caller.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the limit counts restarts in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A queued credential that has not asked for this long leaves the queue.
pub const STALE: Duration = Duration::from_secs(300);

/// The longest a refused restart is told to wait: well within [`STALE`], so that a credential far
/// back in the queue keeps its place.
const MAX_RETRY: Duration = Duration::from_secs(120);

/// The shortest wait a refused restart is told to wait before asking again.
const MIN_RETRY: Duration = Duration::from_secs(1);

/// Whether a restart may happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Go,
    /// Not yet: `ahead` restarts of other credentials are queued before this one; ask again
    /// after `retry_in`.
    Wait {
        ahead: usize,
        retry_in: Duration,
    },
}

#[derive(Debug)]
struct Waiter {
    key: String,
    /// Restarts this credential still has to make.
    wants: usize,
    asked: Instant,
}

#[derive(Debug, Default)]
struct State {
    granted: VecDeque<Instant>,
    queue: VecDeque<Waiter>,
}

#[derive(Debug)]
pub struct RestartPacer {
    /// Restarts per minute; 0: no limit.
    limit: usize,
    state: Mutex<State>,
}

impl RestartPacer {
    pub fn new(per_minute: u32) -> RestartPacer {
        RestartPacer { limit: per_minute as usize, state: Mutex::new(State::default()) }
    }

    /// The limit per minute; 0: none.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Asks for one restart for credential `key`, which has `wants` restarts to make (this one
    /// included).
    pub fn take(&self, key: &str, wants: usize, now: Instant) -> Turn {
        if self.limit == 0 {
            return Turn::Go;
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while state.granted.front().is_some_and(|at| now.duration_since(*at) >= WINDOW) {
            state.granted.pop_front();
        }
        state.queue.retain(|w| w.key == key || now.duration_since(w.asked) < STALE);
        let position = match state.queue.iter().position(|w| w.key == key) {
            Some(position) => position,
            None => {
                state.queue.push_back(Waiter { key: key.to_string(), wants, asked: now });
                state.queue.len() - 1
            }
        };
        let waiter = &mut state.queue[position];
        (waiter.wants, waiter.asked) = (wants.max(1), now);
        let ahead: usize = state.queue.iter().take(position).map(|w| w.wants).sum();
        let free = self.limit.saturating_sub(state.granted.len());
        if ahead < free {
            state.granted.push_back(now);
            let waiter = &mut state.queue[position];
            waiter.wants -= 1;
            if waiter.wants == 0 {
                state.queue.remove(position);
            }
            return Turn::Go;
        }
        // Room for this one opens once those ahead have used the free room and the grants after
        // it: the k-th grant to expire from now, counting the grants made meanwhile, each a
        // window after the one it replaces. Asking before then cannot succeed.
        let expiring = ahead - free;
        let granted = state.granted.len().max(1);
        let retry_in = match state.granted.get(expiring % granted) {
            Some(at) => {
                let windows = u32::try_from(expiring / granted + 1).unwrap_or(u32::MAX);
                WINDOW.saturating_mul(windows).saturating_sub(now.duration_since(*at))
            }
            None => WINDOW,
        };
        Turn::Wait { ahead, retry_in: retry_in.clamp(MIN_RETRY, MAX_RETRY) }
    }

    /// `key` has no restarts left to make: it leaves the queue.
    pub fn leave(&self, key: &str) {
        if self.limit == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.queue.retain(|w| w.key != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn no_limit_always_goes() {
        let pacer = RestartPacer::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|i| pacer.take(&format!("c{i}"), 1, now) == Turn::Go));
    }

    #[test]
    fn at_most_the_limit_per_minute_and_first_come_first_served() {
        let pacer = RestartPacer::new(2);
        let t0 = Instant::now();
        assert_eq!(pacer.take("a", 1, t0), Turn::Go);
        assert_eq!(pacer.take("b", 1, t0 + secs(1)), Turn::Go);
        // The window is full: c, then d queue.
        assert_eq!(pacer.take("c", 1, t0 + secs(2)), Turn::Wait { ahead: 0, retry_in: secs(58) });
        assert_eq!(pacer.take("d", 1, t0 + secs(3)), Turn::Wait { ahead: 1, retry_in: secs(58) });
        assert_eq!(pacer.take("e", 1, t0 + secs(3)), Turn::Wait { ahead: 2, retry_in: secs(117) }, "a window later");
        // a's grant expires: one slot, and it is c's even when d asks first.
        assert!(matches!(pacer.take("d", 1, t0 + secs(60)), Turn::Wait { ahead: 1, .. }));
        assert_eq!(pacer.take("c", 1, t0 + secs(60)), Turn::Go);
        assert_eq!(pacer.take("d", 1, t0 + secs(61)), Turn::Go);
        assert!(matches!(pacer.take("e", 1, t0 + secs(62)), Turn::Wait { ahead: 0, .. }));
        assert!(matches!(pacer.take("f", 1, t0 + secs(62)), Turn::Wait { ahead: 1, .. }));
    }

    #[test]
    fn a_credential_with_several_targets_keeps_its_place_between_them() {
        let pacer = RestartPacer::new(1);
        let t0 = Instant::now();
        assert_eq!(pacer.take("a", 3, t0), Turn::Go);
        assert_eq!(pacer.take("b", 1, t0), Turn::Wait { ahead: 2, retry_in: secs(120) }, "asks again within MAX_RETRY");
        assert!(matches!(pacer.take("a", 2, t0 + secs(1)), Turn::Wait { ahead: 0, .. }));
        assert_eq!(pacer.take("a", 2, t0 + secs(60)), Turn::Go);
        assert!(matches!(pacer.take("b", 1, t0 + secs(120)), Turn::Wait { ahead: 1, .. }));
        assert_eq!(pacer.take("a", 1, t0 + secs(120)), Turn::Go);
        assert_eq!(pacer.take("b", 1, t0 + secs(180)), Turn::Go);
    }

    #[test]
    fn a_credential_that_stops_asking_does_not_block_the_queue() {
        let pacer = RestartPacer::new(1);
        let t0 = Instant::now();
        assert_eq!(pacer.take("a", 1, t0), Turn::Go);
        assert!(matches!(pacer.take("gone", 1, t0), Turn::Wait { ahead: 0, .. }));
        assert!(matches!(pacer.take("b", 1, t0), Turn::Wait { ahead: 1, .. }));
        // "gone" never asks again: once stale, b is first.
        assert_eq!(pacer.take("b", 1, t0 + STALE), Turn::Go);
        // And one that leaves (nothing to restart any more) frees its place at once.
        assert!(matches!(pacer.take("c", 1, t0 + STALE), Turn::Wait { ahead: 0, .. }));
        assert!(matches!(pacer.take("d", 1, t0 + STALE), Turn::Wait { ahead: 1, .. }));
        pacer.leave("c");
        assert!(matches!(pacer.take("d", 1, t0 + STALE), Turn::Wait { ahead: 0, .. }));
    }
}

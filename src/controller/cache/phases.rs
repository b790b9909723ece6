//! Where in the resync interval each credential's Okta resync falls.
//!
//! A phase drawn from the uid alone ([`crate::controller::spread`]) spreads the fleet like
//! random draws do: some minutes of the interval get twice the mean, and in a busy org that
//! minute is the one that meets the rate limit. Ranking the credentials by that same draw and
//! giving the k-th of n the phase (k + ½) / n spaces them evenly instead, while each keeps about
//! the place its uid gives it (adding a credential moves the others by at most 1/n).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct State {
    /// Each credential's draw, by uid, and the draws in order.
    draws: HashMap<String, u64>,
    ordered: BTreeSet<(u64, String)>,
}

/// The credentials of one controller process, in the order of their uid's draw.
#[derive(Default)]
pub struct Phases {
    state: Mutex<State>,
}

fn draw(uid: &str) -> u64 {
    (crate::controller::spread(uid) * u64::MAX as f64) as u64
}

impl Phases {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn insert(&self, uid: &str) {
        let mut state = self.lock();
        if state.draws.contains_key(uid) {
            return;
        }
        let d = draw(uid);
        state.draws.insert(uid.to_string(), d);
        state.ordered.insert((d, uid.to_string()));
    }

    pub fn remove(&self, uid: &str) {
        let mut state = self.lock();
        if let Some(d) = state.draws.remove(uid) {
            state.ordered.remove(&(d, uid.to_string()));
        }
    }

    /// The phase of `uid` in [0, 1): its rank among the credentials, evenly spaced; `None` for a
    /// credential not (yet) known.
    pub fn of(&self, uid: &str) -> Option<f64> {
        let state = self.lock();
        let d = *state.draws.get(uid)?;
        let rank = state.ordered.range(..(d, uid.to_string())).count();
        Some((rank as f64 + 0.5) / state.ordered.len() as f64)
    }

    pub fn len(&self) -> usize {
        self.lock().draws.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_evenly_spaced_and_follow_the_uid_draw() {
        let phases = Phases::default();
        let uids: Vec<String> = (0..1000).map(|i| format!("uid-{i}")).collect();
        for uid in &uids {
            phases.insert(uid);
        }
        let mut all: Vec<f64> = uids.iter().map(|u| phases.of(u).unwrap()).collect();
        all.sort_by(f64::total_cmp);
        for (k, phase) in all.iter().enumerate() {
            assert!((phase - (k as f64 + 0.5) / 1000.0).abs() < 1e-9, "phase {k} is {phase}");
        }
        // Every minute of an hour gets the same share: the busiest holds ceil(1000/60).
        let mut minutes = [0usize; 60];
        for phase in &all {
            minutes[(phase * 60.0) as usize] += 1;
        }
        assert!(*minutes.iter().max().unwrap() <= 17, "{minutes:?}");
        // The order is the uid draw's.
        let (a, b) = (&uids[1], &uids[2]);
        let by_draw = crate::controller::spread(a) < crate::controller::spread(b);
        assert_eq!(phases.of(a).unwrap() < phases.of(b).unwrap(), by_draw);
    }

    #[test]
    fn adding_and_removing_moves_the_others_a_little() {
        let phases = Phases::default();
        for i in 0..100 {
            phases.insert(&format!("uid-{i}"));
        }
        let before = phases.of("uid-7").unwrap();
        phases.insert("uid-new");
        phases.insert("uid-new");
        assert_eq!(phases.len(), 101);
        assert!((phases.of("uid-7").unwrap() - before).abs() <= 1.0 / 100.0);
        phases.remove("uid-new");
        phases.remove("uid-new");
        assert_eq!(phases.of("uid-7"), Some(before));
        assert_eq!(phases.of("uid-new"), None);
    }
}

//! Okta calls from okta-sim's call log (`OktaSim::calls`, the same records as `GET /__sim/calls`),
//! attributed to apps by their path and to phases by time window.

use jiff::{SignedDuration, Timestamp};
use okta_sim::CallRecord;
use std::collections::{BTreeMap, HashMap, HashSet};

/// `METHOD /path` with ids replaced by `{appId}` and `{kid}`, and the app the call is about.
pub fn kind(method: &str, path: &str) -> (String, Option<String>) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() < 4 || segments[..3] != ["api", "v1", "apps"] {
        return (format!("{method} {path}"), None);
    }
    let app = segments[3].to_string();
    let mut shape = vec!["api", "v1", "apps", "{appId}"];
    for (i, segment) in segments.iter().enumerate().skip(4) {
        let is_kid = i == 6 && segments[4] == "credentials" && segments[5] == "keys" && *segment != "generate";
        shape.push(if is_kid { "{kid}" } else { segment });
    }
    (format!("{method} /{}", shape.join("/")), Some(app))
}

/// One answered call, classified.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: String,
    pub app: Option<String>,
    pub status: u16,
    pub at: Timestamp,
}

pub fn classify(records: &[CallRecord]) -> Vec<Call> {
    records
        .iter()
        .map(|r| {
            let (kind, app) = kind(&r.method, &r.path);
            Call { kind, app, status: r.status, at: r.at }
        })
        .collect()
}

/// The calls about `apps` in `[from, to)`.
pub fn for_apps<'a>(calls: &'a [Call], apps: &HashSet<String>, from: Timestamp, to: Timestamp) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.at >= from && c.at < to && c.app.as_ref().is_some_and(|a| apps.contains(a))).collect()
}

/// The calls about no app (token requests, app listings) in `[from, to)`.
pub fn org_level(calls: &[Call], from: Timestamp, to: Timestamp) -> Vec<&Call> {
    calls.iter().filter(|c| c.at >= from && c.at < to && c.app.is_none()).collect()
}

pub fn by_kind(calls: &[&Call]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for call in calls {
        *kinds.entry(call.kind.clone()).or_default() += 1;
    }
    kinds
}

/// Successful key generations per app.
pub fn generations(calls: &[&Call]) -> HashMap<String, usize> {
    let mut per_app = HashMap::new();
    for call in calls.iter().filter(|c| c.kind.ends_with("/credentials/keys/generate") && c.status == 201) {
        *per_app.entry(call.app.clone().unwrap_or_default()).or_default() += 1;
    }
    per_app
}

/// Visits: for each app, a run of calls with no gap longer than `gap`. A resync of one credential
/// is one visit however many calls it makes.
pub fn visits(calls: &[&Call], gap: SignedDuration) -> usize {
    let mut per_app: HashMap<&str, Vec<Timestamp>> = HashMap::new();
    for call in calls {
        per_app.entry(call.app.as_deref().unwrap_or("")).or_default().push(call.at);
    }
    per_app
        .values_mut()
        .map(|times| {
            times.sort();
            1 + times.windows(2).filter(|w| w[1].duration_since(w[0]) > gap).count()
        })
        .sum()
}

/// Calls per bin of `bin` from `from` to `to` (the last partial bin dropped).
pub fn bins(calls: &[&Call], from: Timestamp, to: Timestamp, bin: SignedDuration) -> Vec<usize> {
    let count = (to.duration_since(from).as_secs_f64() / bin.as_secs_f64()).floor() as usize;
    let mut bins = vec![0; count];
    for call in calls {
        let index = (call.at.duration_since(from).as_secs_f64() / bin.as_secs_f64()).floor();
        if index >= 0.0 && (index as usize) < count {
            bins[index as usize] += 1;
        }
    }
    bins
}

/// The mean and the busiest of `bins`, per bin.
pub fn mean_and_peak(bins: &[usize]) -> (f64, usize) {
    let mean = if bins.is_empty() { 0.0 } else { bins.iter().sum::<usize>() as f64 / bins.len() as f64 };
    (mean, bins.iter().copied().max().unwrap_or(0))
}

/// Splits app calls into those a credential's resync schedule explains and the rest. Each
/// credential resyncs at its turns: its phase of the interval (from its uid, as samlcred's
/// [`samlcred::controller::cache::Phases`] assigns them), then every interval, counted from the
/// epoch. A call within `slack` after one of its app's turns is scheduled, except, with
/// `after_first`, an app's first call of the window (an adoption's first read is no resync).
pub fn by_schedule(
    calls: &[&Call],
    uids_by_app: &HashMap<String, String>,
    interval: std::time::Duration,
    slack: SignedDuration,
    after_first: bool,
) -> (usize, usize) {
    let phases = samlcred::controller::cache::Phases::default();
    for uid in uids_by_app.values() {
        phases.insert(uid);
    }
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let mut first: HashMap<&str, Timestamp> = HashMap::new();
    for call in calls {
        let at = first.entry(call.app.as_deref().unwrap_or("")).or_insert(call.at);
        *at = (*at).min(call.at);
    }
    let scheduled = |call: &&&Call| {
        if after_first && first.get(call.app.as_deref().unwrap_or("")) == Some(&call.at) {
            return false;
        }
        let Some(phase) = call.app.as_ref().and_then(|app| uids_by_app.get(app)).and_then(|uid| phases.of(uid)) else {
            return false;
        };
        let offset = (interval_ms as f64 * phase) as i64;
        let at = call.at.as_millisecond();
        let turn = (at - offset).div_euclid(interval_ms) * interval_ms + offset;
        at - turn <= slack.as_millis() as i64
    };
    let on = calls.iter().filter(scheduled).count();
    (on, calls.len() - on)
}

//! Activation windows: the times at which a due key may become the key Okta signs with.
//!
//! Each window is a 5-field cron schedule (croner), read in an IANA time zone (jiff's, so daylight
//! saving follows the tz database), that opens the window for an elapsed duration. An opening
//! time that a clock change skips (02:30 on a spring-forward night) opens at the first instant
//! after the gap; one that happens twice (a fall-back night) opens once, at the first.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use crate::api::ActivationWindow;
use crate::api::duration;

/// One window, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    schedule: Cron,
    duration: SignedDuration,
    zone: TimeZone,
}

/// The spec's activation windows. None at all means activation is never held for a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows(Vec<Window>);

/// The field of a window a problem is in, spelled as in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowField {
    Schedule,
    Duration,
    TimeZone,
}

impl std::fmt::Display for WindowField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WindowField::Schedule => "schedule",
            WindowField::Duration => "duration",
            WindowField::TimeZone => "timeZone",
        })
    }
}

/// What is wrong with one window: the field, and what about its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct WindowProblem {
    pub field: WindowField,
    pub problem: String,
}

impl WindowProblem {
    fn new(field: WindowField, problem: String) -> WindowProblem {
        WindowProblem { field, problem }
    }
}

/// Why a window of the spec cannot be used. The message names the field by its path, as the API
/// server's own validation does (`spec.activation.windows[0].schedule "0 0 30 2 *" never fires`);
/// the admission webhook and the controller's InvalidSpec condition say the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.activation.windows[{index}].{problem}")]
pub struct WindowError {
    pub index: usize,
    pub problem: WindowProblem,
}

impl Window {
    pub fn parse(window: &ActivationWindow) -> Result<Window, WindowProblem> {
        use WindowField::{Duration, Schedule, TimeZone as Zone};
        let text = window.schedule.trim();
        // croner also takes 6 and 7 fields and @nicknames; the spec promises 5 fields, as the
        // API server checks.
        if text.contains('@') || text.split_whitespace().count() != 5 {
            let problem = format!("{:?} is not a 5-field cron expression", window.schedule);
            return Err(WindowProblem::new(Schedule, problem));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let schedule = parser.parse(text).map_err(|e| {
            WindowProblem::new(Schedule, format!("{:?} is not a cron expression: {e}", window.schedule))
        })?;
        let length = duration::parse(&window.duration).map_err(|e| {
            let problem = match e {
                duration::DurationError::Malformed(text) => format!("{text:?} is not of the form 2h, 90m or 1h30m"),
                duration::DurationError::Overflow(text) => format!("{text:?} is too long"),
            };
            WindowProblem::new(Duration, problem)
        })?;
        let duration = SignedDuration::try_from(length).unwrap_or(SignedDuration::MAX);
        if duration.is_zero() {
            return Err(WindowProblem::new(Duration, format!("{:?} must be positive", window.duration)));
        }
        let zone = TimeZone::get(&window.time_zone)
            .map_err(|_| WindowProblem::new(Zone, format!("{:?} is not in the tz database", window.time_zone)))?;
        let parsed = Window { schedule, duration, zone };
        // A schedule without years repeats every 400 years; croner searches far beyond that, so
        // finding no opening after 2000 means it never opens (February 30, April 31).
        let epoch = Timestamp::from_second(946_684_800).unwrap_or(Timestamp::UNIX_EPOCH);
        if parsed.next_opening(epoch).is_none() {
            return Err(WindowProblem::new(Schedule, format!("{:?} never fires", window.schedule)));
        }
        Ok(parsed)
    }

    /// The latest opening at or before `at`.
    fn last_opening(&self, at: Timestamp) -> Option<Timestamp> {
        let zoned = at.to_zoned(self.zone.clone());
        self.schedule.find_previous_occurrence(&zoned, true).ok().map(|z| z.timestamp())
    }

    /// The first opening after `at`.
    fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        let zoned: Zoned = at.to_zoned(self.zone.clone());
        self.schedule.find_next_occurrence(&zoned, false).ok().map(|z| z.timestamp())
    }

    /// Whether the window is open at `at`. The latest opening closes last, since every opening
    /// lasts the same: it alone decides.
    fn is_open(&self, at: Timestamp) -> bool {
        self.last_opening(at).is_some_and(|opened| at < opened.checked_add(self.duration).unwrap_or(Timestamp::MAX))
    }
}

impl Windows {
    /// The windows, or the first one that cannot be used.
    pub fn parse(windows: &[ActivationWindow]) -> Result<Windows, WindowError> {
        windows
            .iter()
            .enumerate()
            .map(|(index, window)| Window::parse(window).map_err(|problem| WindowError { index, problem }))
            .collect::<Result<Vec<_>, _>>()
            .map(Windows)
    }

    /// Every window that cannot be used, each with what is wrong with it (for admission, which
    /// reports them all at once).
    pub fn problems(windows: &[ActivationWindow]) -> Vec<WindowError> {
        let each = windows.iter().enumerate();
        each.filter_map(|(index, window)| Window::parse(window).err().map(|problem| WindowError { index, problem }))
            .collect()
    }

    /// No windows: activation is never held for one.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether activation may happen at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        self.is_empty() || self.0.iter().any(|window| window.is_open(at))
    }

    /// When activation may happen next, counting from `from`: `from` itself when a window is
    /// open, otherwise the first opening, if one comes before `until`.
    pub fn next_open(&self, from: Timestamp, until: Timestamp) -> Option<Timestamp> {
        if self.is_open(from) {
            return (from < until).then_some(from);
        }
        self.0.iter().filter_map(|window| window.next_opening(from)).filter(|at| *at < until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: &str, zone: &str) -> ActivationWindow {
        ActivationWindow { schedule: schedule.into(), duration: duration.into(), time_zone: zone.into() }
    }

    fn windows(list: &[ActivationWindow]) -> Windows {
        Windows::parse(list).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_is_open_from_its_opening_for_its_duration() {
        // 2030-01-01 is a Tuesday.
        let tuesdays = windows(&[window("0 2 * * TUE", "2h", "UTC")]);
        let cases = [
            ("2030-01-01T01:59:59Z", false),
            ("2030-01-01T02:00:00Z", true),
            ("2030-01-01T03:59:59Z", true),
            ("2030-01-01T04:00:00Z", false),
            ("2030-01-02T02:30:00Z", false),
            ("2030-01-08T03:00:00Z", true),
        ];
        for (time, open) in cases {
            assert_eq!(tuesdays.is_open(at(time)), open, "{time}");
        }
        let until = at("2031-01-01T00:00:00Z");
        assert_eq!(tuesdays.next_open(at("2030-01-01T05:00:00Z"), until), Some(at("2030-01-08T02:00:00Z")));
        assert_eq!(tuesdays.next_open(at("2030-01-01T03:00:00Z"), until), Some(at("2030-01-01T03:00:00Z")));
        // The next opening comes too late.
        assert_eq!(tuesdays.next_open(at("2030-01-01T05:00:00Z"), at("2030-01-08T01:00:00Z")), None);
    }

    #[test]
    fn no_windows_means_always_open() {
        let none = Windows::default();
        assert!(none.is_open(at("2030-01-01T00:00:00Z")));
        let now = at("2030-01-01T00:00:00Z");
        assert_eq!(none.next_open(now, now + SignedDuration::from_hours(1)), Some(now));
    }

    #[test]
    fn the_earliest_of_several_windows_wins() {
        let list = windows(&[window("0 22 * * *", "1h", "UTC"), window("0 6 * * *", "1h", "UTC")]);
        let from = at("2030-01-01T12:00:00Z");
        assert_eq!(list.next_open(from, at("2031-01-01T00:00:00Z")), Some(at("2030-01-01T22:00:00Z")));
        assert!(list.is_open(at("2030-01-02T06:30:00Z")));
    }

    #[test]
    fn schedules_are_read_in_their_time_zone() {
        // 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
        let berlin = windows(&[window("0 2 * * *", "30m", "Europe/Berlin")]);
        let until = at("2031-01-01T00:00:00Z");
        assert_eq!(berlin.next_open(at("2030-01-10T12:00:00Z"), until), Some(at("2030-01-11T01:00:00Z")));
        assert_eq!(berlin.next_open(at("2030-07-10T12:00:00Z"), until), Some(at("2030-07-11T00:00:00Z")));
    }

    #[test]
    fn an_opening_in_the_spring_forward_gap_opens_after_the_gap() {
        // Europe/Berlin skips 02:00-03:00 on 2030-03-31: 02:30 does not exist that night.
        let berlin = windows(&[window("30 2 * * *", "1h", "Europe/Berlin")]);
        let until = at("2031-01-01T00:00:00Z");
        // 03:00 CEST, the first instant after the gap, is 01:00 UTC.
        let opened = berlin.next_open(at("2030-03-30T12:00:00Z"), until);
        assert_eq!(opened, Some(at("2030-03-31T01:00:00Z")));
        assert!(berlin.is_open(at("2030-03-31T01:59:00Z")));
        assert!(!berlin.is_open(at("2030-03-31T02:00:00Z")), "the window lasts one elapsed hour");
        // The night after, 02:30 CEST again (00:30 UTC).
        assert_eq!(berlin.next_open(at("2030-03-31T12:00:00Z"), until), Some(at("2030-04-01T00:30:00Z")));
    }

    #[test]
    fn an_opening_in_the_fall_back_overlap_opens_once() {
        // Europe/Berlin repeats 02:00-03:00 on 2030-10-27: 02:30 happens at 00:30 and 01:30 UTC.
        let berlin = windows(&[window("30 2 * * *", "30m", "Europe/Berlin")]);
        let until = at("2031-01-01T00:00:00Z");
        assert_eq!(berlin.next_open(at("2030-10-26T12:00:00Z"), until), Some(at("2030-10-27T00:30:00Z")));
        assert!(!berlin.is_open(at("2030-10-27T01:45:00Z")));
        assert_eq!(berlin.next_open(at("2030-10-27T01:00:00Z"), until), Some(at("2030-10-28T01:30:00Z")));
    }

    #[test]
    fn schedules_that_never_fire_or_are_malformed_are_refused() {
        let cases = [
            (window("0 0 30 2 *", "1h", "UTC"), "never fires"),
            (window("0 0 31 4 *", "1h", "UTC"), "never fires"),
            (window("0 0 2 * * TUE", "1h", "UTC"), "5-field"),
            (window("@daily", "1h", "UTC"), "5-field"),
            (window("61 * * * *", "1h", "UTC"), "schedule"),
            (window("0 2 * * *", "0s", "UTC"), "must be positive"),
            (window("0 2 * * *", "2 hours", "UTC"), "2 hours"),
            (window("0 2 * * *", "1h", "Mars/Olympus_Mons"), "Mars/Olympus_Mons"),
        ];
        for (case, problem) in cases {
            let err = Windows::parse(&[window("0 1 * * *", "1h", "UTC"), case.clone()]).unwrap_err();
            assert_eq!(err.index, 1, "{case:?}");
            assert!(err.to_string().contains(problem), "{case:?}: {err}");
            assert!(err.to_string().starts_with("spec.activation.windows[1]."), "{err}");
        }
        let never = Windows::parse(&[window("0 0 30 2 *", "1h", "UTC")]).unwrap_err();
        assert_eq!(never.to_string(), r#"spec.activation.windows[0].schedule "0 0 30 2 *" never fires"#);
        let zone = Windows::parse(&[window("0 0 * * *", "1h", "Mars/Base")]).unwrap_err();
        assert_eq!(zone.to_string(), r#"spec.activation.windows[0].timeZone "Mars/Base" is not in the tz database"#);
        // February 29 fires, if rarely.
        assert!(Windows::parse(&[window("0 0 29 2 *", "1h", "UTC")]).is_ok());
    }
}

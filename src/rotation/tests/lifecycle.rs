//! The planner with activation windows and the renewal spread, and the expiry warnings.

use super::*;
use crate::api::{ActivationWindow, ExpiryWarning, events};
use crate::rotation::expiry::{expiry, held, next_crossing};

const DAY: SignedDuration = SignedDuration::from_hours(24);

fn window(schedule: &str, duration: &str) -> ActivationWindow {
    ActivationWindow { schedule: schedule.into(), duration: duration.into(), time_zone: "UTC".into() }
}

/// Published to B, activateAfter passed, with these windows. The reference now (2030-01-01) is a
/// Tuesday, midnight UTC.
fn due_with(windows: Vec<ActivationWindow>) -> World {
    World::rotating(RotationPhase::Published, Some(now() - HOUR)).with(|w| w.spec.activation.windows = windows)
}

fn expiring_in(hours: i64) -> impl FnOnce(&mut World) {
    move |w: &mut World| {
        w.status.active_key.as_mut().unwrap().not_after = Time(now() + SignedDuration::from_hours(hours));
    }
}

#[test]
fn activation_happens_only_inside_a_window() {
    let tuesday_2am = || vec![window("0 2 * * TUE", "2h")];
    let wednesday_2am = || vec![window("0 2 * * WED", "2h")];
    let cases: Vec<(&str, World, Plan)> = vec![
        ("no windows: activate when due", due_with(vec![]), Plan::Activate { kid: "B".into() }),
        ("inside a window: activate", due_with(vec![window("0 23 * * MON", "2h")]), Plan::Activate { kid: "B".into() }),
        (
            "outside: wait for the next opening",
            due_with(tuesday_2am()),
            Plan::AwaitWindow { kid: "B".into(), opens_at: now() + 2 * HOUR },
        ),
        (
            "the earliest of several windows",
            due_with(vec![window("0 2 * * WED", "1h"), window("30 5 * * *", "1h")]),
            Plan::AwaitWindow { kid: "B".into(), opens_at: now() + 5 * HOUR + SignedDuration::from_mins(30) },
        ),
        (
            "Manual, approved: still waits for a window",
            due_with(tuesday_2am()).with(|w| {
                w.spec.activation.policy = ActivationPolicy::Manual;
                w.activate = Some("B".into());
            }),
            Plan::AwaitWindow { kid: "B".into(), opens_at: now() + 2 * HOUR },
        ),
        (
            "Manual, not approved: approval first",
            due_with(tuesday_2am()).with(|w| w.spec.activation.policy = ActivationPolicy::Manual),
            Plan::AwaitApproval { kid: "B".into() },
        ),
        (
            "the delay comes first",
            World::rotating(RotationPhase::Published, Some(now() + HOUR))
                .with(|w| w.spec.activation.windows = tuesday_2am()),
            Plan::WaitUntil(now() + HOUR),
        ),
        (
            "the rollout comes first",
            due_with(tuesday_2am()).with(|w| w.rollout = Rollout::InProgress("Deployment web: 1 of 2".into())),
            Plan::AwaitRollout {
                kid: "B".into(),
                stuck: false,
                message: "Deployment web: 1 of 2".into(),
                until: key_a().not_after - DAY,
            },
        ),
        (
            "Activating was decided (a crash after it was recorded): no second look at the windows",
            World::rotating(RotationPhase::Activating, Some(now() - HOUR))
                .with(|w| w.spec.activation.windows = wednesday_2am()),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "an app without a usable key gets its first key whatever the windows",
            World::rotating(RotationPhase::Published, Some(now() + HOUR)).with(|w| {
                w.status.rotation.as_mut().unwrap().trigger = RotationTrigger::NoActiveKey;
                w.spec.activation.windows = wednesday_2am();
            }),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "a window opens just before expiry would be near: wait for it",
            due_with(wednesday_2am()).with(expiring_in(51)),
            Plan::AwaitWindow { kid: "B".into(), opens_at: now() + 26 * HOUR },
        ),
        (
            "suspended: no Okta write, window or not",
            due_with(vec![window("0 23 * * MON", "2h")]).with(|w| w.spec.suspend = true),
            report_suspended(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, world, expected) in &cases {
        let got = world.plan();
        if got != *expected {
            failures.push(format!("{name}:\n  expected {expected:?}\n  got      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // Waiting for a window is no event; the wait ends at the opening, or earlier for a retirement.
    assert_eq!(due_with(tuesday_2am()).plan().event(), None);
}

#[test]
fn expiry_beats_the_windows() {
    // 30h left: the margin is 24h, so activation must happen within 6h; Wednesday 02:00 is 26h away.
    let plan = due_with(vec![window("0 2 * * WED", "2h")]).with(expiring_in(30)).plan();
    let Plan::ActivateOutsideWindow { kid, message } = &plan else { panic!("{plan:?}") };
    assert_eq!(kid, "B");
    assert!(message.contains("outside the activation windows") && message.contains("expires at"), "{message}");
    assert_eq!(plan.event(), Some((EventType::Warning, events::ACTIVATED_OUTSIDE_WINDOW)));
    // Already past the margin, and no window open: at once.
    let plan = due_with(vec![window("0 2 * * WED", "2h")]).with(expiring_in(3)).plan();
    assert!(matches!(plan, Plan::ActivateOutsideWindow { .. }), "{plan:?}");
    // Suspended still wins over expiry: no write.
    let plan = due_with(vec![window("0 2 * * WED", "2h")]).with(expiring_in(3)).with(|w| w.spec.suspend = true).plan();
    assert_eq!(plan, report_suspended());
}

#[test]
fn a_window_that_never_opens_is_an_invalid_spec() {
    let plan = due_with(vec![window("0 2 * * *", "1h"), window("0 0 30 2 *", "1h")]).plan();
    let Plan::Report { reason, message } = &plan else { panic!("{plan:?}") };
    assert_eq!(*reason, conditions::REASON_INVALID_SPEC);
    assert!(message.contains("activation.windows[1]") && message.contains("never fires"), "{message}");
    let plan =
        due_with(vec![ActivationWindow { time_zone: "Europe/Atlantis".into(), ..window("0 2 * * *", "1h") }]).plan();
    assert!(matches!(&plan, Plan::Report { message, .. } if message.contains("Europe/Atlantis")), "{plan:?}");
}

/// The steady world planned with the policy spread by `fraction`.
fn plan_spread(world: &World, fraction: f64) -> Plan {
    let policy = Policy::of(&world.spec).map(|p| p.spread(fraction));
    plan(&PlanInput {
        spec: &world.spec,
        policy: &policy,
        status: &world.status,
        app: &world.app,
        secret: world.secret,
        rotate_token: None,
        activate_kid: None,
        older_claimant: None,
        rollout: &world.rollout,
        now: world.now,
    })
}

#[test]
fn the_renewal_starts_up_to_a_tenth_of_renew_before_earlier() {
    let not_after = key_a().not_after;
    let renew_before = SignedDuration::from_hours(720);
    for (fraction, earlier) in [(0.0, 0), (0.5, 36), (1.0, 72), (2.0, 72), (-1.0, 0)] {
        let policy = policy().spread(fraction);
        assert_eq!(policy.renewal_spread, SignedDuration::from_hours(earlier), "{fraction}");
        assert_eq!(renewal_time(not_after, &policy), not_after - renew_before - SignedDuration::from_hours(earlier));
    }
    // Never later than renewBefore: at fraction 0.5, 36h before the unspread renewal time, it is due.
    let world = World::steady().with(|w| w.now = renewal_of_a() - 35 * HOUR);
    assert_eq!(plan_spread(&world, 0.5), Plan::StartRotation { trigger: RotationTrigger::Expiry });
    assert_eq!(plan_spread(&world, 0.0), Plan::WaitUntil(renewal_of_a()));
    assert_eq!(plan_spread(&world, 0.25), Plan::WaitUntil(renewal_of_a() - 18 * HOUR));
    // Status carries the spread renewal time.
    let status = record::observed(&world.status, &policy().spread(0.5), None);
    assert_eq!(status.renewal_time, Some(Time(renewal_of_a() - 36 * HOUR)));
}

#[test]
fn a_thousand_credentials_imported_together_do_not_renew_together() {
    let not_after = key_a().not_after;
    let unspread = not_after - SignedDuration::from_hours(720);
    let mut renewals: Vec<Timestamp> = (0..1000)
        .map(|i| {
            let uid = format!("6b1f0c3e-0000-4000-8000-{i:012}");
            renewal_time(not_after, &policy().spread(crate::controller::spread(&uid)))
        })
        .collect();
    renewals.sort();
    // All within the tenth of renewBefore before the unspread time, none after it.
    assert!(renewals[0] >= unspread - SignedDuration::from_hours(72) && renewals[999] <= unspread);
    // Spread over the whole range: no minute holds more than a handful (72h is 4320 minutes).
    let mut per_minute = std::collections::BTreeMap::<i64, usize>::new();
    for at in &renewals {
        *per_minute.entry(at.as_second() / 60).or_default() += 1;
    }
    let busiest = per_minute.values().max().copied().unwrap_or_default();
    assert!(busiest <= 4, "{busiest} renewals in one minute");
    let span = renewals[999].duration_since(renewals[0]);
    assert!(span >= SignedDuration::from_hours(70), "spread over {span:?}");
    // The same uid always gets the same time.
    let uid = "6b1f0c3e-0000-4000-8000-000000000007";
    let again = renewal_time(not_after, &policy().spread(crate::controller::spread(uid)));
    assert_eq!(again, renewal_time(not_after, &policy().spread(crate::controller::spread(uid))));
}

// ---- Expiry warnings ----

const THRESHOLDS: [i32; 3] = [60, 30, 7];

fn status_expiring_in(days: i64) -> SamlAppCredentialStatus {
    World::steady().with(expiring_in(days * 24)).status
}

#[test]
fn expiry_warns_once_per_threshold_while_nothing_replaces_the_certificate() {
    let held = Some("Suspended: spec.suspend is true");
    let warned = |days| Some(ExpiryWarning { kid: "A".into(), days });
    struct Case {
        name: &'static str,
        status: SamlAppCredentialStatus,
        held: Option<&'static str>,
        expiring: bool,
        reason: &'static str,
        warn: bool,
        record: Option<ExpiryWarning>,
    }
    let with_warning = |days_left, recorded: Option<ExpiryWarning>| {
        let mut status = status_expiring_in(days_left);
        status.expiry_warning = recorded;
        status
    };
    let cases = [
        Case {
            name: "far from expiry",
            status: status_expiring_in(90),
            held,
            expiring: false,
            reason: conditions::REASON_NOT_EXPIRING,
            warn: false,
            record: None,
        },
        Case {
            name: "within 60 days, nothing holds the rotation: samlcred replaces it",
            status: status_expiring_in(45),
            held: None,
            expiring: false,
            reason: conditions::REASON_ROTATION_SCHEDULED,
            warn: false,
            record: None,
        },
        Case {
            name: "within 60 days, held: warn at 60",
            status: status_expiring_in(45),
            held,
            expiring: true,
            reason: conditions::REASON_ROTATION_HELD,
            warn: true,
            record: warned(60),
        },
        Case {
            name: "60 already warned: no second warning",
            status: with_warning(45, warned(60)),
            held,
            expiring: true,
            reason: conditions::REASON_ROTATION_HELD,
            warn: false,
            record: warned(60),
        },
        Case {
            name: "crossing 30 after 60: warn again",
            status: with_warning(29, warned(60)),
            held,
            expiring: true,
            reason: conditions::REASON_ROTATION_HELD,
            warn: true,
            record: warned(30),
        },
        Case {
            name: "first seen at 5 days: one warning, for 7",
            status: status_expiring_in(5),
            held,
            expiring: true,
            reason: conditions::REASON_ROTATION_HELD,
            warn: true,
            record: warned(7),
        },
        Case {
            name: "a warning about a replaced key does not count",
            status: with_warning(29, Some(ExpiryWarning { kid: "OLD".into(), days: 7 })),
            held,
            expiring: true,
            reason: conditions::REASON_ROTATION_HELD,
            warn: true,
            record: warned(30),
        },
        Case {
            name: "no longer held: the record stays so a flap does not warn twice",
            status: with_warning(29, warned(30)),
            held: None,
            expiring: false,
            reason: conditions::REASON_ROTATION_SCHEDULED,
            warn: false,
            record: warned(30),
        },
        Case {
            name: "a new key far from expiry drops the old key's record",
            status: with_warning(3000, Some(ExpiryWarning { kid: "OLD".into(), days: 7 })),
            held,
            expiring: false,
            reason: conditions::REASON_NOT_EXPIRING,
            warn: false,
            record: None,
        },
        Case {
            name: "expired and held",
            status: status_expiring_in(-2),
            held,
            expiring: true,
            reason: conditions::REASON_ROTATION_HELD,
            warn: true,
            record: warned(7),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let got = expiry(&case.status, &THRESHOLDS, case.held, now());
        let want = (case.expiring, case.reason, case.warn, &case.record);
        if (got.expiring, got.reason, got.warn, &got.record) != want {
            failures.push(format!("{}: expected {want:?}, got {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn expiry_messages_name_the_days_left_and_the_hold() {
    let got = expiry(&status_expiring_in(12), &THRESHOLDS, Some("Suspended: spec.suspend is true"), now());
    assert!(got.message.contains("key A") && got.message.contains("in 12 day(s)"), "{}", got.message);
    assert!(got.message.contains("within 30 days") && got.message.contains("spec.suspend is true"), "{}", got.message);
    let expired = expiry(&status_expiring_in(-1), &THRESHOLDS, Some("x"), now());
    assert!(expired.message.contains("expired at"), "{}", expired.message);
    // A scheduled rotation's message has no day count: it would rewrite status every day.
    let day1 = expiry(&status_expiring_in(20), &THRESHOLDS, None, now());
    let day2 = expiry(&status_expiring_in(20), &THRESHOLDS, None, now() + DAY);
    assert_eq!(day1.message, day2.message);
    // Custom thresholds, and none at all.
    assert!(expiry(&status_expiring_in(80), &[90], Some("x"), now()).expiring);
    let off = expiry(&status_expiring_in(1), &[], Some("x"), now());
    assert!(!off.expiring && off.message.contains("off"), "{off:?}");
    // No active key: nothing to warn about.
    let none = expiry(&Default::default(), &THRESHOLDS, Some("x"), now());
    assert!(!none.expiring && !none.warn);
}

#[test]
fn what_holds_a_rotation() {
    let normal = policy();
    let suspended = Policy { suspend: true, ..policy() };
    let cases: Vec<(&str, Plan, Option<&Policy>, Option<&str>)> = vec![
        ("a scheduled wait", Plan::WaitUntil(now()), Some(&normal), None),
        ("a rotation going on", Plan::Generate, Some(&normal), None),
        ("waiting for a window", Plan::AwaitWindow { kid: "B".into(), opens_at: now() }, Some(&normal), None),
        (
            "a healthy rollout",
            Plan::AwaitRollout { kid: "B".into(), stuck: false, message: "m".into(), until: now() },
            Some(&normal),
            None,
        ),
        ("suspended, renewal ahead", Plan::WaitUntil(now()), Some(&suspended), Some("spec.suspend")),
        ("reported", report_suspended(), Some(&suspended), Some("Suspended: ")),
        ("a conflict", report(conditions::REASON_CONFLICT, "other".into()), None, Some("Conflict: other")),
        ("approval", Plan::AwaitApproval { kid: "B".into() }, Some(&normal), Some("samlcred.io/activate=B")),
        (
            "a stuck rollout",
            Plan::AwaitRollout { kid: "B".into(), stuck: true, message: "gone".into(), until: now() },
            Some(&normal),
            Some("stuck rollout: gone"),
        ),
    ];
    for (name, plan, policy, want) in cases {
        let got = held(&plan, policy);
        match want {
            None => assert_eq!(got, None, "{name}"),
            Some(part) => assert!(got.as_deref().is_some_and(|g| g.contains(part)), "{name}: {got:?}"),
        }
    }
}

#[test]
fn the_reconciler_comes_back_at_the_next_threshold() {
    let status = status_expiring_in(45);
    let not_after = status.active_key.as_ref().unwrap().not_after.0;
    assert_eq!(next_crossing(&status, &THRESHOLDS, now()), Some(not_after - 30 * DAY));
    assert_eq!(next_crossing(&status_expiring_in(3), &THRESHOLDS, now()), None, "every threshold crossed");
    assert_eq!(next_crossing(&status, &[], now()), None);
    assert_eq!(next_crossing(&Default::default(), &THRESHOLDS, now()), None);
}

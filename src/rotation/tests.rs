//! The planner through every state and crash point: a table of single decisions, then whole
//! rotations driven against a tiny model of Okta and the Secret, with a crash injected at each step.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{ActiveKey, PendingKey, PreviousKey, Rotation};

const HOUR: SignedDuration = SignedDuration::from_hours(1);
const TEN_YEARS: SignedDuration = SignedDuration::from_hours(87600);

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The reference "now" of the table.
fn now() -> Timestamp {
    at("2030-01-01T00:00:00Z")
}

fn key(kid: &str, created: Timestamp) -> ObservedKey {
    ObservedKey {
        kid: kid.into(),
        created,
        not_before: created,
        not_after: created + TEN_YEARS,
        x5t_s256: format!("t-{kid}"),
    }
}

/// Created long before the reference now: renewal far ahead.
fn key_a() -> ObservedKey {
    key("A", at("2026-06-01T00:00:00Z"))
}

fn spec() -> SamlAppCredentialSpec {
    serde_json::from_value(serde_json::json!({
        "orgRef": {"name": "acme"}, "appId": "0oa1", "secretName": "idp",
    }))
    .unwrap()
}

fn policy() -> Policy {
    Policy::from_spec(&spec()).unwrap()
}

fn active_of(key: &ObservedKey) -> ActiveKey {
    ActiveKey {
        kid: key.kid.clone(),
        not_before: Time(key.not_before),
        not_after: Time(key.not_after),
        x5t_s256: key.x5t_s256.clone(),
    }
}

fn pending_of(key: &ObservedKey, activate_after: Option<Timestamp>) -> PendingKey {
    PendingKey {
        kid: key.kid.clone(),
        not_after: Time(key.not_after),
        x5t_s256: key.x5t_s256.clone(),
        activate_after: activate_after.map(Time),
        cloned_to: vec![],
    }
}

fn rotation(phase: RotationPhase, trigger: RotationTrigger, started_at: Timestamp) -> Option<Rotation> {
    Some(Rotation { phase, trigger, started_at: Time(started_at) })
}

/// Everything the planner sees, owned, so each case can change one thing.
#[derive(Debug, Clone)]
struct World {
    spec: SamlAppCredentialSpec,
    status: SamlAppCredentialStatus,
    app: ObservedApp,
    secret: ObservedSecret,
    rotate: Option<String>,
    activate: Option<String>,
    claimant: Option<String>,
    rollout: Rollout,
    now: Timestamp,
}

impl World {
    /// Key A active in Okta and status, Secret current, nothing due.
    fn steady() -> World {
        World {
            spec: spec(),
            status: SamlAppCredentialStatus { active_key: Some(active_of(&key_a())), ..Default::default() },
            app: ObservedApp::Found { active_kid: Some("A".into()), keys: vec![key_a()] },
            secret: ObservedSecret { ownership: Ownership::Ours, current: true },
            rotate: None,
            activate: None,
            claimant: None,
            rollout: Rollout::NotWaiting,
            now: now(),
        }
    }

    /// A rotation to key B (created an hour ago) in the given phase.
    fn rotating(phase: RotationPhase, activate_after: Option<Timestamp>) -> World {
        let mut world = World::steady();
        let b = key("B", now() - HOUR);
        world.status.rotation = rotation(phase, RotationTrigger::Expiry, now() - 2 * HOUR);
        world.status.pending_key = Some(pending_of(&b, activate_after));
        world.keys().push(b);
        world
    }

    fn keys(&mut self) -> &mut Vec<ObservedKey> {
        match &mut self.app {
            ObservedApp::Found { keys, .. } => keys,
            ObservedApp::NotFound => panic!("no app"),
        }
    }

    fn okta_signs_with(mut self, kid: Option<&str>) -> World {
        if let ObservedApp::Found { active_kid, .. } = &mut self.app {
            *active_kid = kid.map(str::to_owned);
        }
        self
    }

    fn with(mut self, change: impl FnOnce(&mut World)) -> World {
        change(&mut self);
        self
    }

    fn plan(&self) -> Plan {
        plan(&PlanInput {
            spec: &self.spec,
            policy: &Policy::of(&self.spec),
            status: &self.status,
            app: &self.app,
            secret: self.secret,
            rotate_token: self.rotate.as_deref(),
            activate_kid: self.activate.as_deref(),
            older_claimant: self.claimant.as_deref(),
            rollout: &self.rollout,
            now: self.now,
        })
    }
}

fn reason(plan: &Plan) -> Option<&'static str> {
    match plan {
        Plan::Report { reason, .. } => Some(reason),
        _ => None,
    }
}

fn renewal_of_a() -> Timestamp {
    key_a().not_after - SignedDuration::from_hours(720)
}

#[test]
fn one_decision_per_state() {
    let generating = World::steady()
        .with(|w| w.status.rotation = rotation(RotationPhase::Generating, RotationTrigger::Expiry, now() - HOUR));
    let published_due = World::rotating(RotationPhase::Published, Some(now() - HOUR));
    let published_later = World::rotating(RotationPhase::Published, Some(now() + HOUR));
    let manual = published_later.clone().with(|w| w.spec.activation.policy = ActivationPolicy::Manual);
    let b = key("B", now() - HOUR);
    let c = key("C", now() - HOUR);
    let suspended = |w: &mut World| w.spec.suspend = true;
    let renewal_due = |w: &mut World| w.now = renewal_of_a();
    let suspended_reason = Some(conditions::REASON_SUSPENDED);

    let cases: Vec<(&str, World, Plan)> = vec![
        ("steady: wait for the renewal time", World::steady(), Plan::WaitUntil(renewal_of_a())),
        (
            "new credential: adopt the key Okta signs with",
            World::steady().with(|w| {
                w.status = Default::default();
                w.secret = ObservedSecret { ownership: Ownership::Absent, current: false };
            }),
            Plan::Adopt { key: key_a() },
        ),
        (
            "adopted, Secret absent: write it",
            World::steady().with(|w| w.secret = ObservedSecret { ownership: Ownership::Absent, current: false }),
            Plan::WriteSecret,
        ),
        (
            "adoptable Secret: take it over",
            World::steady().with(|w| w.secret = ObservedSecret { ownership: Ownership::Adoptable, current: true }),
            Plan::WriteSecret,
        ),
        ("Secret outdated: write it", World::steady().with(|w| w.secret.current = false), Plan::WriteSecret),
        (
            "suspended: the Secret is still written",
            World::steady().with(|w| {
                w.spec.suspend = true;
                w.secret.current = false
            }),
            Plan::WriteSecret,
        ),
        ("suspended and nothing due: just wait", World::steady().with(suspended), Plan::WaitUntil(renewal_of_a())),
        (
            "renewal time reached: start",
            World::steady().with(renewal_due),
            Plan::StartRotation { trigger: RotationTrigger::Expiry },
        ),
        (
            "rotate annotation with a new token",
            World::steady().with(|w| {
                w.rotate = Some("t2".into());
                w.status.last_rotate_token = Some("t1".into());
            }),
            Plan::StartRotation { trigger: RotationTrigger::Manual },
        ),
        (
            "rotate annotation already acted on",
            World::steady().with(|w| {
                w.rotate = Some("t1".into());
                w.status.last_rotate_token = Some("t1".into());
            }),
            Plan::WaitUntil(renewal_of_a()),
        ),
        (
            "app without a signing key",
            World::steady().okta_signs_with(None).with(|w| w.status = Default::default()),
            Plan::StartRotation { trigger: RotationTrigger::NoActiveKey },
        ),
        (
            "app signs with a kid it does not list",
            World::steady().okta_signs_with(Some("gone")),
            Plan::StartRotation { trigger: RotationTrigger::NoActiveKey },
        ),
        ("Generating, nothing generated yet", generating.clone(), Plan::Generate),
        (
            "crash after generate: take the orphan",
            generating.clone().with(|w| w.keys().push(b.clone())),
            Plan::ResumeWithOrphan { key: b.clone() },
        ),
        (
            "orphan created just before startedAt by Okta's slower clock",
            generating.clone().with(|w| w.keys().push(key("B", now() - HOUR - SignedDuration::from_mins(2)))),
            Plan::ResumeWithOrphan { key: key("B", now() - HOUR - SignedDuration::from_mins(2)) },
        ),
        (
            "an old unknown key is not the orphan",
            generating.clone().with(|w| w.keys().push(key("old", at("2027-01-01T00:00:00Z")))),
            Plan::Generate,
        ),
        (
            "a previous key is not the orphan",
            generating.clone().with(|w| {
                w.keys().push(c.clone());
                w.status.previous_keys.push(PreviousKey {
                    kid: "C".into(),
                    not_after: Time(c.not_after),
                    x5t_s256: "t-C".into(),
                    retain_until: Time(now() + HOUR),
                });
            }),
            Plan::Generate,
        ),
        (
            "pending recorded: publish",
            World::rotating(RotationPhase::Generating, None),
            Plan::Publish { kid: "B".into() },
        ),
        ("published, delay running: wait", published_later.clone(), Plan::WaitUntil(now() + HOUR)),
        ("published, delay over: activate", published_due.clone(), Plan::Activate { kid: "B".into() }),
        (
            "published and due, but the Secret lags: write it first",
            published_due.clone().with(|w| w.secret.current = false),
            Plan::WriteSecret,
        ),
        ("Manual, not approved", manual.clone(), Plan::AwaitApproval { kid: "B".into() }),
        (
            "Manual, approval names another kid",
            manual.clone().with(|w| w.activate = Some("A".into())),
            Plan::AwaitApproval { kid: "B".into() },
        ),
        (
            "Manual, approved: activate without waiting for the delay",
            manual.clone().with(|w| w.activate = Some("B".into())),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "crash before the PUT: activate again",
            World::rotating(RotationPhase::Activating, Some(now() + HOUR)),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "crash after the PUT: record the activation",
            World::rotating(RotationPhase::Activating, Some(now() - HOUR)).okta_signs_with(Some("B")),
            Plan::RecordActivation { key: b.clone() },
        ),
        (
            "someone switched the key in Okta",
            World::steady().with(|w| w.keys().push(c.clone())).okta_signs_with(Some("C")),
            Plan::AdoptExternalChange { key: c.clone() },
        ),
        (
            "someone switched the key in Okta during a rotation",
            published_later.clone().with(|w| w.keys().push(c.clone())).okta_signs_with(Some("C")),
            Plan::AdoptExternalChange { key: c.clone() },
        ),
        (
            "NoActiveKey rotation: activate as soon as published, whatever the policy",
            manual.clone().with(|w| {
                w.status.rotation.as_mut().unwrap().trigger = RotationTrigger::NoActiveKey;
            }),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "previous key past retainUntil: retire",
            World::steady()
                .with(|w| w.status.previous_keys = vec![previous("P", now() - HOUR), previous("Q", now() + HOUR)]),
            Plan::Retire { kids: vec!["P".into()] },
        ),
        (
            "previous key retained: wake up for its retirement",
            World::steady().with(|w| w.status.previous_keys = vec![previous("Q", now() + HOUR)]),
            Plan::WaitUntil(now() + HOUR),
        ),
        (
            "expired active key: adopt first, rotate next",
            World::steady().with(|w| {
                w.status = Default::default();
                w.now = key_a().not_after + HOUR;
            }),
            Plan::Adopt { key: key_a() },
        ),
    ];

    let reports: Vec<(&str, World, Option<&str>)> = vec![
        ("app gone", World::steady().with(|w| w.app = ObservedApp::NotFound), Some(conditions::REASON_APP_NOT_FOUND)),
        (
            "app gone in the middle of a rotation: no writes",
            World::rotating(RotationPhase::Published, Some(now() - HOUR)).with(|w| w.app = ObservedApp::NotFound),
            Some(conditions::REASON_APP_NOT_FOUND),
        ),
        (
            "an older credential owns the app",
            World::steady().with(|w| w.claimant = Some("first".into())),
            Some(conditions::REASON_CONFLICT),
        ),
        (
            "the Secret belongs to someone else",
            World::steady().with(|w| w.secret = ObservedSecret { ownership: Ownership::Foreign, current: false }),
            Some(conditions::REASON_SECRET_CONFLICT),
        ),
        (
            "someone else's Secret blocks a rotation too",
            World::steady().with(renewal_due).with(|w| w.secret.ownership = Ownership::Foreign),
            Some(conditions::REASON_SECRET_CONFLICT),
        ),
        ("suspended: no rotation starts", World::steady().with(renewal_due).with(suspended), suspended_reason),
        ("suspended: no generate", generating.clone().with(suspended), suspended_reason),
        ("suspended: no activation", published_due.clone().with(suspended), suspended_reason),
        (
            "suspended: no manual activation either",
            manual.clone().with(|w| w.activate = Some("B".into())).with(suspended),
            suspended_reason,
        ),
        (
            "malformed duration",
            World::steady().with(|w| w.spec.renew_before = "30d".into()),
            Some(conditions::REASON_INVALID_SPEC),
        ),
    ];

    let mut failures = vec![];
    for (name, world, want) in &cases {
        let got = world.plan();
        if &got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    for (name, world, want) in &reports {
        let got = world.plan();
        if reason(&got) != *want {
            failures.push(format!("{name}: want report {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + reports.len(),
        failures.join("\n")
    );
    assert!(cases.len() + reports.len() >= 40);
}

fn previous(kid: &str, retain_until: Timestamp) -> PreviousKey {
    PreviousKey {
        kid: kid.into(),
        not_after: Time(now() + TEN_YEARS),
        x5t_s256: format!("t-{kid}"),
        retain_until: Time(retain_until),
    }
}

#[test]
fn the_pending_key_does_not_wait_behind_a_later_renewal() {
    // activateAfter is the wake-up even when a retained key is retired later.
    let world = World::rotating(RotationPhase::Published, Some(now() + HOUR))
        .with(|w| w.status.previous_keys = vec![previous("P", now() + 5 * HOUR)]);
    assert_eq!(world.plan(), Plan::WaitUntil(now() + HOUR));
}

#[test]
fn renewal_time_and_next_wake() {
    assert_eq!(renewal_time(at("2036-06-01T00:00:00Z"), &policy()), at("2036-05-02T00:00:00Z"));
    assert_eq!(next_wake(&Plan::WaitUntil(now())), Some(now()));
    assert_eq!(next_wake(&Plan::Generate), None);
}

// ---- Whole rotations against a model of Okta and the Secret ----

/// Okta, the Secret and the credential's status, moved by performing plans like the reconciler.
struct Model {
    world: World,
    /// Kids in the Secret's bundle, in order; `None` until first written.
    secret: Option<Vec<String>>,
    generated: Vec<String>,
    puts: usize,
}

/// The bundle that status asks for.
fn wanted_bundle(status: &SamlAppCredentialStatus) -> Vec<String> {
    published(status).kids().into_iter().map(str::to_owned).collect()
}

impl Model {
    fn new(world: World) -> Model {
        Model { world, secret: None, generated: vec![], puts: 0 }
    }

    fn okta_active(&self) -> Option<String> {
        match &self.world.app {
            ObservedApp::Found { active_kid, .. } => active_kid.clone(),
            ObservedApp::NotFound => None,
        }
    }

    fn observe(&mut self) {
        let current = self.secret.as_ref() == Some(&wanted_bundle(&self.world.status));
        let ownership = if self.secret.is_some() { Ownership::Ours } else { Ownership::Absent };
        self.world.secret = ObservedSecret { ownership, current };
    }

    /// Performs `plan`; with `crash`, the status write that ends the step is lost.
    fn perform(&mut self, plan: &Plan, crash: bool) {
        let policy = Policy::from_spec(&self.world.spec).unwrap();
        let now = self.world.now;
        let status = self.world.status.clone();
        let next = match plan {
            Plan::Adopt { key } => record::adopt(&status, key, &policy),
            Plan::AdoptExternalChange { key } => record::adopt_external_change(&status, key, &policy, now),
            Plan::RecordActivation { key } => record::activation(&status, key, &policy, now),
            Plan::StartRotation { trigger } => {
                record::start_rotation(&status, *trigger, self.world.rotate.as_deref(), now)
            }
            Plan::Generate => {
                let kid = format!("gen{}", self.generated.len() + 1);
                self.generated.push(kid.clone());
                let created = key(&kid, now);
                self.world.keys().push(created.clone());
                record::pending(&status, &created)
            }
            Plan::ResumeWithOrphan { key } => record::pending(&status, key),
            Plan::Publish { .. } => {
                self.secret = Some(wanted_bundle(&status));
                record::published(&status, &policy, now)
            }
            Plan::Activate { kid } => {
                self.world.status = record::activating(&status);
                if let ObservedApp::Found { active_kid, .. } = &mut self.world.app {
                    *active_kid = Some(kid.clone());
                }
                self.puts += 1;
                let key = self.world.keys().iter().find(|k| &k.kid == kid).unwrap().clone();
                record::activation(&self.world.status, &key, &policy, now)
            }
            Plan::Retire { kids } => record::retire(&status, kids),
            Plan::WriteSecret => {
                self.secret = Some(wanted_bundle(&status));
                status
            }
            other => panic!("not a step: {other:?}"),
        };
        if !crash {
            self.world.status = next;
        }
    }

    /// Plans and performs until nothing is due before `until`, crashing at the steps numbered in
    /// `crashes`. Checks after every step that the key Okta signs with is in the published bundle.
    fn run(&mut self, until: Timestamp, crashes: &[usize]) -> Vec<Plan> {
        let mut steps = vec![];
        for step in 0..100 {
            self.observe();
            let plan = self.world.plan();
            match &plan {
                Plan::WaitUntil(at) if *at > until => return steps,
                Plan::WaitUntil(at) => self.world.now = (*at).max(self.world.now),
                Plan::AwaitApproval { kid } => self.world.activate = Some(kid.clone()),
                Plan::Report { .. } => panic!("unexpected {plan:?} after {steps:?}"),
                _ => self.perform(&plan, crashes.contains(&step)),
            }
            if let (Some(bundle), Some(okta)) = (&self.secret, self.okta_active()) {
                assert!(bundle.contains(&okta), "Okta signs with {okta} but the Secret holds {bundle:?}");
            }
            steps.push(plan);
        }
        panic!("no rest after 100 steps: {steps:?}");
    }
}

fn fresh_world(renewal_in: SignedDuration) -> World {
    // Key A expires so that its renewal time is `renewal_in` from now.
    let a = ObservedKey { not_after: now() + renewal_in + SignedDuration::from_hours(720), ..key_a() };
    World {
        status: Default::default(),
        app: ObservedApp::Found { active_kid: Some("A".into()), keys: vec![a] },
        ..World::steady()
    }
}

/// Past the renewal, the activation delay and the retention of the old key.
fn horizon() -> Timestamp {
    now() + SignedDuration::from_hours(1 + 24 + 168 + 1)
}

#[test]
fn a_whole_rotation_without_crashes() {
    let mut model = Model::new(fresh_world(HOUR));
    let steps = model.run(horizon(), &[]);
    let names: Vec<String> =
        steps.iter().map(|p| format!("{p:?}").split([' ', '(']).next().unwrap().to_owned()).collect();
    assert_eq!(
        names,
        [
            "Adopt",
            "WriteSecret",
            "WaitUntil",
            "StartRotation",
            "Generate",
            "Publish",
            "WaitUntil",
            "Activate",
            "WriteSecret",
            "WaitUntil",
            "Retire",
            "WriteSecret"
        ]
    );
    assert_eq!(model.generated, ["gen1"]);
    assert_eq!(model.okta_active().as_deref(), Some("gen1"));
    assert_eq!(model.secret, Some(vec!["gen1".to_owned()]));
    let status = &model.world.status;
    assert_eq!(status.active_key.as_ref().unwrap().kid, "gen1");
    assert!(status.pending_key.is_none() && status.rotation.is_none() && status.previous_keys.is_empty());
    assert_eq!(status.last_rotation_time, Some(record::time(now() + SignedDuration::from_hours(25))));
    // Applying the same state again plans nothing but the next renewal.
    let again = model.run(horizon(), &[]);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn every_crash_point_generates_exactly_one_key() {
    let clean = Model::new(fresh_world(HOUR)).run(horizon(), &[]).len();
    for crash_at in 0..clean {
        let mut model = Model::new(fresh_world(HOUR));
        let steps = model.run(horizon(), &[crash_at]);
        assert_eq!(model.generated, ["gen1"], "crash at step {crash_at}: {steps:?}");
        assert_eq!(model.puts.min(2), model.puts, "crash at step {crash_at}: PUT repeated more than once");
        assert_eq!(model.okta_active().as_deref(), Some("gen1"), "crash at step {crash_at}");
        assert_eq!(model.secret, Some(vec!["gen1".to_owned()]), "crash at step {crash_at}: {steps:?}");
        assert_eq!(model.world.status.active_key.as_ref().unwrap().kid, "gen1", "crash at step {crash_at}");
    }
}

#[test]
fn two_crashes_anywhere_still_generate_exactly_one_key() {
    let clean = Model::new(fresh_world(HOUR)).run(horizon(), &[]).len();
    for first in 0..clean {
        for second in first..clean + 2 {
            let mut model = Model::new(fresh_world(HOUR));
            let steps = model.run(horizon(), &[first, second]);
            assert_eq!(model.generated, ["gen1"], "crashes at {first} and {second}: {steps:?}");
            assert_eq!(model.secret, Some(vec!["gen1".to_owned()]), "crashes at {first} and {second}");
        }
    }
}

#[test]
fn manual_activation_waits_for_the_annotation() {
    let mut model = Model::new(fresh_world(HOUR).with(|w| w.spec.activation.policy = ActivationPolicy::Manual));
    let steps = model.run(horizon(), &[]);
    let approval = steps.iter().position(|p| matches!(p, Plan::AwaitApproval { .. })).unwrap();
    assert_eq!(steps[approval + 1], Plan::Activate { kid: "gen1".into() });
    assert_eq!(model.generated, ["gen1"]);
}

#[test]
fn a_rotate_token_starts_exactly_one_rotation() {
    let mut model = Model::new(World { rotate: Some("now".into()), ..fresh_world(SignedDuration::from_hours(9000)) });
    model.run(horizon(), &[]);
    assert_eq!(model.generated, ["gen1"]);
    assert_eq!(model.world.status.last_rotate_token.as_deref(), Some("now"));
    assert_eq!(model.okta_active().as_deref(), Some("gen1"));
}

#[test]
fn an_app_without_a_key_gets_one_at_once() {
    let world = World::steady().okta_signs_with(None).with(|w| {
        w.status = Default::default();
        w.spec.activation.policy = ActivationPolicy::Manual;
    });
    let mut model = Model::new(world);
    let steps = model.run(now() + HOUR, &[]);
    assert_eq!(model.okta_active().as_deref(), Some("gen1"));
    assert!(!steps.iter().any(|p| matches!(p, Plan::AwaitApproval { .. } | Plan::WaitUntil(_))), "{steps:?}");
}

#[test]
fn suspended_credentials_never_write_to_okta() {
    let mut model = Model::new(fresh_world(HOUR).with(|w| w.spec.suspend = true));
    model.observe();
    model.perform(&model.world.plan(), false); // Adopt
    model.observe();
    model.perform(&model.world.plan(), false); // WriteSecret
    model.world.now = horizon();
    model.observe();
    assert_eq!(reason(&model.world.plan()), Some(conditions::REASON_SUSPENDED));
    assert!(model.generated.is_empty() && model.puts == 0);
}

#[test]
fn record_keeps_status_stable_through_a_round_trip() {
    let odd = ObservedKey { not_after: at("2036-01-01T00:00:00.75Z"), ..key_a() };
    let status = record::adopt(&Default::default(), &odd, &policy());
    let wire = serde_json::to_value(&status).unwrap();
    let back: SamlAppCredentialStatus = serde_json::from_value(wire).unwrap();
    assert_eq!(back, status);
    assert_eq!(status.renewal_time, Some(Time(at("2035-12-02T00:00:00Z"))));
}

#[test]
fn an_external_change_retains_the_old_key_and_abandons_the_rotation() {
    let world = World::rotating(RotationPhase::Published, Some(now() + HOUR));
    let c = key("C", now());
    let next = record::adopt_external_change(&world.status, &c, &policy(), now());
    assert_eq!(next.active_key.as_ref().unwrap().kid, "C");
    assert_eq!(next.previous_keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["A"]);
    assert_eq!(next.previous_keys[0].retain_until, Time(now() + SignedDuration::from_hours(168)));
    assert!(next.pending_key.is_none() && next.rotation.is_none());
}

#[test]
fn published_keys_are_in_bundle_order() {
    let world = World::rotating(RotationPhase::Published, None)
        .with(|w| w.status.previous_keys = vec![previous("P", now()), previous("Q", now())]);
    assert_eq!(published(&world.status).kids(), ["A", "B", "P", "Q"]);
    assert_eq!(published(&Default::default()).kids(), Vec::<&str>::new());
}

#[test]
fn conditions_move_their_transition_time_only_on_a_change() {
    let mut conditions = vec![];
    record::set_condition(&mut conditions, "Ready", true, "UpToDate", "ok", Some(1), now());
    record::set_condition(&mut conditions, "Rotating", false, "Idle", "", Some(1), now());
    let later = now() + HOUR;
    record::set_condition(&mut conditions, "Ready", true, "UpToDate", "still ok", Some(2), later);
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0].last_transition_time, Time(now()));
    assert_eq!((conditions[0].message.as_str(), conditions[0].observed_generation), ("still ok", Some(2)));
    record::set_condition(&mut conditions, "Ready", false, "AppNotFound", "gone", Some(2), later);
    assert_eq!(conditions[0].last_transition_time, Time(later));
    assert_eq!(conditions[0].status, "False");
    assert_eq!(conditions[1].type_, "Rotating");
}

#[test]
fn steps_name_their_events() {
    use crate::api::events;
    let b = key("B", now());
    assert_eq!(Plan::Adopt { key: b.clone() }.event(), None, "an adoption is said by status alone");
    assert_eq!(
        Plan::AdoptExternalChange { key: b.clone() }.event(),
        Some((EventType::Warning, events::EXTERNAL_KEY_CHANGE))
    );
    assert_eq!(Plan::RecordActivation { key: b }.event(), Some((EventType::Normal, events::KEY_ACTIVATED)));
    assert_eq!(Plan::Generate.event(), Some((EventType::Normal, events::KEY_GENERATED)));
    assert_eq!(Plan::Retire { kids: vec![] }.event(), Some((EventType::Normal, events::KEY_RETIRED)));
    let conflict = World::steady().with(|w| w.secret.ownership = Ownership::Foreign).plan();
    assert_eq!(conflict.event(), Some((EventType::Warning, events::SECRET_CONFLICT)));
    assert_eq!(Plan::WaitUntil(now()).event(), None);
    assert_eq!(Plan::WriteSecret.event(), None);
}

#[test]
fn observed_follows_a_changed_renew_before() {
    let status = World::steady().status;
    let shorter = Policy { renew_before: SignedDuration::from_hours(24), ..policy() };
    let next = record::observed(&status, &shorter, Some(7));
    assert_eq!(next.observed_generation, Some(7));
    assert_eq!(next.renewal_time, Some(Time(key_a().not_after - SignedDuration::from_hours(24))));
    assert_eq!(record::observed(&Default::default(), &shorter, None).renewal_time, None);
}

#[test]
fn activation_waits_for_the_rollout_until_expiry_is_near() {
    use crate::api::events;
    let due = World::rotating(RotationPhase::Published, Some(now() - HOUR));
    let waiting = |w: &mut World| w.rollout = Rollout::InProgress("Deployment web: 1 of 2 replicas ready".into());
    let stuck = |w: &mut World| w.rollout = Rollout::Stuck("Deployment web: not found".into());
    let expiring_in = |hours: i64| {
        move |w: &mut World| {
            let active = w.status.active_key.as_mut().unwrap();
            active.not_after = Time(now() + SignedDuration::from_hours(hours));
        }
    };
    let a_expires = key_a().not_after;
    let cases = [
        (
            "rollout complete: activate",
            due.clone().with(|w| w.rollout = Rollout::Complete),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "rolling out: wait, at most until a day before the active certificate expires",
            due.clone().with(waiting),
            Plan::AwaitRollout {
                kid: "B".into(),
                stuck: false,
                message: "Deployment web: 1 of 2 replicas ready".into(),
                until: a_expires - SignedDuration::from_hours(24),
            },
        ),
        (
            "a target missing: wait, stuck",
            due.clone().with(stuck),
            Plan::AwaitRollout {
                kid: "B".into(),
                stuck: true,
                message: "Deployment web: not found".into(),
                until: a_expires - SignedDuration::from_hours(24),
            },
        ),
        (
            "Manual, approved: still waits for the rollout",
            due.clone().with(|w| {
                w.spec.activation.policy = ActivationPolicy::Manual;
                w.activate = Some("B".into());
                waiting(w);
            }),
            Plan::AwaitRollout {
                kid: "B".into(),
                stuck: false,
                message: "Deployment web: 1 of 2 replicas ready".into(),
                until: a_expires - SignedDuration::from_hours(24),
            },
        ),
        (
            "Activating was decided: no second look at the rollout",
            World::rotating(RotationPhase::Activating, Some(now() - HOUR)).with(stuck),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "delay still running: the delay comes first",
            World::rotating(RotationPhase::Published, Some(now() + HOUR)).with(waiting),
            Plan::WaitUntil(now() + HOUR),
        ),
        (
            "suspended: no Okta write, rollout or not",
            due.clone().with(|w| {
                w.spec.suspend = true;
                w.rollout = Rollout::Complete;
            }),
            report_suspended(),
        ),
    ];
    for (name, world, expected) in cases {
        assert_eq!(world.plan(), expected, "{name}");
    }

    // Expiry beats the wait: 12h left is inside the 24h margin.
    let plan = due.clone().with(stuck).with(expiring_in(12)).plan();
    let Plan::ActivateBeforeRollout { kid, message } = &plan else { panic!("{plan:?}") };
    assert_eq!(kid, "B");
    assert!(message.contains("Deployment web: not found") && message.contains("expires"), "{message}");
    assert_eq!(plan.event(), Some((EventType::Warning, events::ACTIVATED_BEFORE_ROLLOUT)));

    // A short renewBefore shrinks the margin to half of it: 10h renewBefore, 5h margin.
    let short = |w: &mut World| w.spec.renew_before = "10h".into();
    let plan = due.clone().with(waiting).with(short).with(expiring_in(6)).plan();
    assert!(matches!(&plan, Plan::AwaitRollout { until, .. } if *until == now() + HOUR), "{plan:?}");
    let plan = due.clone().with(waiting).with(short).with(expiring_in(4)).plan();
    assert!(matches!(plan, Plan::ActivateBeforeRollout { .. }), "{plan:?}");

    let stuck_plan = due.clone().with(stuck).plan();
    assert_eq!(stuck_plan.event(), Some((EventType::Warning, events::ROLLOUT_STUCK)));
    assert_eq!(due.with(waiting).plan().event(), None, "waiting on a healthy rollout is no warning");
}

fn report_suspended() -> Plan {
    report(conditions::REASON_SUSPENDED, "spec.suspend is true: no changes are made in Okta".into())
}

// Activation windows, the renewal spread and expiry warnings (issue 14).
mod lifecycle;
mod shared;

//! One key for several apps (`spec.additionalAppIds`): the clone step, the activation gate, and
//! whole rotations against a model of the additional apps, with a crash at every step.

use std::collections::BTreeMap;

use super::*;
use crate::api::AdditionalApp;

const TWO: [&str; 2] = ["0oa2", "0oa3"];

fn with_apps(mut world: World) -> World {
    world.spec.additional_app_ids = TWO.iter().map(|app| app.to_string()).collect();
    world
}

fn cloned_to(world: &mut World, apps: &[&str]) {
    world.status.pending_key.as_mut().unwrap().cloned_to = apps.iter().map(|app| app.to_string()).collect();
}

#[test]
fn the_pending_key_is_cloned_to_every_additional_app_before_it_is_published() {
    let generating = with_apps(World::rotating(RotationPhase::Generating, None));
    let published_due = with_apps(World::rotating(RotationPhase::Published, Some(now() - HOUR)));
    let apps = |list: &[&str]| list.iter().map(|app| app.to_string()).collect::<Vec<_>>();
    let cases: Vec<(&str, World, Plan)> = vec![
        ("nothing cloned yet", generating.clone(), Plan::Clone { kid: "B".into(), apps: apps(&TWO) }),
        (
            "one clone recorded (the other failed)",
            generating.clone().with(|w| cloned_to(w, &["0oa2"])),
            Plan::Clone { kid: "B".into(), apps: apps(&["0oa3"]) },
        ),
        (
            "every clone recorded: publish",
            generating.clone().with(|w| cloned_to(w, &TWO)),
            Plan::Publish { kid: "B".into() },
        ),
        (
            "no additional apps: publish at once",
            World::rotating(RotationPhase::Generating, None),
            Plan::Publish { kid: "B".into() },
        ),
        (
            "cloned and due: activate",
            published_due.clone().with(|w| cloned_to(w, &TWO)),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "an app added after publishing waits for the next rotation",
            published_due.clone().with(|w| cloned_to(w, &["0oa2"])),
            Plan::Activate { kid: "B".into() },
        ),
        (
            "still a crash before the PUT: activate again",
            with_apps(World::rotating(RotationPhase::Activating, Some(now() - HOUR))).with(|w| cloned_to(w, &TWO)),
            Plan::Activate { kid: "B".into() },
        ),
    ];
    for (name, world, want) in cases {
        assert_eq!(world.plan(), want, "{name}");
    }
    let suspended = generating.with(|w| w.spec.suspend = true);
    assert_eq!(reason(&suspended.plan()), Some(conditions::REASON_SUSPENDED), "a clone writes to Okta");
    assert_eq!(Plan::Clone { kid: "B".into(), apps: vec![] }.event(), Some((EventType::Normal, events::KEY_CLONED)));
}

use crate::api::events;

#[test]
fn activation_switches_the_apps_the_key_reached_and_the_secret_follows_them() {
    let mut world = with_apps(World::rotating(RotationPhase::Published, Some(now() - HOUR)));
    cloned_to(&mut world, &["0oa2"]);
    assert_eq!(apps_to_activate(&world.spec.additional_app_ids, &world.status), ["0oa2"]);
    // Before activation the Secret carries the metadata of the apps the pending key reached.
    assert_eq!(shared_apps(&world.spec.additional_app_ids, &world.status), [("0oa2", "B")]);

    let b = key("B", now() - HOUR);
    let next = record::activation(&world.status, &b, &policy(), now());
    assert_eq!(next.additional_apps, [AdditionalApp { app_id: "0oa2".into(), kid: "B".into() }]);
    assert_eq!(shared_apps(&world.spec.additional_app_ids, &next), [("0oa2", "B")]);
    // An app removed from the spec leaves the Secret; an app that signs with an older key does too.
    assert_eq!(shared_apps(&["0oa3".to_string()], &next), []);
    let stale = SamlAppCredentialStatus {
        additional_apps: vec![AdditionalApp { app_id: "0oa2".into(), kid: "old".into() }],
        ..world.status.clone()
    };
    assert_eq!(shared_apps(&["0oa2".to_string()], &SamlAppCredentialStatus { pending_key: None, ..stale }), []);

    let twice = record::cloned(&record::cloned(&world.status, &["0oa3".into()]), &["0oa3".into(), "0oa2".into()]);
    assert_eq!(twice.pending_key.unwrap().cloned_to, ["0oa2", "0oa3"], "sorted, each once");
}

/// The additional apps as Okta holds them: each app's kids and the kid it signs with.
struct Apps {
    keys: BTreeMap<String, Vec<String>>,
    active: BTreeMap<String, String>,
    /// Clones that added a key; clones Okta refused as duplicates.
    clones: usize,
    duplicates: usize,
}

impl Apps {
    fn new() -> Apps {
        let own = |app: &str| (app.to_string(), vec![format!("own-{app}")]);
        let keys: BTreeMap<_, _> = TWO.iter().map(|app| own(app)).collect();
        let active = keys.iter().map(|(app, kids)| (app.clone(), kids[0].clone())).collect();
        Apps { keys, active, clones: 0, duplicates: 0 }
    }
}

/// Plans and performs like `Model::run`, with Clone and Activate also acting on `apps`.
/// `crashes`: steps whose status write is lost; `mid`: activation steps that stop after the
/// additional apps, before appId (and before status).
fn run(model: &mut Model, apps: &mut Apps, crashes: &[usize], mid: &[usize]) -> Vec<Plan> {
    let mut steps = vec![];
    for step in 0..100 {
        model.observe();
        let plan = model.world.plan();
        let crash = crashes.contains(&step);
        match &plan {
            Plan::WaitUntil(at) if *at > horizon() => return steps,
            Plan::WaitUntil(at) => model.world.now = (*at).max(model.world.now),
            Plan::Clone { kid, apps: targets } => {
                for app in targets {
                    let held = apps.keys.get_mut(app).unwrap();
                    if held.contains(kid) {
                        apps.duplicates += 1; // Okta's 400 "Key already exists": done
                    } else {
                        held.push(kid.clone());
                        apps.clones += 1;
                    }
                }
                if !crash {
                    model.world.status = record::cloned(&model.world.status, targets);
                }
            }
            Plan::Activate { kid } => {
                for app in apps_to_activate(&model.world.spec.additional_app_ids, &model.world.status) {
                    assert!(apps.keys[app].contains(kid), "{app} is activated on {kid} before it holds it");
                    apps.active.insert(app.to_string(), kid.clone());
                }
                if mid.contains(&step) {
                    model.world.status = record::activating(&model.world.status);
                } else {
                    model.perform(&plan, crash);
                }
            }
            Plan::Report { .. } => panic!("unexpected {plan:?} after {steps:?}"),
            _ => model.perform(&plan, crash),
        }
        // Each app that signs with a shared key finds it in the bundle.
        if let Some(bundle) = &model.secret {
            for (app, kid) in &apps.active {
                assert!(kid.starts_with("own-") || bundle.contains(kid), "{app} signs with {kid}, bundle {bundle:?}");
            }
        }
        steps.push(plan);
    }
    panic!("no rest after 100 steps: {steps:?}");
}

fn shared_world() -> World {
    with_apps(fresh_world(HOUR))
}

fn assert_all_on_gen1(model: &Model, apps: &Apps, context: &str) {
    assert_eq!(model.generated, ["gen1"], "{context}: one key generated");
    assert_eq!(model.okta_active().as_deref(), Some("gen1"), "{context}");
    assert_eq!(apps.clones, 2, "{context}: each app got the key exactly once");
    for app in TWO {
        assert_eq!(apps.active[app], "gen1", "{context}: {app}");
        assert_eq!(apps.keys[app].len(), 2, "{context}: {app} holds its own key and gen1, nothing else");
    }
    let recorded: Vec<(&str, &str)> =
        model.world.status.additional_apps.iter().map(|a| (a.app_id.as_str(), a.kid.as_str())).collect();
    assert_eq!(recorded, [("0oa2", "gen1"), ("0oa3", "gen1")], "{context}");
}

#[test]
fn a_shared_rotation_clones_once_and_activates_every_app() {
    let (mut model, mut apps) = (Model::new(shared_world()), Apps::new());
    let steps = run(&mut model, &mut apps, &[], &[]);
    let clone = steps.iter().position(|p| matches!(p, Plan::Clone { .. })).unwrap();
    assert!(matches!(steps[clone - 1], Plan::Generate) && matches!(steps[clone + 1], Plan::Publish { .. }));
    assert_all_on_gen1(&model, &apps, "no crash");
    assert_eq!(apps.duplicates, 0);
}

#[test]
fn every_crash_point_of_a_shared_rotation_recovers_without_a_second_key() {
    let clean = run(&mut Model::new(shared_world()), &mut Apps::new(), &[], &[]).len();
    for crash_at in 0..clean {
        let (mut model, mut apps) = (Model::new(shared_world()), Apps::new());
        let steps = run(&mut model, &mut apps, &[crash_at], &[]);
        assert_all_on_gen1(&model, &apps, &format!("crash at step {crash_at}: {steps:?}"));
        // A lost clone record costs one refused clone per app, no more.
        assert!(apps.duplicates <= 2, "crash at step {crash_at}");
        // And a crash between the additional apps' PUTs and appId's.
        let (mut model, mut apps) = (Model::new(shared_world()), Apps::new());
        let steps = run(&mut model, &mut apps, &[], &[crash_at]);
        assert_all_on_gen1(&model, &apps, &format!("stopped mid-activation at step {crash_at}: {steps:?}"));
    }
}

//! Activation windows, the renewal spread and expiry warnings (issue 14) end to end: a real
//! `samlcred controller` process, a real API server and the Okta simulator.

mod support;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use support::{World, condition, events, wait_for};

const LONG: Duration = Duration::from_secs(90);

#[tokio::test]
async fn activation_waits_for_its_window() {
    let world = World::new("e2e-window").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    // A window that opens at the start of a minute 45 to 105 seconds from now, read in a zone half an
    // hour off UTC, so that neither the zone nor the schedule can be ignored.
    let zone = TimeZone::get("Asia/Kolkata").unwrap();
    let opens = (Timestamp::now() + SignedDuration::from_secs(105)).to_zoned(zone.clone());
    let opens = opens.with().second(0).subsec_nanosecond(0).build().unwrap();
    let opens_at = opens.timestamp();
    let schedule = format!("{} {} * * *", opens.minute(), opens.hour());
    let spec = json!({
        "renewBefore": "720h",
        "activation": {
            "delay": "1s",
            "windows": [{"schedule": schedule, "duration": "10m", "timeZone": "Asia/Kolkata"}],
        },
    });
    world.create_credential("windowed", &app.id, spec).await;
    let _controller = world.start_controller(&[]);

    // Generated and published at once; activation waits for the window.
    let message = wait_for("the published key to wait for its window", LONG, || async {
        let sac = world.credential("windowed").await;
        let (status, reason, message) = condition(&sac, "Rotating")?;
        (status == "True" && reason == "WaitingForWindow").then_some(message)
    })
    .await;
    assert!(Timestamp::now() < opens_at, "the test was too slow to see the wait");
    assert!(message.contains(&opens_at.to_string()), "names the opening {opens_at}: {message}");
    let puts = |world: &World| world.sim.calls().into_iter().filter(|c| c.method == "PUT").collect::<Vec<_>>();
    assert!(puts(&world).is_empty(), "no activation before the window opens");
    assert_eq!(world.generate_calls(&app.id), 1, "generation does not wait");

    let status = wait_for("the activation in the window", LONG + LONG, || async {
        let status = world.credential("windowed").await.status?;
        status.last_rotation_time.is_some().then_some(status)
    })
    .await;
    let put = puts(&world);
    assert_eq!(put.len(), 1, "{put:?}");
    assert!(put[0].at >= opens_at, "activated at {} before the window opened at {opens_at}", put[0].at);
    assert!(put[0].at < opens_at + SignedDuration::from_mins(10), "activated inside the window: {}", put[0].at);
    assert_ne!(status.active_key.unwrap().kid, app.kids[0]);
    // A window that can never open is reported by the controller (the API server checks only its shape).
    let never = json!({"spec": {"activation": {"windows": [{"schedule": "0 0 30 2 *", "duration": "1h"}]}}});
    world.credentials().patch("windowed", &PatchParams::default(), &Patch::Merge(&never)).await.unwrap();
    let message = wait_for("Ready=False InvalidSpec", LONG, || async {
        let sac = world.credential("windowed").await;
        let (status, reason, message) = condition(&sac, "Ready")?;
        (status == "False" && reason == "InvalidSpec").then_some(message)
    })
    .await;
    assert!(message.contains("activation.windows[0]") && message.contains("never fires"), "{message}");
}

#[tokio::test]
async fn a_suspended_certificate_near_expiry_warns_once_per_threshold() {
    let world = World::new("e2e-expiring").await;
    // 20.5 days: "in 20 day(s)" whatever the seconds lost to rounding.
    let app = world.seed_app(SignedDuration::from_hours(24 * 20 + 12));
    world.create_credential("held", &app.id, json!({"suspend": true})).await;
    let mut controller = world.start_controller(&[]);

    let message = wait_for("ExpiringSoon=True", LONG, || async {
        let sac = world.credential("held").await;
        let (status, reason, message) = condition(&sac, "ExpiringSoon")?;
        (status == "True" && reason == "RotationHeld").then_some(message)
    })
    .await;
    assert!(message.contains("within 30 days") && message.contains("in 20 day(s)"), "{message}");
    assert!(message.contains("spec.suspend is true") && message.contains(&app.kids[0]), "{message}");
    let status = world.credential("held").await.status.unwrap();
    let warning = status.expiry_warning.unwrap();
    assert_eq!((warning.kid.as_str(), warning.days), (app.kids[0].as_str(), 30));
    let warnings = || async {
        events(&world, "held").await.into_iter().filter(|(t, r, _)| t == "Warning" && r == "ExpiringSoon").count()
    };
    wait_for("the ExpiringSoon event", LONG, || async { (warnings().await == 1).then_some(()) }).await;
    assert_eq!(world.okta_writes(), 0, "suspended: nothing written to Okta");

    // A restart does not warn again: the threshold is recorded in status. A spec change makes the
    // new process reconcile it, and its observedGeneration says it did.
    controller.kill();
    let _controller = world.start_controller(&[]);
    let change = json!({"spec": {"retainPrevious": "169h"}});
    let changed = world.credentials().patch("held", &PatchParams::default(), &Patch::Merge(&change)).await.unwrap();
    let generation = changed.metadata.generation;
    wait_for("the restarted controller to reconcile", LONG, || async {
        let status = world.credential("held").await.status?;
        (status.observed_generation == generation).then_some(())
    })
    .await;
    assert_eq!(warnings().await, 1, "no second warning for the same threshold");
    let sac = world.credential("held").await;
    assert_eq!(condition(&sac, "ExpiringSoon").unwrap().0, "True");

    // Resumed: the rotation goes ahead, so the certificate is no longer expiring unattended.
    let resume = json!({"spec": {"suspend": false}});
    world.credentials().patch("held", &PatchParams::default(), &Patch::Merge(&resume)).await.unwrap();
    let reason = wait_for("ExpiringSoon=False", LONG, || async {
        let sac = world.credential("held").await;
        let (status, reason, _) = condition(&sac, "ExpiringSoon")?;
        (status == "False").then_some(reason)
    })
    .await;
    assert!(["RotationScheduled", "NotExpiring"].contains(&reason.as_str()), "{reason}");
}

/// Runs the real `samlcred` binary with the test control plane's kubeconfig, off the test's thread.
async fn samlcred(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_samlcred"))
            .arg("--kubeconfig")
            .arg(testenv::shared().kubeconfig())
            .args(&args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn plan_shows_each_credentials_renewal_spread() {
    let world = World::new("e2e-spread").await;
    let ns = world.ns.name.clone();
    let names = ["one", "two", "three", "four"];
    for name in names {
        // Imported on the same day, with the same expiry.
        let app = world.seed_app(SignedDuration::from_hours(24 * 365));
        world.create_credential(name, &app.id, json!({})).await;
    }
    let mut controller = world.start_controller(&[]);
    for name in names {
        wait_for("every credential to adopt its key", LONG, || async {
            let status = world.credential(name).await.status?;
            status.renewal_time.is_some().then_some(())
        })
        .await;
    }
    controller.kill();

    // This namespace only: other tests' credentials come and go in theirs.
    let out = samlcred(&["plan", "-n", &ns, "--allow-insecure-okta-http", "-o", "json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let steps: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut renewals = Vec::new();
    for name in names {
        let step = steps.as_array().unwrap().iter().find(|s| s["namespace"] == ns.as_str() && s["name"] == name);
        let step = step.unwrap_or_else(|| panic!("{name} in {steps}"));
        let status = world.credential(name).await.status.unwrap();
        let renewal: Timestamp = step["renewalTime"].as_str().unwrap().parse().unwrap();
        assert_eq!(renewal, status.renewal_time.unwrap().0, "plan and status agree: {step}");
        // notAfter - renewBefore (720h) - spread, the spread within 10% of renewBefore (72h).
        let earlier =
            (status.active_key.unwrap().not_after.0 - SignedDuration::from_hours(720)).duration_since(renewal);
        assert!(earlier > SignedDuration::ZERO && earlier <= SignedDuration::from_hours(72), "{name}: {earlier:?}");
        assert!(step["renewalSpread"].as_str().is_some_and(|s| !s.is_empty()), "{step}");
        renewals.push(earlier.as_secs());
    }
    renewals.sort();
    renewals.dedup();
    assert_eq!(renewals.len(), names.len(), "credentials imported together renew apart: {renewals:?}");

    let table = String::from_utf8_lossy(&samlcred(&["plan", "-n", &ns, "--allow-insecure-okta-http"]).await.stdout)
        .into_owned();
    assert!(table.lines().next().unwrap().contains("RENEWAL"), "{table}");
    assert!(table.lines().filter(|l| l.contains("(spread -")).count() == names.len(), "{table}");
}

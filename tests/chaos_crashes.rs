//! Random crashes (issue 13, part 1): trials of `kill -9` at random moments of rotations, not only at
//! the failpoints, across Automatic and Manual activation with several credentials rotating at once.
//! An invariant sampler runs throughout: from the first publish on, the certificate Okta signs with
//! is in the Secret's `bundle.pem` and `metadata.xml`; and each rotation generates exactly one key.
//!
//! Sizes: CHAOS_TRIALS (default 3), CHAOS_CREDENTIALS per trial (default 3), CHAOS_KILLS at most per
//! trial (default 3), CHAOS_SEED. `make chaos` runs 100 trials and prints the figures.

mod support;

use jiff::SignedDuration;
use okta_sim::{RateLimits, SimConfig};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::chaos::{Rotating, Sampler, all_converged, quantile, rotation_done, size};
use support::{World, wait_for};

const LONG: Duration = Duration::from_secs(120);

/// Where a kill landed in a rotation, read after the kill (nothing moves then) from Okta's side and
/// from the status the operator recorded.
async fn phase(world: &World, r: &Rotating) -> &'static str {
    let keys = world.sim.keys(&r.app_id).len();
    let switched = world.sim.active_kid(&r.app_id).as_deref() != Some(r.old_kid.as_str());
    let status = world.credentials().get(&r.name).await.ok().and_then(|c| c.status).unwrap_or_default();
    let recorded_active = status.active_key.as_ref().is_some_and(|k| k.kid != r.old_kid);
    match (keys, status.pending_key.is_some(), switched, recorded_active) {
        (1, ..) => "before-generate",
        (_, false, false, _) => "generated-not-recorded",
        (_, true, false, _) => "published",
        (_, _, true, false) => "activated-not-recorded",
        _ if rotation_done(&status) => "done",
        _ => "activated",
    }
}

/// Approves (`samlcred.io/activate`) the pending key of every Manual credential, as a person would,
/// whenever one is pending: a crash may come before or after the approval.
async fn approve_pending(world: &World, trial: &[Rotating]) {
    for r in trial.iter().filter(|r| r.manual) {
        let Ok(sac) = world.credentials().get(&r.name).await else { continue };
        let Some(pending) = sac.status.and_then(|s| s.pending_key).map(|k| k.kid) else { continue };
        let approved = sac.metadata.annotations.as_ref().and_then(|a| a.get("samlcred.io/activate"));
        if approved != Some(&pending) {
            world.annotate(&r.name, "samlcred.io/activate", &pending).await;
        }
    }
}

#[tokio::test]
async fn random_kills_during_rotations_lose_no_invariant_and_duplicate_no_key() {
    let trials = size("CHAOS_TRIALS", 3);
    let per_trial = size("CHAOS_CREDENTIALS", 3);
    let max_kills = size("CHAOS_KILLS", 3);
    let seed = size("CHAOS_SEED", rand::random::<u32>() as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Keys from the simulator's stock (distinct kids and certificates, shared key pairs): a hundred
    // trials need more RSA keys than the simulator can generate meanwhile.
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), reuse_stock_keys: true, ..SimConfig::default() };
    let world = World::with_sim("chaos-crash", sim).await;
    let sampler = Sampler::start(&world);
    let started = Instant::now();

    let (mut kills, mut duplicates, mut duplicated, mut converge) = (0, 0, Vec::new(), Vec::new());
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for t in 0..trials {
        let mut trial = Vec::new();
        for i in 0..per_trial {
            let app = world.seed_app(SignedDuration::from_hours(24 * 10));
            // Automatic and Manual in every trial (alternating), several rotating at once.
            let manual = (t + i) % 2 == 1;
            let name = format!("t{t}-c{i}");
            let policy = if manual { "Manual" } else { "Automatic" };
            let spec = json!({"activation": {"policy": policy, "delay": "2s"}, "retainPrevious": "2s"});
            world.create_credential(&name, &app.id, spec).await;
            sampler.watch(&app.id, &format!("{name}-idp"));
            trial.push(Rotating { name, app_id: app.id, old_kid: app.kids[0].clone(), manual });
        }
        let mut controller = world.start_controller(&[]);
        for _ in 0..rng.random_range(1..=max_kills) {
            // A random moment of the rotations under way: they take about four seconds here, and half
            // the kills fall in the first 600 ms after a start, where keys are generated.
            let window = if rng.random_bool(0.5) { 600 } else { 4000 };
            let until = Instant::now() + Duration::from_millis(rng.random_range(0..window));
            while Instant::now() < until {
                approve_pending(&world, &trial).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            controller.kill();
            kills += 1;
            for r in &trial {
                *phases.entry(phase(&world, r).await).or_default() += 1;
            }
            controller = world.start_controller(&[]);
        }
        let restarted = Instant::now();
        wait_for(&format!("trial {t} to converge after its last kill (seed {seed})"), LONG, || async {
            approve_pending(&world, &trial).await;
            all_converged(&world, &trial).await
        })
        .await;
        converge.push(restarted.elapsed());
        eprintln!("random crashes: trial {t}: converged {:.1}s after its last kill", restarted.elapsed().as_secs_f64());
        controller.kill();
        for r in &trial {
            let (generated, keys) = (world.generate_calls(&r.app_id), world.sim.keys(&r.app_id).len());
            if generated > 1 || keys > 2 {
                duplicates += (generated.saturating_sub(1)).max(keys.saturating_sub(2));
                duplicated.push(format!("{}: {generated} generate calls, {keys} keys", r.name));
            }
            // Done with: the credential goes (its Secret stays, and is no longer watched).
            sampler.forget(&format!("{}-idp", r.name));
            world.credentials().delete(&r.name, &Default::default()).await.unwrap();
        }
    }
    let figures = sampler.stop().await;
    let violations = figures.violations.len();
    let phases: Vec<String> = phases.iter().map(|(p, n)| format!("{p}={n}")).collect();
    println!(
        "random crashes: trials={trials} credentials_per_trial={per_trial} kills={kills} duplicate_keys={duplicates} \
         invariant_violations={violations} samples={} converge_p50={:.1}s max={:.1}s seed={seed} took={:.0}s \
         (target: 0 dup, 0 violations)",
        figures.samples,
        quantile(&converge, 0.5).as_secs_f64(),
        quantile(&converge, 1.0).as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    println!("random crashes: rotations seen at the kills (Okta's side): {}", phases.join(" "));
    assert_eq!(duplicates, 0, "keys duplicated (seed {seed}): {duplicated:?}");
    assert!(figures.violations.is_empty(), "invariant violated: {:?}", figures.violations);
    assert!(figures.samples as u64 > trials * per_trial * 5, "too few samples to mean anything: {}", figures.samples);
}

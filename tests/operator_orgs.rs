//! An OktaOrg using OAuth (private_key_jwt with DPoP required) drives a credential end to end.

mod support;

use jiff::SignedDuration;
use serde_json::json;
use std::time::Duration;
use support::{World, condition, org_ready, wait_for};

const LONG: Duration = Duration::from_secs(90);

#[tokio::test]
async fn oauth_org_with_dpop_drives_a_credential() {
    let world = World::new("e2e-oauth").await;
    world.add_oauth_org("oauth", "0oa-samlcred").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world
        .create_credential(
            "via-oauth",
            &app.id,
            json!({"orgRef": {"name": "oauth"}, "activation": {"delay": "1s"}, "retainPrevious": "1s"}),
        )
        .await;
    let _controller = world.start_controller(&[]);

    let ready = org_ready(&world, "OktaOrg", "oauth", Some(&world.ns.name)).await;
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("True", "Authenticated"), "{ready:?}");
    wait_for("a rotation through the OAuth org", LONG, || async {
        let sac = world.credential("via-oauth").await;
        sac.status.as_ref()?.last_rotation_time.as_ref()?;
        (condition(&sac, "Ready")?.0 == "True").then_some(())
    })
    .await;
    let calls = world.sim.calls();
    // The World's own `acme` org (API token) is checked too; look at this app's calls only.
    let api_calls: Vec<_> = calls.iter().filter(|c| c.path.contains(&app.id)).collect();
    assert!(!api_calls.is_empty());
    let schemes: Vec<&str> = api_calls.iter().map(|c| c.auth.as_str()).collect();
    assert!(schemes.iter().all(|a| *a == "DPoP"), "every API call carries a DPoP-bound token: {schemes:?}");
    assert!(calls.iter().any(|c| c.path == "/oauth2/v1/token" && c.status == 200));
    assert_eq!(world.generate_calls(&app.id), 1);
}

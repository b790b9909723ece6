use super::*;
use crate::api::{ActiveKey, RotationPhase, RotationTrigger};
use crate::rotation::record;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn key(kid: &str) -> ObservedKey {
    let now = Timestamp::now();
    ObservedKey {
        kid: kid.into(),
        created: now,
        not_before: now,
        not_after: now + jiff::SignedDuration::from_hours(24 * 365),
        x5t_s256: format!("x5t-{kid}"),
    }
}

fn client() -> Arc<OktaClient> {
    crate::okta::install_crypto_provider();
    let auth = crate::okta::Auth::ApiToken(secrecy::SecretString::from("t".to_string()));
    let config = crate::okta::OrgConfig::new(url::Url::parse("https://example.okta.com").unwrap(), auth);
    Arc::new(OktaClient::new(config).unwrap())
}

fn snapshot(trusted: bool, material: Option<Material>) -> OktaSnapshot {
    OktaSnapshot {
        client: client(),
        app_id: "0oa1".into(),
        read_at: Timestamp::now(),
        trusted,
        app: ObservedApp::Found { active_kid: Some("a".into()), keys: vec![key("a")] },
        material: material.map(Arc::new),
        generation: Some(1),
        phase: 0.0,
    }
}

fn active_status() -> SamlAppCredentialStatus {
    let a = key("a");
    SamlAppCredentialStatus {
        active_key: Some(ActiveKey {
            kid: a.kid,
            not_before: Time(a.not_before),
            not_after: Time(a.not_after),
            x5t_s256: a.x5t_s256,
        }),
        ..Default::default()
    }
}

#[test]
fn waits_need_nothing_and_acting_needs_a_read() {
    let status = active_status();
    for plan in
        [Plan::WaitUntil(Timestamp::now()), Plan::AwaitApproval { kid: "b".into() }, Plan::Retire { kids: vec![] }]
    {
        assert_eq!(need(&plan, &status), Need::Nothing, "{plan:?}");
    }
    for plan in [
        Plan::Generate,
        Plan::Clone { kid: "b".into(), apps: vec!["0oa2".into()] },
        Plan::Activate { kid: "b".into() },
        Plan::StartRotation { trigger: RotationTrigger::Expiry },
    ] {
        assert_eq!(need(&plan, &status), Need::Read, "{plan:?}");
        assert!(!satisfies(&snapshot(true, None), &Need::Read), "a status-made snapshot cannot act: {plan:?}");
        assert!(satisfies(&snapshot(false, None), &Need::Read));
    }
    assert_eq!(
        need(&Plan::Adopt { key: key("a") }, &SamlAppCredentialStatus::default()),
        Need::Material(Some("a".into()), None, vec![])
    );
    assert_eq!(need(&Plan::WriteSecret, &status), Need::Material(Some("a".into()), None, vec![]));
}

#[test]
fn publishing_needs_metadata_read_since_the_rotation_started() {
    let mut status = active_status();
    let started = Timestamp::now();
    status = record::start_rotation(&status, RotationTrigger::Manual, None, started);
    assert_eq!(status.rotation.as_ref().unwrap().phase, RotationPhase::Generating);
    let Need::Material(kid, Some(rotation), _) = need(&Plan::Publish { kid: "b".into() }, &status) else {
        panic!("publishing needs fresh metadata");
    };
    assert_eq!(kid.as_deref(), Some("a"));
    let with_metadata = |during: Option<Timestamp>| Material {
        keys: BTreeMap::new(),
        metadata: Some(("a".into(), "<md/>".into())),
        metadata_rotation: during,
        app_metadata: BTreeMap::new(),
    };
    let need = Need::Material(kid.clone(), Some(rotation), vec![]);
    let earlier = Some(started - jiff::SignedDuration::from_hours(24 * 300));
    assert!(!satisfies(&snapshot(false, Some(with_metadata(None))), &need), "metadata from before any rotation");
    assert!(!satisfies(&snapshot(false, Some(with_metadata(earlier))), &need), "metadata of an earlier rotation");
    assert!(satisfies(&snapshot(false, Some(with_metadata(Some(rotation)))), &need));
    assert!(!satisfies(&snapshot(true, Some(with_metadata(Some(rotation)))), &need), "a status-made snapshot");
    assert!(!satisfies(&snapshot(false, None), &need), "no material at all");

    // With the pending key cloned to an additional app, publishing needs that app's metadata too.
    status = record::pending(
        &status,
        &crate::rotation::ObservedKey {
            kid: "b".into(),
            created: started,
            not_before: started,
            not_after: started + jiff::SignedDuration::from_hours(24 * 365),
            x5t_s256: "t-b".into(),
        },
    );
    status = record::cloned(&status, &["0oa2".into()]);
    let need = super::need(&Plan::Publish { kid: "b".into() }, &status);
    assert_eq!(need, Need::Material(Some("a".into()), Some(rotation), vec![("0oa2".into(), "b".into())]));
    let mut material = with_metadata(Some(rotation));
    assert!(!satisfies(&snapshot(false, Some(material.clone())), &need), "no metadata of the additional app");
    material.app_metadata.insert("0oa2".into(), (earlier, "<md/>".into()));
    assert!(!satisfies(&snapshot(false, Some(material.clone())), &need), "the app's metadata of an earlier rotation");
    material.app_metadata.insert("0oa2".into(), (Some(rotation), "<md/>".into()));
    assert!(satisfies(&snapshot(false, Some(material)), &need));
}

#[test]
fn a_trusted_snapshot_says_what_status_says() {
    let status = active_status();
    let trusted = OktaSnapshot::trusted(&status, client(), "0oa1", Timestamp::now()).unwrap();
    assert!(trusted.trusted);
    assert_eq!(trusted.active_kid(), Some("a"));
    assert!(OktaSnapshot::trusted(&SamlAppCredentialStatus::default(), client(), "0oa1", Timestamp::now()).is_none());
}

#[test]
fn secret_inputs_follow_the_published_kids_and_the_generation() {
    let status = active_status();
    let base = secret_inputs(&status, Some(1), None);
    assert_eq!(base, secret_inputs(&status, Some(1), None));
    assert_ne!(base, secret_inputs(&status, Some(2), None));
    assert_ne!(base, secret_inputs(&SamlAppCredentialStatus::default(), Some(1), None));
}

#[test]
fn resyncs_keep_the_credentials_turn_in_the_interval() {
    let interval = std::time::Duration::from_secs(3600);
    let mut snapshot = snapshot(false, None);
    snapshot.phase = 0.25;
    for read_at in ["2026-12-01T10:00:00Z", "2026-12-01T10:14:59Z", "2026-12-01T10:15:00Z", "2026-12-01T10:59:00Z"] {
        snapshot.read_at = read_at.parse().unwrap();
        let at = snapshot.resync_at(interval);
        assert!(at > snapshot.read_at && at.duration_since(snapshot.read_at) <= jiff::SignedDuration::from_hours(1));
        assert_eq!(at.as_second() % 3600, 900, "{read_at} -> {at}: off its turn (a quarter past)");
    }
    // A thousand credentials adopted in the same second resync spread over the interval.
    let mut minutes = [0u32; 60];
    for i in 0..1000 {
        snapshot.phase = crate::controller::spread(&format!("uid-{i}"));
        snapshot.read_at = "2026-12-01T10:00:00Z".parse().unwrap();
        minutes[(snapshot.resync_at(interval).as_second() % 3600 / 60) as usize] += 1;
    }
    let busiest = *minutes.iter().max().unwrap();
    assert!(busiest <= 30, "the busiest minute has {busiest} of 1000 resyncs (mean 16.7)");
}

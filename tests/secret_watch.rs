//! The operator watches Secrets for metadata only: unrelated Secrets (Helm release Secrets are
//! ~100 KiB each, and every cluster has many) do not stream their data through it, so a restart
//! in a cluster full of them stays within the pod's memory limit. The full-size figures (2,000 and
//! 10,000 Secrets) belong to the scale benchmark; this is the slice that keeps it from rotting.

mod support;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use std::time::Duration;
use support::{ControllerProcess, World, wait_for};

const SECRETS: usize = 300;
const SECRET_BYTES: usize = 100 * 1024;

/// The peak resident set of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts a controller on the namespace and returns its peak RSS once its caches are synced.
async fn peak_after_sync(world: &World) -> u64 {
    let controller = ControllerProcess::start(&world.ns.name, &[]);
    wait_for("the controller's caches to sync", Duration::from_secs(120), || async {
        controller.log_text().contains("caches synced; ready").then_some(())
    })
    .await;
    // The watch streams keep delivering the initial list for a moment after the ready signal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    peak_rss_kib(controller.pid())
}

#[tokio::test]
async fn unrelated_large_secrets_do_not_raise_the_operators_memory() {
    let world = World::new("secret-watch").await;
    let baseline = peak_after_sync(&world).await;

    let payload: Vec<u8> = (0..SECRET_BYTES).map(|i| (i * 7 + i / 13) as u8).collect();
    let secrets = world.secrets();
    let uploads = (0..SECRETS).map(|i| {
        let secret = Secret {
            metadata: ObjectMeta { name: Some(format!("sh.helm.release.v1.app{i}.v1")), ..Default::default() },
            type_: Some("helm.sh/release.v1".into()),
            data: Some([("release".to_string(), ByteString(payload.clone()))].into()),
            ..Default::default()
        };
        let secrets = secrets.clone();
        async move { secrets.create(&PostParams::default(), &secret).await.map(|_| ()) }
    });
    let results = futures::future::join_all(uploads).await;
    assert!(results.iter().all(Result::is_ok), "creating the unrelated Secrets");

    let with_secrets = peak_after_sync(&world).await;
    let added_mib = with_secrets.saturating_sub(baseline) as f64 / 1024.0;
    let data_mib = (SECRETS * SECRET_BYTES) as f64 / (1024.0 * 1024.0);
    eprintln!(
        "peak RSS after sync: {:.1} MiB alone, {:.1} MiB beside {SECRETS} unrelated Secrets of 100 KiB \
         ({data_mib:.0} MiB of data): +{added_mib:.1} MiB",
        baseline as f64 / 1024.0,
        with_secrets as f64 / 1024.0
    );
    assert!(added_mib < 5.0, "+{added_mib:.1} MiB for {data_mib:.0} MiB of unrelated Secret data");
}

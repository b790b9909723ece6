//! Replicas of the operator under leader election, for the tests of failover.

use super::{ControllerProcess, World};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

/// Who holds Lease `name` of the test namespace now.
pub async fn lease_holder(world: &World, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.ns.name);
    leases.get_opt(name).await.ok()??.spec?.holder_identity.filter(|h| !h.is_empty())
}

fn lease_args(ns: &str, seconds: u64) -> Vec<String> {
    vec![
        "--leader-elect".into(),
        format!("--leader-election-lease-duration={seconds}s"),
        format!("--leader-election-namespace={ns}"),
    ]
}

/// A replica `identity` contending for the default Lease (`samlcred-controller`) with a lease of
/// `seconds`, as the identity of `kubeconfig` when given.
pub fn start_replica(
    world: &World,
    identity: &str,
    seconds: u64,
    kubeconfig: Option<&std::path::Path>,
) -> ControllerProcess {
    let args = lease_args(&world.ns.name, seconds);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut envs = vec![("POD_NAME", identity.to_string())];
    if let Some(path) = kubeconfig {
        envs.push(("KUBECONFIG", path.display().to_string()));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ControllerProcess::start_with(&[&world.ns.name], &args, &envs)
}

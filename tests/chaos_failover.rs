//! Failover under load (issue 13, part 3): a fleet of credentials, some of them mid-rotation, under
//! two replicas with leader election. The leader is killed (SIGKILL); frozen (SIGSTOP) past its lease
//! and thawed (SIGCONT) after the standby took over, when it must not write; and cut off from the API
//! server (each replica reaches it through a TCP gate of its own). Figures: takeover time against
//! the lease, Okta writes by a deposed leader (0, read from its own log), duplicate keys (0).
//!
//! Size: CHAOS_FAILOVER_N credentials (default 30; `make chaos` 1000), a tenth of them rotating
//! during each fault; CHAOS_LEASE_SECONDS (default 5; `make chaos` 15, the operator's default).

mod support;

use jiff::{SignedDuration, Timestamp};
use okta_sim::{RateLimits, SimConfig};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::chaos::{Gate, Rotating, all_converged, size};
use support::leader::{lease_holder, start_replica};
use support::{ControllerProcess, World, condition, wait_for};

const LONG: Duration = Duration::from_secs(600);
const LEASE: &str = "samlcred-controller";

/// A kubeconfig like the admin's whose server is `gate`.
fn lease_seconds() -> u64 {
    size("CHAOS_LEASE_SECONDS", 5)
}

fn gated_kubeconfig(gate: &Gate, name: &str) -> PathBuf {
    let plane = testenv::shared();
    let text = std::fs::read_to_string(plane.kubeconfig()).unwrap();
    let gated = text.replace(plane.server(), &gate.url().replace("http://", "https://"));
    let path = plane.dir().join(format!("kubeconfig-{name}"));
    std::fs::write(&path, gated).unwrap();
    path
}

/// Okta writes (POST, PUT, DELETE answered) that a replica's log records after `since`.
fn writes_after(replica: &ControllerProcess, since: Timestamp) -> usize {
    let log = replica.log_text();
    let writes = log.lines().filter(|l| {
        l.contains("Okta answered")
            && ["endpoint=\"POST", "endpoint=\"PUT", "endpoint=\"DELETE"].iter().any(|w| l.contains(w))
    });
    writes.filter(|l| l.split(' ').next().and_then(|t| t.parse::<Timestamp>().ok()).is_some_and(|t| t > since)).count()
}

struct Replicas {
    names: [&'static str; 2],
    gates: [Gate; 2],
    kubeconfigs: [PathBuf; 2],
    running: [Option<ControllerProcess>; 2],
    leader: usize,
}

impl Replicas {
    fn start(&mut self, world: &World, i: usize) {
        self.running[i] = Some(start_replica(world, self.names[i], lease_seconds(), Some(&self.kubeconfigs[i])));
    }

    fn leader(&mut self) -> &mut ControllerProcess {
        self.running[self.leader].as_mut().unwrap()
    }

    /// Waits for the standby to hold the lease; returns the time since `since`.
    async fn takeover(&mut self, world: &World, since: Instant) -> Duration {
        let standby = self.names[1 - self.leader];
        wait_for(&format!("{standby} to take over"), LONG, || async {
            (lease_holder(world, LEASE).await.as_deref() == Some(standby)).then_some(())
        })
        .await;
        since.elapsed()
    }

    /// The deposed replica comes back as the standby, as its pod would; leadership has moved.
    async fn restart_deposed(&mut self, world: &World) {
        let deposed = self.leader;
        self.start(world, deposed);
        let replica = self.running[deposed].as_ref().unwrap();
        wait_for("the restarted replica to wait for the lease", LONG, || async {
            replica.log_text().contains("waiting for the lease").then_some(())
        })
        .await;
        self.leader = 1 - deposed;
    }
}

/// Credentials whose keys expire soon: they rotate at once, and activate a few seconds after publishing.
async fn start_rotations(world: &World, prefix: &str, n: u64) -> Vec<Rotating> {
    let mut rotating = Vec::new();
    for i in 0..n {
        let app = world.seed_app(SignedDuration::from_hours(24 * 10));
        let name = format!("{prefix}-{i}");
        world.create_credential(&name, &app.id, json!({"activation": {"delay": "4s"}, "retainPrevious": "1s"})).await;
        rotating.push(Rotating { name, app_id: app.id, old_kid: app.kids[0].clone(), manual: false });
    }
    // The middle of a rotation: a new key published, not yet active.
    wait_for("a rotation to be mid-way", LONG, || async {
        world.credentials().get(&rotating[0].name).await.ok()?.status?.pending_key.map(|_| ())
    })
    .await;
    rotating
}

#[tokio::test]
async fn failover_under_load_keeps_one_writer_and_one_key_per_rotation() {
    let n = size("CHAOS_FAILOVER_N", 30);
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), reuse_stock_keys: true, ..SimConfig::default() };
    let world = World::with_sim("chaos-failover", sim).await;
    let started = Instant::now();
    for i in 0..n {
        let app = world.seed_app(SignedDuration::from_hours(24 * 365));
        world.create_credential(&format!("calm-{i}"), &app.id, json!({})).await;
    }
    let apiserver = testenv::shared().server().replace("https://", "http://");
    let gates = [Gate::open(&apiserver).await, Gate::open(&apiserver).await];
    let kubeconfigs = [gated_kubeconfig(&gates[0], "replica-a"), gated_kubeconfig(&gates[1], "replica-b")];
    let mut replicas =
        Replicas { names: ["replica-a", "replica-b"], gates, kubeconfigs, running: [None, None], leader: 0 };
    replicas.start(&world, 0);
    wait_for("replica-a to lead", LONG, || async {
        (lease_holder(&world, LEASE).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    replicas.start(&world, 1);
    wait_for(&format!("{n} credentials Ready"), LONG, || async {
        let list = world.credentials().list(&Default::default()).await.ok()?;
        let ready = list.items.iter().filter(|c| condition(c, "Ready").is_some_and(|r| r.0 == "True")).count();
        (ready as u64 >= n).then_some(())
    })
    .await;
    let fleet_ready = started.elapsed();

    let per_fault = (n / 10).max(3);
    let mut all = Vec::new();
    let mut figures = Vec::new();

    // 1. kill -9 the leader.
    let rotating = start_rotations(&world, "kill", per_fault).await;
    replicas.leader().kill();
    let takeover = replicas.takeover(&world, Instant::now()).await;
    figures.push(format!("kill -9: takeover={:.1}s", takeover.as_secs_f64()));
    replicas.restart_deposed(&world).await;
    all.extend(rotating);

    // 2. SIGSTOP the leader past its lease, SIGCONT it after the takeover: it must not write.
    let rotating = start_rotations(&world, "stop", per_fault).await;
    let pid = replicas.leader().pid() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let takeover = replicas.takeover(&world, Instant::now()).await;
    let thawed = Timestamp::now();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let code = replicas.leader().wait_exit(Duration::from_secs(60)).await;
    let deposed_writes = writes_after(replicas.leader(), thawed);
    figures.push(format!(
        "SIGSTOP/SIGCONT: takeover={:.1}s, the thawed leader exited with {code:?}, okta_writes_by_deposed_leader={deposed_writes}",
        takeover.as_secs_f64()
    ));
    assert_eq!(deposed_writes, 0, "the thawed leader wrote to Okta");
    replicas.restart_deposed(&world).await;
    all.extend(rotating);

    // 3. Cut the leader off from the API server: it stops before the standby acquires, and writes
    // nothing after.
    let rotating = start_rotations(&world, "cut", per_fault).await;
    let cut = Instant::now();
    replicas.gates[replicas.leader].close();
    let code = replicas.leader().wait_exit(Duration::from_secs(60)).await;
    let exited = cut.elapsed();
    let takeover = replicas.takeover(&world, cut).await;
    let acquired = Timestamp::now();
    let deposed_writes = writes_after(replicas.leader(), acquired - SignedDuration::from_secs(1));
    figures.push(format!(
        "cut off: the leader exited with {code:?} after {:.1}s, takeover={:.1}s, okta_writes_by_deposed_leader={deposed_writes}",
        exited.as_secs_f64(),
        takeover.as_secs_f64()
    ));
    assert!(exited < takeover, "the cut-off leader stopped before the standby acquired");
    replicas.gates[replicas.leader].reopen();
    replicas.restart_deposed(&world).await;
    all.extend(rotating);

    wait_for("every rotation to complete", LONG, || all_converged(&world, &all)).await;
    let duplicates: usize = all.iter().map(|r| world.sim.keys(&r.app_id).len().saturating_sub(2)).sum();
    println!(
        "failover under load: credentials={n} ready_in={:.0}s rotating_per_fault={per_fault} lease={}s",
        fleet_ready.as_secs_f64(),
        lease_seconds()
    );
    for line in &figures {
        println!("failover under load: {line}");
    }
    println!("failover under load: duplicate_keys={duplicates} (target: 0 writes by a deposed leader, 0 dup)");
    assert_eq!(duplicates, 0);
}

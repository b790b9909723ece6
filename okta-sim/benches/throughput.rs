//! Throughput of the simulator on loopback: requests per second for a cheap GET with the server
//! confined to one thread (one core), and the cost of one key generation.
//!
//! `cargo bench -p okta-sim --bench throughput` (bounded: about 15 seconds).

use std::time::{Duration, Instant};

use okta_sim::{OktaSim, RateLimits, SeedApp, SeedKey, SimConfig};

const TOKEN: &str = "bench-token";
const GET_DURATION: Duration = Duration::from_secs(4);
const CLIENT_TASKS: usize = 16;
const GENERATES: usize = 20;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The server: its own thread, a current-thread runtime, so it uses one core at most.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let config =
                SimConfig { rate_limits: RateLimits::unlimited(), concurrency_limit: 1024, ..SimConfig::default() };
            let sim = OktaSim::start(config).await.expect("start");
            sim.add_api_token(TOKEN);
            let now = sim.now();
            let key = SeedKey { not_before: now, not_after: now + jiff::SignedDuration::from_hours(24 * 365) };
            let app = tokio::task::spawn_blocking(move || {
                (sim.seed_app(SeedApp { id: None, label: "Bench".into(), keys: vec![key], active: 0 }), sim)
            })
            .await
            .expect("seed");
            let (app, sim) = app;
            url_tx.send((sim.base_url(), app.id)).expect("send url");
            let _ = stop_rx.await;
            sim.shutdown().await;
        });
    });
    let (base_url, app_id) = url_rx.recv().expect("server started");

    let client_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    client_runtime.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENT_TASKS).build().expect("client");

        // Cheap GET: the app instance, as the operator polls it.
        let url = format!("{base_url}/api/v1/apps/{app_id}");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CLIENT_TASKS {
            let (http, url) = (http.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut ok = 0u64;
                while started.elapsed() < GET_DURATION {
                    let response = http.get(&url).header("Authorization", format!("SSWS {TOKEN}")).send().await.expect("get");
                    assert_eq!(response.status(), 200);
                    let _ = response.bytes().await.expect("body");
                    ok += 1;
                }
                ok
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("task");
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "cheap GET /api/v1/apps/{{id}}: {total} requests in {elapsed:.2} s = {:.0} requests/s ({CLIENT_TASKS} concurrent clients, server on one thread)",
            total as f64 / elapsed
        );

        // Generate: one at a time, as the operator does.
        let generate = format!("{base_url}/api/v1/apps/{app_id}/credentials/keys/generate?validityYears=2");
        let mut costs = Vec::new();
        for _ in 0..GENERATES {
            let t = Instant::now();
            let response = http.post(&generate).header("Authorization", format!("SSWS {TOKEN}")).send().await.expect("generate");
            assert_eq!(response.status(), 201);
            let _ = response.bytes().await.expect("body");
            costs.push(t.elapsed());
        }
        costs.sort();
        let mean = costs.iter().sum::<Duration>() / GENERATES as u32;
        println!(
            "POST .../credentials/keys/generate: mean {:.2} ms, median {:.2} ms, max {:.2} ms over {GENERATES} calls (RSA keys from the pool)",
            mean.as_secs_f64() * 1e3,
            costs[GENERATES / 2].as_secs_f64() * 1e3,
            costs[GENERATES - 1].as_secs_f64() * 1e3
        );
    });

    // What the pool hides: generating one RSA-2048 key from scratch.
    let t = Instant::now();
    for _ in 0..3 {
        let _ = okta_sim::keypool::generate();
    }
    println!(
        "RSA-2048 key generation from scratch: {:.0} ms per key (mean of 3)",
        t.elapsed().as_secs_f64() * 1e3 / 3.0
    );

    let _ = stop_tx.send(());
    server.join().expect("server thread");
}

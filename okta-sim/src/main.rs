//! The `okta-sim` binary: the simulator as a standalone process, for the local demo.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use okta_sim::{BucketLimit, OktaSim, RateLimits, SeedApp, SeedKey, SimConfig};

#[derive(Parser, Debug)]
#[command(
    name = "okta-sim",
    version,
    about = "A stand-in for Okta's Apps API (SAML app signing keys), for samlcred's tests and demo",
    long_about = "A stand-in for Okta's Apps API (SAML app signing keys), for samlcred's tests and demo.\n\n\
        Serves plain HTTP on loopback: /api/v1/apps (list, get, replace), \
        /api/v1/apps/{id}/credentials/keys (list, get, generate, clone), \
        /api/v1/apps/{id}/sso/saml/metadata, /oauth2/v1/token (client credentials, private_key_jwt, DPoP) \
        and each app's SSO URL /app/{name}/{externalKey}/sso/saml (IdP-initiated sign-ins, signed SAML responses). \
        Prints its base URL on stdout once listening; logs go to stderr (RUST_LOG, default info).",
    after_help = okta_sim::control::ROUTES
)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// SSWS API token to accept (repeatable, or comma-separated in the env variable).
    #[arg(long = "api-token", env = "OKTA_SIM_API_TOKEN", value_delimiter = ',', hide_env_values = true)]
    api_tokens: Vec<String>,
    /// Seed a demo SAML app whose active key expires in 30 days (its id is logged).
    #[arg(long)]
    seed_demo: bool,
    /// Per-window limit of the /api/v1/apps* bucket (Okta: 100 per minute).
    #[arg(long, default_value_t = 100)]
    apps_collection_limit: u32,
    /// Per-window limit of the /api/v1/apps/{id} bucket (Okta: 500 per minute).
    #[arg(long, default_value_t = 500)]
    app_instance_limit: u32,
    /// Per-window limit of /oauth2/v1/token.
    #[arg(long, default_value_t = 600)]
    token_limit: u32,
    /// Length of every rate-limit window, in milliseconds (Okta: one minute).
    #[arg(long, default_value_t = 60_000)]
    rate_window_ms: u64,
    /// Requests served at once before answering 429 (Okta: 75).
    #[arg(long, default_value_t = 75)]
    concurrency_limit: usize,
    /// Org name: CN of generated certificates.
    #[arg(long, default_value = "samlcred-sim")]
    org_name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let window = Duration::from_millis(args.rate_window_ms);
    let config = SimConfig {
        bind: args.bind,
        rate_limits: RateLimits {
            apps_collection: BucketLimit { limit: args.apps_collection_limit, window },
            app_instance: BucketLimit { limit: args.app_instance_limit, window },
            token: BucketLimit { limit: args.token_limit, window },
        },
        concurrency_limit: args.concurrency_limit,
        org_name: args.org_name,
        reuse_stock_keys: false,
    };
    okta_sim::keypool::prewarm();
    let sim = OktaSim::start(config).await?;
    for token in args.api_tokens.iter().filter(|t| !t.is_empty()) {
        sim.add_api_token(token);
    }
    if args.seed_demo {
        let now = sim.now();
        let seeded = tokio::task::block_in_place(|| {
            sim.seed_app(SeedApp {
                id: None,
                label: "Demo SAML App".to_string(),
                keys: vec![SeedKey {
                    not_before: now - jiff::SignedDuration::from_hours(24 * 335),
                    not_after: now + jiff::SignedDuration::from_hours(24 * 30),
                }],
                active: 0,
            })
        });
        tracing::info!(app_id = %seeded.id, kid = %seeded.kids[0], "seeded demo app");
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", sim.base_url())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

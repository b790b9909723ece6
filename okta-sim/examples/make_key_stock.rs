//! Regenerates `keys/stock.b64`, the stock of real RSA-2048 keys okta-sim hands out before its
//! background generator has produced any (see src/keypool.rs). Run in release, it takes a minute:
//! `cargo run --release -p okta-sim --example make_key_stock -- 400 > okta-sim/keys/stock.b64`

use base64::Engine as _;

fn main() {
    let count: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(128);
    for _ in 0..count {
        println!("{}", base64::engine::general_purpose::STANDARD.encode(okta_sim::keypool::generate()));
    }
}

//! Where RSA-2048 private keys come from.
//!
//! Generating an RSA-2048 key takes 8-20 s in a debug build here (the bignum code is not
//! optimised), far too slow for tests that seed dozens of keys. So keys come, in this order, from:
//! 1. keys generated in the background by this process (a small pool kept topped up), then
//! 2. a stock of real keys generated once with `cargo run --release --example make_key_stock`
//!    and shipped in `keys/stock.b64`, handed out in a random order, each at most once per process,
//! 3. and, when both are empty, the caller waits for the generator.
//!
//! Every key handed out is therefore real and distinct within the process. In a release build the
//! generator starts at once; in a debug build it starts only when the stock runs low, so tests do
//! not spend a core on key generation they will never need.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::seq::SliceRandom as _;
use rsa::pkcs8::EncodePrivateKey as _;

const STOCK: &str = include_str!("../keys/stock.b64");
/// How many background-generated keys to keep ready.
const FRESH_TARGET: usize = 4;
/// In debug builds, start generating when fewer stock keys than this are left.
const STOCK_LOW_WATER: usize = 16;

struct Pool {
    state: Mutex<PoolState>,
    changed: Condvar,
}

struct PoolState {
    fresh: VecDeque<Vec<u8>>,
    stock_left: Vec<&'static str>,
    generator_started: bool,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut stock_left: Vec<&'static str> = STOCK.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        stock_left.shuffle(&mut rand::rng());
        Pool {
            state: Mutex::new(PoolState { fresh: VecDeque::new(), stock_left, generator_started: false }),
            changed: Condvar::new(),
        }
    })
}

/// A PKCS#8 DER RSA-2048 private key that no one else in this process has been given.
pub fn take() -> Vec<u8> {
    let pool = pool();
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if !cfg!(debug_assertions) || state.stock_left.len() < STOCK_LOW_WATER {
            start_generator(&mut state);
        }
        if let Some(key) = state.fresh.pop_front() {
            pool.changed.notify_all(); // the generator may refill
            return key;
        }
        if let Some(line) = state.stock_left.pop() {
            match STANDARD.decode(line) {
                Ok(der) => return der,
                Err(_) => continue, // a damaged stock line: skip it
            }
        }
        start_generator(&mut state);
        state = pool.changed.wait(state).unwrap_or_else(|e| e.into_inner());
    }
}

/// A key of the stock, the next one in a fixed cycle: the same key goes to several callers. For
/// [`crate::SimConfig::reuse_stock_keys`], never for the pool's own callers, which need distinct keys.
pub fn stock_key_round_robin() -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static LINES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let lines = LINES.get_or_init(|| STOCK.lines().map(str::trim).filter(|l| !l.is_empty()).collect());
    let start = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A damaged stock line is skipped, as in `take`; the shipped stock has none.
    (0..lines.len())
        .find_map(|i| STANDARD.decode(lines[(start + i) % lines.len()]).ok())
        .expect("the key stock holds no valid key")
}

/// Starts background generation now (the standalone binary does, so keys are ready when asked for).
pub fn prewarm() {
    let mut state = pool().state.lock().unwrap_or_else(|e| e.into_inner());
    start_generator(&mut state);
}

/// Generates one RSA-2048 key now, in this thread.
pub fn generate() -> Vec<u8> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key generation");
    key.to_pkcs8_der().expect("PKCS#8 encoding of an RSA key").as_bytes().to_vec()
}

fn start_generator(state: &mut PoolState) {
    if state.generator_started {
        return;
    }
    state.generator_started = true;
    let spawned = std::thread::Builder::new().name("okta-sim-rsa-keygen".into()).spawn(|| {
        let pool = pool();
        loop {
            {
                let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
                while state.fresh.len() >= FRESH_TARGET {
                    state = pool.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
            let key = generate();
            pool.state.lock().unwrap_or_else(|e| e.into_inner()).fresh.push_back(key);
            pool.changed.notify_all();
        }
    });
    if spawned.is_err() {
        state.generator_started = false;
    }
}

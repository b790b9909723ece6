//! Fuzzed decoders (issue 13, part 5), on stable Rust: property tests (proptest) over everything
//! samlcred decodes from Okta or from a user. Okta's JSON answers (apps, key credentials, with the
//! x5c certificate behind them), DER certificates, Okta's error bodies, IdP metadata XML, rate-limit
//! headers, duration strings and private keys (PEM and JWK).
//!
//! Each target replays its committed corpus (`tests/fuzz/corpus/<target>/`) and then runs cases that
//! are either arbitrary bytes or a corpus seed put through random mutations (bytes flipped, inserted,
//! deleted, truncated, or JSON/XML/PEM tokens spliced in). A panic anywhere fails the target with the
//! shrunk input. `cargo test --lib fuzz_tests` runs FUZZ_CASES (default 64) cases per target;
//! `make fuzz` runs each for FUZZ_SECONDS.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::time::{Duration, Instant, SystemTime};

/// Fragments spliced into inputs: what breaks JSON, XML, PEM and number parsers.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\\u0000",
    "\\ud800",
    "<",
    ">",
    "</",
    "/>",
    "<!--",
    "<![CDATA[",
    "&amp;",
    "&#0;",
    "xmlns:ds=\"x\"",
    "-----BEGIN CERTIFICATE-----",
    "-----END",
    "-----BEGIN PRIVATE KEY-----",
    "=",
    "\n",
    "\u{feff}",
    "é",
    "h",
    "ms",
    ".",
    "0",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::Splice(i, t)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *m {
            Mutation::Flip(i, b) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] ^= b;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, b) => bytes.insert(at(i, bytes.len()), b),
            Mutation::Delete(i, n) => {
                let start = at(i, bytes.len());
                bytes.drain(start..(start + n).min(bytes.len()));
            }
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Mutation::Splice(i, t) => {
                let start = at(i, bytes.len());
                bytes.splice(start..start, TOKENS[t].bytes());
            }
        }
    }
    bytes
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "corpus {} is empty", dir.display());
    seeds
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `check` over the corpus of `target`, then over mutated seeds and arbitrary bytes: FUZZ_CASES
/// cases, repeated until FUZZ_SECONDS have passed when that is set.
fn fuzz(target: &str, check: impl Fn(&[u8])) {
    let seeds = corpus(target);
    for seed in &seeds {
        check(seed);
    }
    let cases = env_number("FUZZ_CASES", 64) as u32;
    let until = Instant::now() + Duration::from_secs(env_number("FUZZ_SECONDS", 0));
    let inputs = prop_oneof![
        3 => (proptest::sample::select(seeds.clone()), proptest::collection::vec(mutation(), 1..8))
            .prop_map(|(seed, ms)| mutate(seed, &ms)),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ];
    let mut total = 0u64;
    loop {
        let config = Config { cases, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        if let Err(failure) = runner.run(&inputs, |input| {
            check(&input);
            Ok(())
        }) {
            panic!("fuzz {target}: {failure}");
        }
        total += u64::from(cases);
        if Instant::now() >= until {
            break;
        }
    }
    println!("fuzz {target}: corpus={} cases={total} panics=0", seeds.len());
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn okta_json_answers() {
    use crate::okta::{Application, KeyCredential};
    fuzz("okta_json", |bytes| {
        let _ = serde_json::from_slice::<Application>(bytes).map(|app| app.active_kid().map(str::len));
        let _ = serde_json::from_slice::<Vec<Application>>(bytes);
        for key in serde_json::from_slice::<Vec<KeyCredential>>(bytes).unwrap_or_default() {
            let _ = key.certificate().map(|c| c.to_pem());
        }
        if let Ok(key) = serde_json::from_slice::<KeyCredential>(bytes) {
            // Any error names what was wrong, and prints without panicking.
            let _ = key.certificate().map_err(|e| e.to_string());
        }
    });
}

#[test]
fn certificates() {
    fuzz("certificate", |bytes| {
        if let Ok(info) = crate::okta::CertificateInfo::from_der(bytes.to_vec()) {
            assert_eq!(info.der, bytes);
            let _ = info.to_pem();
        }
    });
}

#[test]
fn okta_error_bodies() {
    use crate::okta::OktaError;
    fuzz("error_body", |bytes| {
        for status in [400, 401, 403, 404, 429, 500, 503, 599] {
            let err = OktaError::from_status(status, bytes, Duration::from_secs(1));
            let _ = (err.to_string(), format!("{err:?}"), err.kind(), err.class(), err.error_id(), err.retry_after());
        }
    });
}

#[test]
fn idp_metadata_xml() {
    use crate::metadata::{signing_certificates, with_signing_certificates};
    fuzz("metadata", |bytes| {
        let document = text(bytes);
        let _ = signing_certificates(&document);
        let certificates: [&[u8]; 2] = [b"first certificate", b"second"];
        // Whatever the document, what is written in is what is read back.
        if let Ok(rendered) = with_signing_certificates(&document, &certificates) {
            let read = signing_certificates(&rendered).expect("samlcred reads the metadata it wrote");
            assert_eq!(read, certificates.map(<[u8]>::to_vec), "{rendered}");
        }
    });
}

#[test]
fn rate_limit_headers() {
    use crate::okta::ratelimit::{MAX_RESET_AHEAD, RateLimitHeaders};
    fuzz("rate_limit_headers", |bytes| {
        let text = text(bytes);
        let mut values = text.split('\n');
        let mut headers = http::HeaderMap::new();
        for name in ["x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset", "date"] {
            if let Some(value) = values.next().and_then(|v| http::HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        let parsed = RateLimitHeaders::parse(&headers, SystemTime::now());
        // A Reset further ahead than this is never believed: no wait can be longer.
        assert!(parsed.reset_after() <= MAX_RESET_AHEAD + Duration::from_secs(1), "{parsed:?}");
    });
}

#[test]
fn duration_strings() {
    use crate::api::duration::parse;
    fuzz("duration", |bytes| {
        let text = text(bytes);
        if let Ok(parsed) = parse(&text) {
            // Only the schema's forms parse: digits, dots and units, never a sign or a space.
            assert!(text.bytes().all(|b| b.is_ascii_digit() || b".nsumh".contains(&b)), "{text:?} -> {parsed:?}");
        }
    });
}

#[test]
fn private_keys() {
    use crate::okta::PrivateKey;
    fuzz("private_key", |bytes| {
        if let Err(err) = PrivateKey::parse(&text(bytes)) {
            let message = err.to_string();
            // An error about a key never carries the key.
            for line in text(bytes).lines().filter(|l| l.len() >= 16 && !l.starts_with("-----")) {
                assert!(!message.contains(line), "the error quotes the key: {message}");
            }
        }
    });
}

proptest! {
    #![proptest_config(Config { cases: env_number("FUZZ_CASES", 64) as u32, failure_persistence: None, ..Config::default() })]

    /// Compound durations parse to the sum of their parts.
    #[test]
    fn durations_add_up(h in 0u64..10_000, m in 0u64..600, s in 0u64..600) {
        let parsed = crate::api::duration::parse(&format!("{h}h{m}m{s}s")).unwrap();
        prop_assert_eq!(parsed, Duration::from_secs(h * 3600 + m * 60 + s));
    }
}

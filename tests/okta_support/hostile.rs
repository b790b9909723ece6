//! Servers that answer like no well-behaved Okta would, for the tests that prove bad answers never
//! crash or hang the client: raw TCP servers that write whatever bytes a test wants (endless
//! bodies, trickles, endless headers), and a small Okta look-alike whose clock is off and whose
//! 429s may come from the concurrency limit.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback server that reads each request's head and hands the connection to `answer`, which
/// writes whatever it likes. Returns the base URL.
pub async fn raw_server<F, Fut>(answer: F) -> String
where
    F: Fn(TcpStream) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if read_head(&mut stream).await {
                    answer(stream).await;
                }
            });
        }
    });
    base
}

/// Reads up to the blank line that ends a request head; false if the client went away first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Writes `head`, then `chunk` every `pause` until `total` bytes of body went out (or the client
/// hung up), then keeps the connection open without a word.
pub async fn stream_body(mut stream: TcpStream, head: &str, chunk: &[u8], pause: Duration, total: usize) {
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut sent = 0;
    while sent < total {
        if stream.write_all(chunk).await.is_err() {
            return;
        }
        sent += chunk.len();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    std::future::pending::<()>().await;
}

/// What the look-alike saw of one request: the window (by Okta's clock) it fell in, and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub window: u64,
    pub status: u16,
}

/// How the look-alike behaves.
#[derive(Debug, Clone, Copy)]
pub struct LookAlike {
    /// Requests per window.
    pub limit: u32,
    /// Fixed windows of this many seconds, aligned on Okta's epoch.
    pub window_secs: u64,
    /// Okta's clock minus the real one, in seconds (negative: Okta is behind).
    pub skew_secs: i64,
    /// Every n-th request is refused by the concurrency limit (`None`: never).
    pub concurrency_refusal_every: Option<u32>,
}

struct Book {
    config: LookAlike,
    /// Requests counted against the bucket, per window.
    counted: std::collections::HashMap<u64, u32>,
    /// Requests so far, of any outcome.
    requests: u32,
}

/// An Okta look-alike that serves `GET /api/v1/apps` (an empty page) with Okta's rate-limit
/// headers, `Date` and `X-Rate-Limit-Reset` on its own, possibly skewed, clock. Returns the base
/// URL and the log of what it saw.
pub async fn look_alike(config: LookAlike) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let book = Arc::new(Mutex::new(Book { config, counted: Default::default(), requests: 0 }));
    let seen_log = Arc::new(Mutex::new(Vec::new()));
    let (log, state) = (seen_log.clone(), book.clone());
    let router = axum::Router::new().fallback(move || {
        let (log, state) = (log.clone(), state.clone());
        async move {
            let (response, seen) = answer(&mut state.lock().unwrap());
            log.lock().unwrap().push(seen);
            response
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, seen_log)
}

fn answer(book: &mut Book) -> (Response, Seen) {
    let config = book.config;
    let okta_now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(config.skew_secs);
    let okta_secs = okta_now.as_second().unsigned_abs();
    let window = okta_secs / config.window_secs;
    let reset = (window + 1) * config.window_secs;
    book.requests += 1;
    let number = book.requests;
    let mut headers = HeaderMap::new();
    let date = jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&okta_now).unwrap();
    headers.insert("date", HeaderValue::from_str(&date).unwrap());
    let set = |headers: &mut HeaderMap, limit: u32, remaining: u32, reset: u64| {
        headers.insert("x-rate-limit-limit", limit.into());
        headers.insert("x-rate-limit-remaining", remaining.into());
        headers.insert("x-rate-limit-reset", reset.into());
    };
    let refused_for_concurrency = config.concurrency_refusal_every.is_some_and(|n| number.is_multiple_of(n));
    let (status, body) = if refused_for_concurrency {
        // Okta's concurrency 429 reports the concurrency limit and an estimated reset; every other
        // such refusal claims room left, as the headers of a concurrency 429 may.
        let remaining = if number.is_multiple_of(2) { 0 } else { 74 };
        set(&mut headers, 75, remaining, okta_secs + 1);
        (StatusCode::TOO_MANY_REQUESTS, too_many())
    } else {
        let used = book.counted.entry(window).or_default();
        if *used >= config.limit {
            set(&mut headers, config.limit, 0, reset);
            (StatusCode::TOO_MANY_REQUESTS, too_many())
        } else {
            *used += 1;
            set(&mut headers, config.limit, config.limit - *used, reset);
            (StatusCode::OK, "[]".to_string())
        }
    };
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    ((status, headers, body).into_response(), Seen { window, status: status.as_u16() })
}

fn too_many() -> String {
    serde_json::json!({
        "errorCode": "E0000047",
        "errorSummary": "API call exceeded rate limit due to too many requests.",
        "errorLink": "E0000047",
        "errorId": "oaeLookAlike",
        "errorCauses": []
    })
    .to_string()
}

/// Requests per window (any status), in window order.
pub fn per_window(seen: &[Seen]) -> Vec<(u64, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for s in seen {
        *counts.entry(s.window).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

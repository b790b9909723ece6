//! The HTTP server: our own accept loop (so a fault can reset a connection), the router, and
//! the pipeline every Okta API call goes through.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_service_compat::oneshot;

use crate::auth::{self, oauth};
use crate::config::{CallRecord, FaultKind};
use crate::errors::OktaError;
use crate::ratelimit::Verdict;
use crate::routes::Route;
use crate::state::SimState;
use crate::{apps, control, credentials, faults, sso};

/// Largest request body accepted (PUT app, token requests).
const MAX_BODY: usize = 1 << 20;

/// Put into each request so a handler can have its connection reset.
#[derive(Clone)]
struct ConnectionKill(Arc<Notify>);

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .nest("/__sim", control::router())
        .route("/app/{name}/{external_key}/sso/saml", axum::routing::get(sso::endpoint).post(sso::endpoint))
        .fallback(api)
        .with_state(state)
}

/// Accepts connections until `stop` changes.
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            // A second handle on the socket, to set SO_LINGER=0 before the last close: a reset.
            let Ok(std_stream) = stream.into_std() else { return };
            let Ok(spare) = std_stream.try_clone() else { return };
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else { return };
            let kill = Arc::new(Notify::new());
            let kill_for_requests = kill.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectionKill(kill_for_requests.clone()));
                oneshot(router.clone(), request.map(Body::new))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = kill.notified() => {
                    if let Ok(spare) = tokio::net::TcpStream::from_std(spare) {
                        let _ = spare.set_zero_linger();
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}

/// Every call outside `/__sim`: limits, faults, auth, the endpoint, the call log.
async fn api(State(state): State<Arc<SimState>>, request: Request) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let auth_label = auth::scheme_label(request.headers());
    let at = state.now();
    let kill = request.extensions().get::<ConnectionKill>().cloned();

    // Okta finishes a call even when the client hangs up (say, after its timeout during a
    // latency fault): the work runs in its own task, which dropping this handler does not cancel.
    let work = tokio::spawn(async move {
        let (mut response, verdict, fault_after) = answer(&state, &method, &path, query.as_deref(), request).await;
        response = match &fault_after {
            Some(FaultKind::TruncatedBody) => faults::truncate(response).await,
            Some(FaultKind::NonJsonBody) => faults::non_json(response),
            _ => response,
        };
        add_rate_headers(response.headers_mut(), verdict);
        if let Some(FaultKind::RateLimitHeaders(values)) = &fault_after {
            faults::override_rate_headers(response.headers_mut(), values);
        }
        let reset = fault_after == Some(FaultKind::ConnectionReset);
        let status = if reset { 0 } else { response.status().as_u16() };
        tracing::debug!(%method, %path, status, "okta call");
        state.record_call(CallRecord { method: method.to_string(), path, query, status, auth: auth_label, at });
        (response, reset)
    });
    let Ok((response, reset)) = work.await else {
        return OktaError::internal().into_response();
    };
    if reset && let Some(ConnectionKill(kill)) = kill {
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    response
}

/// The answer before any post-processing fault; also the rate verdict and the fault to apply.
async fn answer(
    state: &Arc<SimState>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    request: Request,
) -> (Response<Body>, Verdict, Option<FaultKind>) {
    let route = Route::of(path);
    let Some(_slot) = state.concurrency.try_enter() else {
        // Okta reports the concurrency limit itself in the headers of such a 429.
        let limit = u32::try_from(state.concurrency.limit()).unwrap_or(u32::MAX);
        let reset = jiff::Timestamp::now().as_second().unsigned_abs() + 1;
        let verdict = Verdict { allowed: false, limit, remaining: 0, reset };
        return (OktaError::too_many_requests().into_response(), verdict, None);
    };
    let verdict = state.rate.admit(route.bucket());
    if !verdict.allowed {
        return (OktaError::too_many_requests().into_response(), verdict, None);
    }
    let fault = state.faults.take(method, path);
    match &fault {
        Some(FaultKind::Status { status, error_code, summary }) => {
            return (faults::status_response(*status, error_code, summary), verdict, None);
        }
        Some(FaultKind::Latency(delay)) => tokio::time::sleep(*delay).await,
        Some(FaultKind::RateLimitHeaders(values)) if values.refuse => {
            return (OktaError::too_many_requests().into_response(), verdict, fault);
        }
        _ => {}
    }
    let response = endpoint(state, &route, method, path, query, request).await;
    (response, verdict, fault.filter(|f| !matches!(f, FaultKind::Latency(_))))
}

async fn endpoint(
    state: &Arc<SimState>,
    route: &Route,
    method: &Method,
    path: &str,
    query: Option<&str>,
    request: Request,
) -> Response<Body> {
    let origin = origin(state, request.headers());
    if let Some(methods) = route.methods()
        && !methods.contains(method)
    {
        let mut response = OktaError::method_not_allowed().into_response();
        let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        if let Ok(v) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        return response;
    }
    if *route == Route::Token {
        let headers = request.headers().clone();
        let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
            return OktaError::malformed_body().into_response();
        };
        let now = state.now();
        let token_url = format!("{origin}{}", oauth::TOKEN_PATH);
        return oauth::token(&mut state.auth(), &headers, &body, &token_url, now);
    }
    let request_url = format!("{origin}{path}");
    let need = route.need(method);
    let now = state.now();
    if let Err(denied) = auth::authorize(&mut state.auth(), request.headers(), method, &request_url, need, now) {
        return denied.into_response();
    }
    match route {
        Route::Apps => apps::list(state, query),
        Route::App(id) if method == Method::GET => apps::get(state, id),
        Route::App(id) => match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
            Ok(body) => apps::replace(state, id, &body),
            Err(_) => OktaError::malformed_body().into_response(),
        },
        Route::Keys(id) => credentials::list(state, id),
        Route::GenerateKey(id) => credentials::generate(state.clone(), id, query).await,
        Route::Key(id, kid) => credentials::get(state, id, kid),
        Route::CloneKey(id, kid) => credentials::clone(state, id, kid, query),
        Route::Metadata(id) => credentials::metadata(state, id, query),
        Route::Token | Route::OtherApps | Route::Unknown => OktaError::no_such_endpoint(path).into_response(),
    }
}

/// `http://<host the client addressed>`: what DPoP `htu` and assertion `aud` must name.
fn origin(state: &SimState, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| state.base_url.clone(), |host| format!("http://{host}"))
}

fn add_rate_headers(headers: &mut HeaderMap, verdict: Verdict) {
    headers.insert("x-rate-limit-limit", HeaderValue::from(verdict.limit));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(verdict.remaining));
    headers.insert("x-rate-limit-reset", HeaderValue::from(verdict.reset));
}

/// `tower::ServiceExt::oneshot` without depending on tower directly.
mod tower_service_compat {
    use std::convert::Infallible;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, Response};

    pub async fn oneshot(router: Router, request: Request<Body>) -> Result<Response<Body>, Infallible> {
        use tower_service::Service as _;
        let mut router = router;
        std::future::poll_fn(|cx| tower_service::Service::<Request<Body>>::poll_ready(&mut router, cx)).await?;
        router.call(request).await
    }
}

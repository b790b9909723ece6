//! The HTTPS server of the webhook: TLS with the certificate the Secret holds now (swapped in place
//! when it is renewed), HTTP/1.1, and bounds on everything a client controls: handshake and header
//! time, body size and time, connections at once and their age.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::pki::Material;
use super::review;

/// The one path the webhook configuration calls.
pub const PATH: &str = "/validate/samlappcredentials";
/// An AdmissionReview holds the object and, on update, its old version: etcd keeps objects below
/// 1.5 MiB, so 8 MiB is room enough and still bounds what one request can make us hold.
pub const MAX_BODY_BYTES: usize = 8 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than any webhook timeout (30 s at most); a kept-alive connection is closed after this.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
const MAX_CONNECTIONS: usize = 128;

/// The certificate served now; none until the Secret has been read (handshakes fail until then).
#[derive(Debug, Default)]
pub struct ServingCert(RwLock<Option<Arc<CertifiedKey>>>);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the serving certificate is unreadable")]
    Certificate,
    #[error("the serving key is unreadable")]
    Key,
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl ServingCert {
    /// Serves `material`'s certificate from the next handshake on.
    pub fn set(&self, material: &Material) -> Result<(), TlsError> {
        let chain = CertificateDer::pem_slice_iter(material.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::Certificate)?;
        if chain.is_empty() {
            return Err(TlsError::Certificate);
        }
        // The error would not name the key's bytes, but there is nothing in it worth logging.
        let key = PrivateKeyDer::from_pem_slice(material.key.as_bytes()).map_err(|_| TlsError::Key)?;
        let signer = rustls::crypto::ring::default_provider().key_provider.load_private_key(key)?;
        let certified = Arc::new(CertifiedKey::new(chain, signer));
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(certified);
        Ok(())
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// The TLS settings: ring (the project's one provider), the resolver above, HTTP/1.1 only.
pub fn acceptor(serving: Arc<ServingCert>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the process ends.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: give the others time to close.
                tracing::warn!("webhook: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "webhook: {MAX_CONNECTIONS} connections open; refusing another");
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, "webhook: TLS handshake: {e}"),
                Err(_) => return tracing::debug!(%peer, "webhook: TLS handshake timed out"),
            };
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service_fn(handle));
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result { tracing::debug!(%peer, "webhook: connection: {e}") }
                }
                _ = tokio::time::sleep(MAX_CONNECTION_AGE) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(BODY_TIMEOUT, connection).await;
                }
            }
        });
    }
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != PATH {
        return Ok(text(StatusCode::NOT_FOUND, format!("not found; AdmissionReviews go to {PATH}")));
    }
    if request.method() != Method::POST {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview".into()));
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
    let body = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes")));
        }
        Ok(Err(e)) => return Ok(text(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
        Err(_) => return Ok(text(StatusCode::REQUEST_TIMEOUT, "the body took too long".into())),
    };
    let answer = review::answer(&body);
    if let Some(response) = &answer.review.response
        && !response.allowed
    {
        tracing::info!(uid = %response.uid, "admission denied: {}", response.result.message);
    }
    let status = if answer.decoded { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    match serde_json::to_vec(&answer.review) {
        Ok(json) => Ok(reply(status, "application/json", json)),
        Err(e) => Ok(text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding the AdmissionReview: {e}"))),
    }
}

fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", message.into_bytes())
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

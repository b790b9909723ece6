//! A panic in one reconcile costs that reconcile, not the process.
//!
//! kube-runtime polls the reconcile futures inside the controller's stream, which the process's main
//! task drives: a panic there would unwind through every controller and end the process, stopping
//! the rotation of every other credential. [`guarded`] catches it instead, counts it
//! (`samlcred_reconcile_panics_total`), records a Warning event `ReconcilePanicked` on the object,
//! and hands the error policy an error, so the object is tried again later like any failure.
//!
//! The panic's message is never passed on: it could quote anything the code held, a token
//! included. The event and the log say where it happened (file and line), which is what a bug
//! report needs. A panic hook, installed once, keeps that location for the catching poll, and keeps
//! the message out of stderr for panics inside a guarded reconcile (others print as usual).

use super::Context;
use crate::api::events;
use futures::FutureExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

/// What a guarded reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("the reconcile panicked at {location}")]
    Panicked { location: String },
}

/// How long after a panic the object is tried again: a bug will not go away in seconds, and each
/// attempt records an event.
pub const PANIC_RETRY: Duration = Duration::from_secs(30);

thread_local! {
    /// True while this thread polls a guarded reconcile.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic of a guarded reconcile on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.get() {
                let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.set(location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks the thread as inside a guarded reconcile for one poll; unmarked on drop, even when the
/// poll unwinds.
struct Marked;

impl Marked {
    fn enter() -> Marked {
        GUARDED.set(true);
        Marked
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        GUARDED.set(false);
    }
}

/// A future whose every poll runs marked.
struct MarkedPolls<F>(Pin<Box<F>>);

impl<F: Future> Future for MarkedPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _marked = Marked::enter();
        self.0.as_mut().poll(cx)
    }
}

/// Runs `future`; a panic inside it becomes `Err` with the location of the panic.
pub async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    install_hook();
    AssertUnwindSafe(MarkedPolls(Box::pin(future)))
        .catch_unwind()
        .await
        .map_err(|_payload| LOCATION.take().unwrap_or_else(|| "an unknown location".to_string()))
}

/// Runs one reconcile of `object`; a panic in it is counted, reported as an event on the object,
/// and returned as [`ReconcileError::Panicked`].
pub async fn guarded<K, F, Fut>(object: Arc<K>, ctx: Arc<Context>, reconcile: F) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, kube::Error>>,
{
    match catch_panic(reconcile(object.clone(), ctx.clone())).await {
        Ok(result) => result.map_err(ReconcileError::Kube),
        Err(location) => {
            let kind = K::kind(&());
            ctx.metrics.reconcile_panic(&kind);
            let (name, namespace) = (object.name_any(), object.namespace().unwrap_or_default());
            tracing::error!(%kind, name, namespace, location, "reconcile panicked (a bug); abandoned, retried later");
            let note = format!(
                "a reconcile of this {kind} panicked at {location} (a bug in samlcred); it was abandoned and is \
                 retried in {}s, the operator goes on",
                PANIC_RETRY.as_secs()
            );
            ctx.publish(&*object, EventType::Warning, events::RECONCILE_PANICKED, &note, "Reconcile").await;
            Err(ReconcileError::Panicked { location })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_location() {
        let location = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("secret-looking text");
        })
        .await
        .unwrap_err();
        assert!(location.starts_with("src/controller/guard.rs:"), "{location}");
        assert!(!location.contains("secret"), "{location}");
        assert!(!GUARDED.get(), "the thread is unmarked after the unwind");
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
    }
}

//! A watcher that relists when the API server says its resourceVersion is gone.
//!
//! kube-runtime's watcher resumes a closed watch at the resourceVersion it last saw. When the API
//! server refuses to start a watch there (410 Gone, `too old resource version`: after a
//! kube-apiserver restart its watch cache begins at etcd's current revision), the watcher retries
//! the same resourceVersion under its backoff, again and again; only a 410 inside a running watch
//! makes it list afresh. Meanwhile its store is frozen: new credentials went unseen for minutes
//! after an API server restart (docs/chaos.md). This stream starts a new watcher (a list, then a
//! watch from the list's resourceVersion) on such a refusal instead.
//!
//! A kube-runtime Controller backs its trigger streams off together: by default every error of
//! any of them (a Secret watch that cannot connect, an org watch's 410) pauses all of them, the
//! credential watch included, for up to 30 s each, and an API server restart makes a dozen. Each
//! watch samlcred feeds a controller backs off on its own already, so its controllers take
//! [`NoSharedBackoff`] instead.

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Whether `error` is the API server refusing to resume at a resourceVersion it no longer has.
pub fn is_gone(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// [`watcher`] of `api` with `config`, started anew (so listing again) whenever a watch cannot
/// resume because its resourceVersion is gone. Errors are passed on, for the caller's backoff.
pub fn relisting_watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let start =
        move || -> BoxStream<'static, watcher::Result<Event<K>>> { watcher(api.clone(), config.clone()).boxed() };
    let current = start();
    futures::stream::unfold((current, start), |(mut current, start)| async move {
        let item = current.next().await?;
        if let Err(error) = &item
            && is_gone(error)
        {
            tracing::info!("a watch could not resume (resourceVersion gone); listing again");
            current = start();
        }
        Some((item, (current, start)))
    })
}

/// A controller's trigger backoff that never waits: the watches back off one by one (each is
/// `.default_backoff()`), so one watch's errors do not pause the others.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSharedBackoff;

impl Iterator for NoSharedBackoff {
    type Item = std::time::Duration;

    /// Never `None`: that would end the controller's trigger stream.
    fn next(&mut self) -> Option<std::time::Duration> {
        Some(std::time::Duration::ZERO)
    }
}

impl Backoff for NoSharedBackoff {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure("too old resource version: 228 (269)", "Expired").with_code(code)))
    }

    #[test]
    fn only_a_gone_resource_version_makes_a_relist() {
        assert!(is_gone(&watcher::Error::WatchStartFailed(api_error(410))));
        assert!(is_gone(&watcher::Error::WatchFailed(api_error(410))));
        assert!(!is_gone(&watcher::Error::WatchStartFailed(api_error(500))));
        assert!(!is_gone(&watcher::Error::WatchStartFailed(api_error(403))));
        assert!(!is_gone(&watcher::Error::InitialListFailed(api_error(410))));
        assert!(!is_gone(&watcher::Error::NoResourceVersion));
    }

    #[test]
    fn the_shared_backoff_never_waits_nor_ends() {
        let mut backoff = NoSharedBackoff;
        assert!((0..100).all(|_| backoff.next() == Some(std::time::Duration::ZERO)));
    }
}

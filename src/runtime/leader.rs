//! Leader election on a coordination.k8s.io Lease, so that several replicas can run and only one
//! writes. A replica that loses the lease exits at once: a write from a former leader could race the
//! new one, and the planner recovers from a step cut short (see `rotation`).

use kube_lease_manager::LeaseManagerBuilder;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

/// Held while this process leads; dropping it releases the lease so a standby takes over at once.
pub struct Leadership {
    state: watch::Receiver<bool>,
    loss_guard: JoinHandle<()>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

/// Waits until this process holds the lease. Returns `None` if `shutdown` fires first.
pub async fn acquire(
    client: kube::Client,
    settings: &LeaseSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<Leadership>> {
    let seconds = settings.duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .with_field_manager(crate::api::FIELD_MANAGER)
        .build()
        .await?;
    let (mut state, task) = manager.watch().await;
    tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "waiting for the lease");
    tokio::pin!(shutdown);
    while !*state.borrow_and_update() {
        tokio::select! {
            changed = state.changed() => changed?,
            _ = &mut shutdown => return Ok(None),
        }
    }
    tracing::info!(identity = %settings.identity, "acquired the lease; reconciling");
    let loss_guard = exit_on_loss(state.clone());
    Ok(Some(Leadership { state, loss_guard, task }))
}

/// Exits the process as soon as the lease is lost.
fn exit_on_loss(mut state: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            if !*state.borrow() {
                tracing::error!("lost the lease; stopping at once so that only the new leader writes");
                std::process::exit(1);
            }
        }
    })
}

impl Leadership {
    /// Gives the lease up (after the controllers stopped).
    pub async fn release(self) {
        // The manager releases the lease once every receiver of its state is gone.
        self.loss_guard.abort();
        let _ = self.loss_guard.await;
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released the lease"),
            Ok(Err(e)) => tracing::warn!("releasing the lease: {e}"),
            Err(e) => tracing::warn!("lease task: {e}"),
        }
    }
}

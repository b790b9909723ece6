//! A real Kubernetes control plane on loopback for samlcred's tests and demo: etcd, kube-apiserver and
//! kube-controller-manager built from their upstream Go modules (see `tests/kube/`), with generated
//! certificates, RBAC authorization and service-account signing keys.
//!
//! Tests call [`shared()`] (one control plane per test binary) and make a [`TestNamespace`] each.

mod binaries;
mod control_plane;
mod pki;
mod shared;

pub use binaries::{bin_dir, build_script};
pub use control_plane::{ControlPlane, Options};
pub use shared::{TestNamespace, client, client_for, mark_failed, shared};

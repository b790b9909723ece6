//! samlcred: a Kubernetes operator that rotates the signing certificates of Okta SAML applications.
//!
//! Layout: `api` holds the CRD types, `okta` the Okta Apps API client (no Kubernetes in it),
//! `rotation` the pure planner that decides the next step, `secret` the pure rendering of the Secret.

pub mod api;
pub mod okta;
pub mod rotation;
pub mod secret;

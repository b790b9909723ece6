//! samlcred: a Kubernetes operator that rotates the signing certificates of Okta SAML applications.
//!
//! Layout: `api` holds the CRD types, `okta` the Okta Apps API client (no Kubernetes in it),
//! `rotation` the pure planner that decides the next step, `secret` the pure rendering of the Secret
//! and `metadata` the SAML metadata in it, `controller` the reconcilers that observe, plan, perform
//! one step and record it, `metrics` the Prometheus metrics, `webhook` the validating admission
//! webhook, and `runtime` the operator process around them.

pub mod api;
pub mod controller;
#[cfg(test)]
mod fuzz_tests;
pub mod metadata;
pub mod metrics;
pub mod okta;
pub mod rotation;
pub mod runtime;
pub mod secret;
pub mod webhook;

//! The operator process: command-line flags, logging, the metrics and health server, and the
//! controllers wired together.

pub mod controller;
pub mod leader;
pub mod server;
pub mod telemetry;

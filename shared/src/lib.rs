//! Everything the cafe functions share: domain rules, validation, the API's one error type,
//! auth, storage, locking, events and configuration.
//!
//! A function crate's handler parses its request with [`http`], authenticates with
//! [`App::authenticate`], calls one use case (a `services` module) and answers with [`http::success`]
//! or [`http::failure`].

pub mod app;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod lock;
pub mod metrics;
pub mod routes;
pub mod scheduled;
pub mod secrets;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod throttle;
pub mod xray;

pub use app::App;
pub use error::{Error, Result};

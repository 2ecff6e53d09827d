//! Everything the cafe functions share: domain rules, validation, the API's one error type,
//! auth, storage, locking, events and configuration.
//!
//! A function crate's handler parses its request with [`http`], authenticates with
//! [`App::authenticate`], calls one use case (a `services` module) with the app and answers with
//! [`http::success`] or [`http::failure`].
//!
//! # Module map
//!
//! Every module's imports point one way, down this list's layers: a module may import the ones
//! named after "Imports" ("the layers below": any module of an earlier group), and nothing imports
//! a module of a later group. `shared/tests/module_map.rs` holds the crate to this map.
//!
//! Leaves, importing nothing of the crate:
//! - `error`: the one error enum and its contract code and status. Imports nothing.
//! - `clock`, `ids`, `deadline`: time, ULIDs, request budgets. Import nothing.
//! - `spans`: the request and dependency spans. Imports nothing.
//! - `metrics`: the EMF emitter. Imports nothing.
//! - `routes`: the route table of the HTTP API. Imports nothing.
//! - `fault`: the crash tests' pause points (nothing without `fault-injection`). Imports nothing.
//!
//! Foundations:
//! - `http`: the envelope, body parsing, bearer tokens, serving one request. Imports `error`,
//!   `metrics`, `spans`.
//! - `secrets`: cached Secrets Manager reads. Imports `error`, `spans`.
//! - `xray`: dependency spans as X-Ray subsegments. Imports `spans`.
//! - `telemetry`: the log subscriber. Imports `xray`.
//! - `domain`: pure rules of members, items, orders, payments, attempts, events (no I/O).
//!   Imports `clock`, `error`, `ids`.
//! - `auth`: EdDSA tokens, keysets, Argon2id, refresh tokens. Imports `domain`, `error`, `ids`,
//!   `secrets`, `spans`.
//! - `config`: the environment read once. Imports `auth` (key formats), `error`, `metrics`.
//! - `aws`: the process's SDK configuration and clients, the IAM call recorder. Imports nothing
//!   of the crate.
//!
//! Capabilities (each a trait with a memory and a real implementation):
//! - `store`: the store traits, `memory/` and `dynamo/` one file per trait at the same path.
//!   Imports `aws`, `clock`, `config`, `domain`, `error`, `events`, `ids`, `spans`.
//! - `lock`: `Lock`, its keys and its release, the lock cache's user. Imports `auth`,
//!   `config`, `domain`, `error`, `metrics`, `secrets`, `spans`.
//! - `throttle`: the login throttle. Imports `config`, `error`, `ids`, `lock` (its Redis link),
//!   `spans`.
//! - `gateway`: `PaymentGateway`, the mock and the HTTP one. Imports `config`, `domain`, `error`,
//!   `ids`, `metrics`, `spans`.
//! - `events`: the event publishers. Imports `aws`, `domain`, `error`, `spans`.
//! - `deps`: one trait per capability (`HasStore`, `HasClock`, …). Imports `auth`, `clock`,
//!   `config`, `gateway`, `lock`, `metrics`, `store`, `throttle`.
//!
//! Use cases (`services`), each naming the capabilities it uses (`deps`), never `App`:
//! - `services::history`: timelines on the wire. Imports `clock`, `domain`.
//! - `services::refunds`: refunding an attempt. Imports `deps`, `domain`, `fault`, `gateway`.
//! - `services::payments`: the paying flow, the `Idempotency-Key` record, the wire. Imports
//!   `services::refunds` and the layers below.
//! - `services::orders`: place, read, list, cancel. Imports `services::history`,
//!   `services::refunds` and the layers below.
//! - `services::members`: sign-up, log-in, refresh, profile, withdraw, restore. Imports
//!   `services::history` and the layers below.
//! - `services::staff`: catalogue, roles, fulfilment. Imports `services::orders` (its list query)
//!   and the layers below.
//! - `services::reconcile`: settling dead attempts. Imports `services::payments`,
//!   `services::refunds` and the layers below.
//! - `services::expiry`: ending withdrawn members. Imports `domain`, `error`, `store`.
//! - `services::floor`: the shop's state, opening and closing it, the wait estimate, the pickup
//!   display's board. Imports the layers below.
//! - `services::live`: the live channel's tickets, connections, subscriptions and fan-out.
//!   Imports the layers below.
//!
//! The edge:
//! - `app`: `App`, built once per process from the configuration; authentication. Imports the
//!   layers below, never `services`.
//! - `scheduled`: the scheduled functions' runtime glue. Imports `app`, `deadline`, `error`.
//! - `testing`: fixtures for tests. Imports the layers below, never `services`.

pub mod app;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod deps;
pub mod domain;
pub mod error;
pub mod events;
pub mod fault;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod lock;
pub mod metrics;
pub mod routes;
pub mod scheduled;
pub mod secrets;
pub mod services;
pub mod spans;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod throttle;
pub mod xray;

pub use app::App;
pub use error::{Error, Result};

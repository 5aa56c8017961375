//! The Spareband browser node: the core of the Chrome and Firefox extension.
//!
//! The logic that decides things (settings and pauses, statistics, what a build
//! may reach) is plain Rust, tested natively. The browser glue (`api`, `connection`,
//! `frames`, `job` and their helpers) is compiled for wasm32 only: it speaks the `spareband-protocol` wire
//! format over a WebSocket and runs jobs with the global `fetch`. It never uses
//! `window`, which does not exist in a service worker.
#![warn(missing_docs)]

/// The protocol version the browser core says it speaks: it sends nothing
/// newer than version 3 (never the native node's one-frame `Response`), so
/// relays of version 3 and later all take it.
pub const SPOKEN_VERSION: u16 = 3;

pub mod build_config;
pub mod error;
pub mod patch;
pub mod settings;
pub mod stats;
pub mod weburl;

// The browser glue, lowest layer first; each module uses only those above
// it in this list.
#[cfg(target_arch = "wasm32")]
mod admission;
#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod connection;
#[cfg(target_arch = "wasm32")]
mod crypto;
#[cfg(target_arch = "wasm32")]
mod frames;
#[cfg(target_arch = "wasm32")]
mod job;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod jsvalue;
#[cfg(target_arch = "wasm32")]
mod persist;
#[cfg(target_arch = "wasm32")]
mod state;
#[cfg(target_arch = "wasm32")]
mod status;

#[cfg(target_arch = "wasm32")]
pub use crate::api::NodeCore;

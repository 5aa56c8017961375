//! The Spareband browser node: the core of the Chrome and Firefox extension.
//!
//! The logic that decides things (settings and pauses, statistics, what a build
//! may reach) is plain Rust, tested natively. The browser glue (`core`, `job`,
//! `js`) is compiled for wasm32 only: it speaks the `spareband-protocol` wire
//! format over a WebSocket and runs jobs with the global `fetch`. It never uses
//! `window`, which does not exist in a service worker.
#![warn(missing_docs)]

pub mod build_config;
pub mod settings;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod core;
#[cfg(target_arch = "wasm32")]
mod job;
#[cfg(target_arch = "wasm32")]
mod js;

#[cfg(target_arch = "wasm32")]
pub use crate::core::NodeCore;

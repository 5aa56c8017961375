//! Cross-component tests: customer → relay → native node → local target, all
//! over real sockets on 127.0.0.1.

mod abuse;
mod admin;
mod api;
mod cluster;
mod hostile;
mod ledger;
mod node_protocol;
mod outage;
mod owner;
mod proxy;
mod routing;
mod safety;
mod saturation;
mod streaming;

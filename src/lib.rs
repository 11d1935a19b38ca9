//! distpoint: a secure software-distribution point.
//!
//! A TLS-only, BITS-compatible, range-capable content server. One request goes
//! through one straight pipeline (see [`pipeline`]):
//! accept → TLS → HTTP → route → authenticate → authorize → resolve →
//! conditionals → range → body.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod banner;
pub mod body;
pub mod client;
pub mod config;
pub mod devcerts;
pub mod error;
pub mod http;
pub mod integrity;
pub mod io;
pub mod live;
pub mod logging;
pub mod objstore;
pub mod pipeline;
pub mod replica;
pub mod resolve;
pub mod sandbox;
pub mod server;
pub mod state;
pub mod sync;
pub mod systemd;
pub mod tls;
pub mod transfer;
pub mod vpath;

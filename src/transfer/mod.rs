//! The verified multi-source download engine, shared by `fetch`, `fetch
//! --package` and branch replicas.
//!
//! A [`Job`] names a file's manifest, its [`Source`]s (anything that answers
//! ranged reads: [`HttpSource`] for an HTTPS server, [`S3Source`] for an
//! object in an S3-compatible store), a [`Sink`] for the
//! verified chunks ([`FileSink`]: a work file), and optionally chunks held
//! locally ([`LocalChunks`]), a [`RateLimit`] and a [`Gate`] for new
//! requests. [`run`] spreads the chunks over every live source, checks each
//! chunk with the one chunk hasher as its last byte arrives, writes only
//! verified chunks, drops a source at its first bad chunk (or when its copy
//! changed) and fetches that chunk elsewhere. The [`Transfer`] it returns
//! has per-source figures whatever the outcome.
//!
//! Below the engine: the HTTP client ([`endpoint`], [`conn`]) and the
//! response helpers every client front end uses.

pub mod book;
pub mod conn;
pub mod document;
pub mod endpoint;
pub mod engine;
pub mod hooks;
pub mod http_source;
pub mod rate;
pub mod report;
pub mod response;
pub mod resume;
pub mod retry;
pub mod s3_source;
pub mod sink;
pub mod source;
pub mod verify;
mod worker;
mod writer;

pub use conn::{ClientError, Conn, Protocol, Tuning};
pub use endpoint::{client_config, Client, ClientOptions, Target};
pub use engine::{run, Job, Transfer, TransferError};
pub use hooks::{Events, Gate, Quiet};
pub use http_source::HttpSource;
pub use rate::RateLimit;
pub use report::{DropReason, SourceReport, TransferReport};
pub use s3_source::S3Source;
pub use sink::{FileSink, LocalChunks, Sink, SinkError};
pub use source::{ReadError, ReadErrorKind, ReadRequest, Reader, Reply, Source, Validator};

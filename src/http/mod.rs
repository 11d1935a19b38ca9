//! HTTP semantics for serving one file: conditional requests, byte ranges and
//! `multipart/byteranges` framing (RFC 9110 §13, §14).
//!
//! Everything here is pure: no I/O, no clock, no allocation beyond the result.
//! The pipeline uses it in RFC 9110 §13.2.2 order once the file is resolved:
//!
//! 1. [`evaluate_preconditions`] → `412`, `304`, or go on (and whether to honor
//!    `Range`);
//! 2. [`plan_range`] (only when `honor_range`) → `200`, `206` single,
//!    `206 multipart/byteranges` ([`multipart`]) or `416`;
//! 3. the header helpers [`http_date`], [`content_range`], [`unsatisfied_range`].
//!
//! Paths to the `http` crate are written `::http::…` because this module is
//! itself called `http`, and at the crate root the bare name would be ambiguous.

mod conditional;
mod multipart;
mod range;

pub use conditional::{evaluate_preconditions, http_date, Precondition, Validators};
pub use multipart::{multipart, new_boundary, MultipartBody, Segment};
pub use range::{content_range, plan_range, unsatisfied_range, ByteRange, RangePlan, MAX_RANGES};

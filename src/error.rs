//! Request errors: every layer's error converts into [`RequestError`] here
//! (`From<AuthError>`, `From<IntegrityError>`, `From<Revoked>`, …), and
//! [`RequestError::status`] is the one place that maps them to HTTP status
//! codes.

use crate::auth::AuthError;
use crate::body::{BodyError, ResponseBody};
use crate::integrity::published::PackageError;
use crate::integrity::{quarantine, IntegrityError};
use crate::resolve::ResolveError;
use crate::state::Revoked;
use http::{header, HeaderValue, Response, StatusCode};
use std::fmt;
use std::sync::Arc;

/// Why a request did not get content.
#[derive(Debug)]
pub enum RequestError {
    /// Not GET or HEAD.
    MethodNotAllowed,
    /// A header that may appear once appeared more often.
    BadRequest(http::HeaderName),
    /// The URL is outside every virtual path.
    NoRoute,
    /// The URL decodes to something that may never reach the file system.
    BadPath(ResolveError),
    /// The path needs credentials and none were given.
    NoCredentials,
    /// Credentials were given and are not valid.
    BadCredentials(AuthError),
    /// Authenticated, but not on the path's allow list.
    NotAllowed,
    /// No such regular file beneath the path's folder.
    NotFound(ResolveError),
    /// If-Match / If-Unmodified-Since failed.
    PreconditionFailed,
    /// No requested range overlaps the file.
    RangeNotSatisfiable {
        /// Size of the file.
        size: u64,
    },
    /// A published path's file that its manifest does not list.
    NotListed,
    /// A published file that failed verification and is quarantined.
    Quarantined {
        /// The chunk that failed, when one is known; sent in the
        /// `Distpoint-Integrity` header so that clients can name it exactly.
        chunk: Option<u64>,
    },
    /// This client failed Basic authentication too often and is locked out.
    TooManyAttempts {
        /// Time left in the lock-out.
        retry_after: std::time::Duration,
    },
    /// Temporarily unable to serve; the client may retry (`Retry-After`).
    Unavailable(Unavailable),
    /// A server-side failure.
    Internal(Internal),
}

/// Why a request may succeed if retried shortly.
#[derive(Debug)]
pub enum Unavailable {
    /// Too many credential checks are waiting.
    AuthBusy,
    /// The file changed while it was being hashed or opened (auto mode).
    FileChanged,
    /// The path's published manifest cannot be used.
    Package(Arc<PackageError>),
    /// The config changed between authorization and response, and the path
    /// now serves other content.
    ConfigChanged(Revoked),
    /// The server-wide budget of file bytes in flight stayed full.
    Busy,
    /// A serve-through path's object store cannot deliver the bytes now.
    Origin(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::AuthBusy => f.write_str("too many credential checks waiting"),
            Unavailable::FileChanged => f.write_str("file changed while being hashed"),
            Unavailable::Package(e) => write!(f, "published manifest unavailable: {e}"),
            Unavailable::ConfigChanged(r) => write!(f, "config changed during the request: {r}"),
            Unavailable::Busy => f.write_str("too many file bytes in flight"),
            Unavailable::Origin(why) => write!(f, "object store: {why}"),
        }
    }
}

/// A failure inside the server; the client gets `500` and the log the cause.
#[derive(Debug)]
pub enum Internal {
    /// Reading, hashing or a blocking task failed.
    Io(std::io::Error),
    /// The first block of a body could not be read.
    Body(BodyError),
    /// A response could not be built.
    Http(http::Error),
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Internal::Io(e) => write!(f, "{e}"),
            Internal::Body(e) => write!(f, "{e}"),
            Internal::Http(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::MethodNotAllowed => f.write_str("method not allowed"),
            RequestError::BadRequest(h) => write!(f, "repeated {h} header"),
            RequestError::NoRoute => f.write_str("no virtual path"),
            RequestError::BadPath(e) => write!(f, "refused path: {e}"),
            RequestError::NoCredentials => f.write_str("no credentials"),
            RequestError::BadCredentials(e) => write!(f, "authentication failed: {e}"),
            RequestError::NotAllowed => f.write_str("principal not allowed on this path"),
            RequestError::NotFound(e) => write!(f, "not found: {e}"),
            RequestError::PreconditionFailed => f.write_str("precondition failed"),
            RequestError::RangeNotSatisfiable { .. } => f.write_str("range not satisfiable"),
            RequestError::NotListed => f.write_str("not listed in the published manifest"),
            RequestError::Quarantined { .. } => {
                f.write_str("file quarantined after an integrity failure")
            }
            RequestError::TooManyAttempts { retry_after } => write!(
                f,
                "too many failed authentications from this client: locked out for {}s more",
                retry_secs(*retry_after)
            ),
            RequestError::Unavailable(why) => write!(f, "unavailable: {why}"),
            RequestError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::BadPath(e) | RequestError::NotFound(e) => Some(e),
            RequestError::BadCredentials(e) => Some(e),
            RequestError::Unavailable(Unavailable::Package(e)) => Some(e.as_ref()),
            RequestError::Unavailable(Unavailable::ConfigChanged(r)) => Some(r),
            RequestError::Internal(Internal::Io(e)) => Some(e),
            RequestError::Internal(Internal::Body(e)) => Some(e),
            RequestError::Internal(Internal::Http(e)) => Some(e),
            _ => None,
        }
    }
}

impl From<AuthError> for RequestError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Busy => RequestError::Unavailable(Unavailable::AuthBusy),
            AuthError::Throttled { retry_after } | AuthError::AccountGuarded { retry_after } => {
                RequestError::TooManyAttempts { retry_after }
            }
            other => RequestError::BadCredentials(other),
        }
    }
}

impl From<IntegrityError> for RequestError {
    fn from(e: IntegrityError) -> Self {
        match e {
            IntegrityError::NotListed => RequestError::NotListed,
            IntegrityError::Missing => RequestError::NotFound(ResolveError::NotFound),
            IntegrityError::Quarantined { chunk } => RequestError::Quarantined { chunk },
            IntegrityError::Changed => RequestError::Unavailable(Unavailable::FileChanged),
            IntegrityError::Unavailable { cause } => {
                RequestError::Unavailable(Unavailable::Package(cause))
            }
            IntegrityError::Io(e) => RequestError::Internal(Internal::Io(e)),
        }
    }
}

impl From<Revoked> for RequestError {
    /// A request whose config changed between its authorization and its
    /// response gets what the new config answers (or `503` to retry when the
    /// path now serves other content).
    fn from(r: Revoked) -> RequestError {
        match r {
            Revoked::PathRemoved(_) => RequestError::NoRoute,
            Revoked::NoLongerAnonymous(_) => RequestError::NoCredentials,
            Revoked::NotAllowed(..) => RequestError::NotAllowed,
            Revoked::UserRemoved(_) => RequestError::BadCredentials(AuthError::UnknownUser),
            Revoked::PasswordChanged(_) => RequestError::BadCredentials(AuthError::WrongPassword),
            Revoked::Rerouted(..) | Revoked::DirChanged(_) => {
                RequestError::Unavailable(Unavailable::ConfigChanged(r))
            }
        }
    }
}

impl From<BodyError> for RequestError {
    /// A body that failed before its headers were sent (its first block).
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Integrity { chunk } => RequestError::Quarantined { chunk: Some(chunk) },
            BodyError::Changed => RequestError::Unavailable(Unavailable::FileChanged),
            BodyError::Busy => RequestError::Unavailable(Unavailable::Busy),
            BodyError::Unavailable(why) => RequestError::Unavailable(Unavailable::Origin(why)),
            other => RequestError::Internal(Internal::Body(other)),
        }
    }
}

impl From<tokio::task::JoinError> for RequestError {
    fn from(e: tokio::task::JoinError) -> Self {
        RequestError::Internal(Internal::Io(std::io::Error::other(e)))
    }
}

impl From<http::Error> for RequestError {
    fn from(e: http::Error) -> Self {
        RequestError::Internal(Internal::Http(e))
    }
}

impl RequestError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RequestError::NoRoute
            | RequestError::BadPath(_)
            | RequestError::NotFound(_)
            | RequestError::NotListed => StatusCode::NOT_FOUND,
            RequestError::NoCredentials | RequestError::BadCredentials(_) => {
                StatusCode::UNAUTHORIZED
            }
            RequestError::NotAllowed => StatusCode::FORBIDDEN,
            RequestError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            RequestError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            // 429, not 401: the credentials were not checked and may well be right, and a
            // 401 would make browsers re-prompt and clients conclude the password is wrong.
            RequestError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            RequestError::Unavailable(_) | RequestError::Quarantined { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: status, the headers the status requires, and a short
    /// plain-text body that reveals nothing beyond the status.
    pub fn into_response(&self, head_only: bool) -> Response<ResponseBody> {
        let status = self.status();
        let mut text = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        if let RequestError::Quarantined { .. } = self {
            // Plain words for the operator who opens the URL in a browser.
            text.push_str(": this file failed its integrity check and is quarantined");
        }
        text.push('\n');
        let mut builder = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CONTENT_LENGTH, text.len());
        match self {
            RequestError::MethodNotAllowed => builder = builder.header(header::ALLOW, "GET, HEAD"),
            RequestError::NoCredentials | RequestError::BadCredentials(_) => {
                builder = builder.header(header::WWW_AUTHENTICATE, r#"Basic realm="distpoint""#)
            }
            RequestError::RangeNotSatisfiable { size } => {
                builder =
                    builder.header(header::CONTENT_RANGE, crate::http::unsatisfied_range(*size))
            }
            RequestError::Unavailable(_) => {
                builder = builder.header(header::RETRY_AFTER, HeaderValue::from_static("5"))
            }
            RequestError::Quarantined { chunk } => {
                // Machine-readable twin of the body text: the body is for
                // people, and a client must not have to parse prose to know
                // which chunk failed.
                builder = builder.header(quarantine::HEADER, quarantine::header_value(*chunk))
            }
            RequestError::TooManyAttempts { retry_after } => {
                builder = builder.header(header::RETRY_AFTER, retry_secs(*retry_after))
            }
            _ => {}
        }
        let body = if head_only {
            ResponseBody::empty()
        } else {
            ResponseBody::full(text)
        };
        builder.body(body).expect("static headers are valid")
    }
}

/// Whole seconds for `Retry-After`, rounded up: a client that waits exactly that long is
/// no longer locked out (and a lock-out with 0.3 s left is never "0").
fn retry_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lockout_is_429_with_retry_after_rounded_up() {
        let e = RequestError::from(AuthError::Throttled {
            retry_after: Duration::from_millis(1_300),
        });
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let r = e.into_response(false);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(retry_secs(Duration::from_secs(300)), 300);
        assert_eq!(retry_secs(Duration::from_nanos(1)), 1);
        // Wrong credentials stay 401.
        let e = RequestError::from(AuthError::WrongPassword);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    }
}

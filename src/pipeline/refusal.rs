//! Refusals an operator looks for later: failed credentials and `403`s go
//! to the audit log; failed credentials and lock-out refusals are counted.

use crate::audit::Event;
use crate::auth::{self, AuthError};
use crate::error::RequestError;
use crate::state::{ConnInfo, ServerState};
use http::{header, Request};

/// Record `e`, the answer to `req`, if it is one of those refusals.
/// `principal` is who the request was authenticated as (`-`: nobody).
pub fn record<B>(
    state: &ServerState,
    conn: &ConnInfo,
    req: &Request<B>,
    principal: &str,
    e: &RequestError,
) {
    let path = req.uri().path().to_string();
    match e {
        RequestError::BadCredentials(why) => {
            state.metrics.auth_failure(reason(why));
            state.audit.record(Event::AuthFailed {
                peer: conn.peer,
                principal: known_user(req, why),
                path,
                reason: why.to_string(),
            });
        }
        RequestError::NotAllowed => state.audit.record(Event::Forbidden {
            peer: conn.peer,
            principal: principal.to_string(),
            path,
        }),
        RequestError::TooManyAttempts { .. } => {
            state.metrics.auth_lockout_refusals.inc();
        }
        _ => {}
    }
}

/// The metric label of a credential failure.
fn reason(why: &AuthError) -> &'static str {
    match why {
        AuthError::WrongPassword => "wrong_password",
        AuthError::UnknownUser => "unknown_user",
        AuthError::Malformed => "malformed",
        AuthError::Busy | AuthError::Throttled { .. } | AuthError::AccountGuarded { .. } => "other",
    }
}

/// `user:NAME` for a wrong password (the user exists). Nothing for an
/// unknown user: the name tried may be a password typed in the wrong field.
fn known_user<B>(req: &Request<B>, why: &AuthError) -> Option<String> {
    if *why != AuthError::WrongPassword {
        return None;
    }
    let creds = auth::parse_basic(req.headers().get(header::AUTHORIZATION)?).ok()?;
    Some(format!("user:{}", creds.user()))
}

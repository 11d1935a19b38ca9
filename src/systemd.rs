//! Telling the service manager how the server is doing (`sd_notify`):
//! ready, reloading, stopping, and a free-text status.
//!
//! A primitive over the `sd-notify` crate. Without `NOTIFY_SOCKET` in the
//! environment (not started by systemd, or not `Type=notify`) every call is a
//! no-op. A failure to notify never stops the server: it is returned for the
//! caller to log.

use sd_notify::NotifyState;
use std::io;

fn send(states: &[NotifyState<'_>]) -> io::Result<()> {
    // `false`: leave NOTIFY_SOCKET set. Unsetting it from a multi-threaded
    // process races with other threads reading the environment.
    sd_notify::notify(false, states)
}

/// Start-up is complete: the listeners are bound and requests are served.
/// `status` is shown by `systemctl status`.
pub fn ready(status: &str) -> io::Result<()> {
    send(&[NotifyState::Ready, NotifyState::Status(status)])
}

/// A reload (SIGHUP or a config change) has begun; call [`ready`] when it is done.
/// Carries the monotonic time systemd's `Type=notify-reload` asks for.
pub fn reloading() -> io::Result<()> {
    let now = NotifyState::monotonic_usec_now()?;
    send(&[NotifyState::Reloading, now])
}

/// Shutdown has begun (draining transfers).
pub fn stopping(status: &str) -> io::Result<()> {
    send(&[NotifyState::Stopping, NotifyState::Status(status)])
}

/// A one-line status for `systemctl status` (no state change).
pub fn status(text: &str) -> io::Result<()> {
    send(&[NotifyState::Status(text)])
}

/// Whether a service manager is listening (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

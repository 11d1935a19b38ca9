//! Applying a changed config or changed TLS files to the running server.
//!
//! Order matters: load and validate everything first (nothing changes on an
//! error), then TLS, then the atomic config swap, then the cuts of transfers
//! the new config refuses. A request takes one config snapshot, so it sees the
//! old config or the new one, never a mix.

use super::diff::ConfigDiff;
use crate::audit::Event;
use crate::config::Config;
use crate::state::certs::TlsChange;
use crate::state::Runtime;
use std::sync::Arc;
use std::time::Instant;
use tracing::{error, info, warn};

/// What a reload did, for the log and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new config is in force.
    Applied {
        /// Number of changes in force now.
        changes: usize,
        /// Number of running transfers cut.
        cut: usize,
    },
    /// The new config did not validate (or its TLS material was unusable); the old one stays.
    Rejected,
}

/// Read the config file again and apply it if it validates. `since` is when
/// the change was first noticed, to log how long it took to be in force.
pub async fn reload_config(state: &Runtime, why: &str, since: Instant) -> Outcome {
    notify(crate::systemd::reloading());
    let outcome = apply_config(state, why, since).await;
    notify(crate::systemd::ready(match outcome {
        Outcome::Applied { .. } => "serving; config reloaded",
        Outcome::Rejected => "serving; last config change rejected",
    }));
    outcome
}

/// A failed notification is logged; it never stops a reload.
fn notify(sent: std::io::Result<()>) {
    if let Err(e) = sent {
        warn!(target: "distpoint::live", "cannot notify the service manager: {e}");
    }
}

async fn apply_config(state: &Runtime, why: &str, since: Instant) -> Outcome {
    let path = state.shared.config.load().path.clone();
    let loaded = {
        let path = path.clone();
        // Reading and validating touches the disk (certificate files, dirs).
        tokio::task::spawn_blocking(move || Config::load(&path)).await
    };
    let new = match loaded {
        Ok(Ok(config)) => config,
        Ok(Err(e)) => {
            error!(target: "distpoint::live", "config change rejected, the running config stays: {e}");
            return rejected(state, e.to_string());
        }
        Err(e) => {
            error!(target: "distpoint::live", "config reload failed: {e}");
            return rejected(state, e.to_string());
        }
    };
    let old = state.shared.config.load_full();
    let diff = ConfigDiff::between(&old, &new);
    if diff.tls_changed {
        match state.tls.reload(&new.tls) {
            Ok(change) => tls_changed(state, &change),
            Err(e) => {
                error!(target: "distpoint::live",
                    "config change rejected, the running config stays: TLS material unusable: {e}");
                return rejected(state, format!("TLS material unusable: {e}"));
            }
        }
    }
    if old.log_format != new.log_format {
        crate::logging::set_format(new.log_format);
    }
    let new = Arc::new(new);
    state.shared.config.store(new.clone());
    state.listen.send_if_modified(|listen| {
        let changed = *listen != new.server.listen;
        if changed {
            listen.clone_from(&new.server.listen);
        }
        changed
    });
    let cut = state.shared.transfers.revoke(&new, &diff.new_passwords);
    let ms = since.elapsed().as_millis();
    if diff.is_empty() {
        info!(target: "distpoint::live", "config reloaded ({why}): no changes, in force after {ms} ms");
    } else {
        info!(target: "distpoint::live",
            "config reloaded ({why}): {} change(s) in force after {ms} ms", diff.applied.len());
    }
    for line in &diff.applied {
        info!(target: "distpoint::live", "config change: {line}");
    }
    for line in &diff.need_restart {
        warn!(target: "distpoint::live", "restart needed: {line}");
    }
    if let Some(rules) = &state.sandbox {
        for folder in new
            .sandbox_rules()
            .read
            .iter()
            .filter(|p| p.exists() && !rules.can_read(p))
        {
            warn!(target: "distpoint::live",
                "restart needed: {} is outside the sandbox made at start; it cannot be read until then",
                folder.display());
        }
    }
    for line in &cut {
        info!(target: "distpoint::live", "cut running transfer: {line}");
    }
    state.shared.metrics.reload("config", "applied");
    if !diff.is_empty() {
        state.shared.audit.record(Event::ConfigChanged {
            changes: diff.applied.clone(),
            restart_needed: diff.need_restart.clone(),
        });
    }
    Outcome::Applied {
        changes: diff.applied.len(),
        cut: cut.len(),
    }
}

/// Load the certificate, key and client CA again with the running settings.
/// A broken or mismatched file keeps the old material.
pub fn reload_tls(state: &Runtime, why: &str) {
    let settings = state.shared.config.load().tls.clone();
    match state.tls.reload(&settings) {
        Ok(change) => {
            if let Some(fp) = &change.new_cert {
                info!(target: "distpoint::live",
                    "TLS certificate reloaded ({why}): new handshakes use sha256 {fp}");
            }
            if change.verifier {
                info!(target: "distpoint::live", "TLS client CA reloaded ({why})");
            }
            state.shared.metrics.reload("tls", "applied");
            tls_changed(state, &change);
        }
        Err(e) => {
            error!(target: "distpoint::live",
                "TLS reload failed, the old certificate stays in force ({why}): {e}");
            state.shared.metrics.reload("tls", "rejected");
            state.shared.audit.record(Event::TlsReloadFailed {
                reason: e.to_string(),
            });
        }
    }
}

/// Count and audit a config that stays out of force.
fn rejected(state: &Runtime, reason: String) -> Outcome {
    state.shared.metrics.reload("config", "rejected");
    state.shared.audit.record(Event::ConfigRejected { reason });
    Outcome::Rejected
}

/// New TLS material is in force: the expiry metric follows the certificate,
/// and the audit log records what changed.
fn tls_changed(state: &Runtime, change: &TlsChange) {
    if let Some(fp) = &change.new_cert {
        state.publish_cert_expiry();
        state.shared.audit.record(Event::CertificateReloaded {
            fingerprint: fp.clone(),
            not_after: state.tls.not_after().and_then(rfc3339),
        });
    }
    if change.verifier {
        state.shared.audit.record(Event::ClientCaReloaded {});
    }
}

fn rfc3339(unix: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

//! What changed between two configs, as log lines an operator can read.
//!
//! Users are named, never their password hashes: a changed hash is reported
//! as "password changed".

use crate::auth::PrincipalRef;
use crate::config::{Config, MetricsSettings};
use crate::vpath::Vpath;
use std::collections::{BTreeMap, BTreeSet};

/// The differences between a running config and its replacement.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Changes that are in force as soon as the new config is swapped in.
    pub applied: Vec<String>,
    /// Changes that need a restart (limits, state folder).
    pub need_restart: Vec<String>,
    /// Users whose password hash changed.
    pub new_passwords: BTreeSet<String>,
    /// True when `[tls]` settings changed.
    pub tls_changed: bool,
}

impl ConfigDiff {
    /// Compare `old` with `new`.
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let mut d = ConfigDiff::default();
        d.paths(old, new);
        d.directory(old, new);
        d.server(old, new);
        d.operations(old, new);
        if old.tls != new.tls {
            d.tls_changed = true;
            d.applied.push("tls settings changed".into());
        }
        d
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.need_restart.is_empty()
    }

    fn paths(&mut self, old: &Config, new: &Config) {
        let old_paths: BTreeMap<&str, &Vpath> =
            old.vpaths.iter().map(|v| (v.url.as_str(), &**v)).collect();
        let new_paths: BTreeMap<&str, &Vpath> =
            new.vpaths.iter().map(|v| (v.url.as_str(), &**v)).collect();
        for (url, vp) in &new_paths {
            match old_paths.get(url) {
                None => self
                    .applied
                    .push(format!("path added: {url} ({})", describe(vp))),
                Some(before) if before != vp => self
                    .applied
                    .push(format!("path changed: {url}: {}", changes(before, vp))),
                Some(_) => {}
            }
        }
        for url in old_paths.keys().filter(|u| !new_paths.contains_key(*u)) {
            self.applied.push(format!("path removed: {url}"));
        }
    }

    fn directory(&mut self, old: &Config, new: &Config) {
        let (o, n) = (&old.directory, &new.directory);
        let old_users: BTreeSet<&str> = o.user_names().collect();
        let new_users: BTreeSet<&str> = n.user_names().collect();
        for u in new_users.difference(&old_users) {
            self.applied.push(format!("user added: {u}"));
        }
        for u in old_users.difference(&new_users) {
            self.applied.push(format!("user removed: {u}"));
        }
        for u in old_users.intersection(&new_users) {
            if o.password_changed(n, u) {
                self.applied.push(format!("user password changed: {u}"));
                self.new_passwords.insert(u.to_string());
            }
        }
        let old_groups: BTreeMap<&str, &[PrincipalRef]> = o.groups().collect();
        let new_groups: BTreeMap<&str, &[PrincipalRef]> = n.groups().collect();
        for (g, members) in &new_groups {
            match old_groups.get(g) {
                None => self
                    .applied
                    .push(format!("group added: {g} = {}", list(members))),
                Some(before) if before != members => self.applied.push(format!(
                    "group changed: {g}: {} -> {}",
                    list(before),
                    list(members)
                )),
                Some(_) => {}
            }
        }
        for g in old_groups.keys().filter(|g| !new_groups.contains_key(*g)) {
            self.applied.push(format!("group removed: {g}"));
        }
    }

    fn server(&mut self, old: &Config, new: &Config) {
        let (o, n) = (&old.server, &new.server);
        if o.listen != n.listen {
            let fmt = |v: &[std::net::SocketAddr]| {
                v.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            self.applied.push(format!(
                "server.listen changed from [{}] to [{}]",
                fmt(&o.listen),
                fmt(&n.listen)
            ));
        }
        if o.limits != n.limits {
            self.need_restart.push(
                "server timeouts/limits changed; they apply after distpoint is restarted".into(),
            );
        }
        if o.state_dir != n.state_dir {
            self.need_restart.push(format!(
                "server.state_dir changed to {}; it applies after distpoint is restarted",
                n.state_dir.display()
            ));
        }
    }
}

impl ConfigDiff {
    /// `[metrics]` and `[log]` apply at once; `[audit]` after a restart.
    fn operations(&mut self, old: &Config, new: &Config) {
        match (&old.metrics, &new.metrics) {
            (None, Some(m)) => self.applied.push(format!("metrics added: {}", metrics(m))),
            (Some(_), None) => self.applied.push("metrics removed".into()),
            (Some(a), Some(b)) if a != b => {
                self.applied
                    .push(format!("metrics changed: {} -> {}", metrics(a), metrics(b)))
            }
            _ => {}
        }
        if old.log_format != new.log_format {
            self.applied.push(format!(
                "log.format {} -> {}",
                old.log_format.as_str(),
                new.log_format.as_str()
            ));
        }
        if old.audit != new.audit {
            self.need_restart
                .push("[audit] changed; it applies after distpoint is restarted".into());
        }
    }
}

fn metrics(m: &MetricsSettings) -> String {
    format!(
        "url {}, anonymous {}, allow {}",
        m.url,
        m.anonymous,
        list(&m.allow)
    )
}

fn list(refs: &[PrincipalRef]) -> String {
    let items: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
    format!("[{}]", items.join(", "))
}

fn describe(vp: &Vpath) -> String {
    format!(
        "dir {}, anonymous {}, allow {}, integrity {}",
        vp.dir.display(),
        vp.anonymous,
        list(&vp.allow),
        vp.integrity.as_str()
    )
}

fn changes(a: &Vpath, b: &Vpath) -> String {
    let mut out = Vec::new();
    if a.dir != b.dir {
        out.push(format!("dir {} -> {}", a.dir.display(), b.dir.display()));
    }
    if a.anonymous != b.anonymous {
        out.push(format!("anonymous {} -> {}", a.anonymous, b.anonymous));
    }
    if a.allow != b.allow {
        out.push(format!("allow {} -> {}", list(&a.allow), list(&b.allow)));
    }
    if a.integrity != b.integrity {
        out.push(format!(
            "integrity {} -> {}",
            a.integrity.as_str(),
            b.integrity.as_str()
        ));
    }
    if a.verify != b.verify {
        out.push(format!(
            "verify {} -> {}",
            a.verify.as_str(),
            b.verify.as_str()
        ));
    }
    if a.chunk_size != b.chunk_size {
        out.push(format!("chunk_size {} -> {}", a.chunk_size, b.chunk_size));
    }
    if a.publisher_keys != b.publisher_keys {
        out.push("publisher_keys changed".into());
    }
    if out.is_empty() {
        out.push("settings changed".into());
    }
    out.join("; ")
}

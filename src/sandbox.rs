//! The server's own sandbox: after start-up it may read only beneath the
//! folders its config names and write only beneath `state_dir` (and the
//! audit folder), enforced by the kernel (Landlock), so that a bug in path
//! resolution — or anything else — cannot read another file of the machine.
//!
//! Landlock applies to the thread that asks and to the threads it starts
//! afterwards, so [`restrict`] runs before the async runtime exists. A
//! kernel without Landlock (before 5.13, or with it disabled) leaves the
//! process as it was; [`Outcome`] says so, and the caller logs it.
//! Folders added by a later config change are not in the ruleset (it can
//! only shrink): the reload says that a restart is needed to serve them.

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus, ABI,
};
use std::fmt;
use std::path::{Path, PathBuf};

/// What the process may still touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Read (and list) beneath these.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove beneath these.
    pub write: Vec<PathBuf>,
}

impl Rules {
    /// True when `path` lies beneath a folder the process may read.
    pub fn can_read(&self, path: &Path) -> bool {
        self.read
            .iter()
            .chain(&self.write)
            .any(|r| path.starts_with(r))
    }
}

/// What the kernel made of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule is enforced.
    Enforced,
    /// The kernel knows an older Landlock: some access kinds are not restricted.
    Partial,
    /// The kernel has no Landlock: nothing is restricted.
    Unsupported,
}

/// Why the sandbox could not be set up.
#[derive(Debug)]
pub struct SandboxError(RulesetError);

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot set up the Landlock sandbox: {}", self.0)
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Restrict the calling thread (and every thread it starts later) to `rules`.
/// Paths that do not exist are left out (they could not be opened anyway).
pub fn restrict(rules: &Rules) -> Result<Outcome, SandboxError> {
    let abi = ABI::V5;
    let existing = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths.iter().filter(|p| p.exists()).cloned().collect()
    };
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                existing(&rules.read),
                AccessFs::from_read(abi),
            ))
        })
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                existing(&rules.write),
                AccessFs::from_all(abi),
            ))
        })
        .and_then(|r| r.restrict_self())
        .map_err(SandboxError)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Outcome::Enforced,
        RulesetStatus::PartiallyEnforced => Outcome::Partial,
        RulesetStatus::NotEnforced => Outcome::Unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_that_tries_cannot_open_what_the_rules_leave_out() {
        let tmp = tempfile::tempdir().unwrap();
        let (inside, state, outside) = (
            tmp.path().join("content"),
            tmp.path().join("state"),
            tmp.path().join("secret"),
        );
        for d in [&inside, &state, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(inside.join("a.txt"), "a").unwrap();
        std::fs::write(outside.join("key"), "secret").unwrap();
        let rules = Rules {
            read: vec![inside.clone()],
            write: vec![state.clone()],
        };
        assert!(rules.can_read(&inside.join("a.txt")) && !rules.can_read(&outside.join("key")));
        // Landlock restricts the thread that asks: a thread of its own keeps
        // the rest of the test process free.
        let outcome = std::thread::spawn(move || {
            let outcome = restrict(&rules).unwrap();
            if outcome == Outcome::Unsupported {
                return outcome;
            }
            assert_eq!(std::fs::read_to_string(inside.join("a.txt")).unwrap(), "a");
            let denied = std::fs::read_to_string(outside.join("key")).unwrap_err();
            assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
            // Even through a descriptor opened for its path only, and the
            // kernel's own reopen: what the resolver does.
            let fd = rustix::fs::open(
                outside.join("key"),
                rustix::fs::OFlags::PATH,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            use std::os::fd::AsRawFd;
            let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
            assert!(std::fs::read_to_string(magic).is_err());
            std::fs::write(state.join("s.json"), "{}").unwrap();
            assert!(
                std::fs::write(inside.join("b.txt"), "b").is_err(),
                "read-only"
            );
            outcome
        })
        .join()
        .unwrap();
        assert_ne!(outcome, Outcome::Unsupported, "this kernel has Landlock");
    }
}

//! The one policy for poisoned locks.
//!
//! A lock is poisoned when a thread panicked while holding it. Every critical
//! section in distpoint is a single insert, remove or lookup in a map or a
//! cache, so the data behind a poisoned lock is still consistent; refusing it
//! would turn one panicking request into a failure of every later one. So
//! every lock recovers, through this function, and nothing calls
//! `lock().expect(..)`.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, recovering the guard if an earlier holder panicked.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_locked_does_not_poison_later_users() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("a request panicked");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}

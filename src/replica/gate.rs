//! `windows`: the local-time windows in which a replica may start
//! requests. As the engine's [`Gate`], it holds back every new request
//! (manifests included) until a window is open; requests already running
//! go on. Local time is the system's time zone (`TZ`, else
//! `/etc/localtime`), read through jiff.

use crate::config::Window;
use crate::transfer::source::BoxFuture;
use crate::transfer::Gate;
use std::time::Duration;

/// A replica's windows (none: always open).
#[derive(Debug, Clone)]
pub struct Windows(pub Vec<Window>);

/// Minutes after local midnight now, and seconds left in this minute.
fn local_minute() -> (u16, u64) {
    let now = jiff::Zoned::now();
    let minute = now.hour() as u16 * 60 + now.minute() as u16;
    (minute, 60 - now.second().clamp(0, 59) as u64)
}

impl Windows {
    /// True when a new request may start now.
    pub fn open_now(&self) -> bool {
        self.0.is_empty() || {
            let (m, _) = local_minute();
            self.0.iter().any(|w| w.contains(m))
        }
    }

    /// The windows and the local time, for messages.
    pub fn describe(&self) -> String {
        let list: Vec<String> = self.0.iter().map(|w| w.to_string()).collect();
        let (m, _) = local_minute();
        format!(
            "outside its windows ({}; local time {:02}:{:02}): nothing is requested until one opens",
            list.join(", "),
            m / 60,
            m % 60
        )
    }

    /// Wait until a window is open (checked at each minute's turn).
    pub async fn wait_open(&self) {
        while !self.open_now() {
            let (_, left) = local_minute();
            tokio::time::sleep(Duration::from_secs(left.max(1))).await;
        }
    }
}

impl Gate for Windows {
    fn admit(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.wait_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_windows_is_always_open_and_a_whole_day_window_too() {
        assert!(Windows(Vec::new()).open_now());
        assert!(Windows(vec![Window::parse("00:00-00:00").unwrap()]).open_now());
        let (m, _) = local_minute();
        let shut = Window {
            start: (m + 120) % 1440,
            end: (m + 180) % 1440,
        };
        let w = Windows(vec![shut]);
        assert!(!w.open_now());
        assert!(
            w.describe().contains("outside its windows"),
            "{}",
            w.describe()
        );
    }
}

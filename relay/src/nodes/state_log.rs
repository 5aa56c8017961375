//! What a node says about itself after the handshake (`Availability`,
//! `BlockList`), logged so that a node cannot flood the log with it: changes
//! only, and at most one info line per [`STATE_LOG_INTERVAL`] per connection.

use spareband_protocol::{NodeMessage, PauseReason};
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// Least time between two info lines about one node's `Availability` or
/// `BlockList`: a node may send these as often as it likes, and each used to
/// write a line, so a node could flood the log. Repeats of what it already
/// said, and changes within the interval, go to debug; the next info line
/// says how many were held back.
pub(crate) const STATE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What one connection last said about its availability and block list, to
/// log changes only, at most one info line per [`STATE_LOG_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct StateLog {
    availability: Option<(bool, PauseReason, u16)>,
    blocklist: Option<Vec<String>>,
    last_info: Option<Instant>,
    held_back: u32,
}

/// Whether a state frame is worth an info line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogLevel {
    /// A change, and the interval has passed: info, with the changes held back.
    Info(u32),
    /// A repeat, or a change too soon after the last info line.
    Debug,
}

impl StateLog {
    fn level(&mut self, changed: bool, now: Instant) -> LogLevel {
        if !changed {
            return LogLevel::Debug;
        }
        if self
            .last_info
            .is_some_and(|t| now.duration_since(t) < STATE_LOG_INTERVAL)
        {
            self.held_back += 1;
            return LogLevel::Debug;
        }
        self.last_info = Some(now);
        LogLevel::Info(std::mem::take(&mut self.held_back))
    }

    /// Logs an `Availability` or `BlockList` frame; other frames are ignored.
    pub(crate) fn log(&mut self, msg: &NodeMessage, now: Instant) {
        match msg {
            NodeMessage::Availability {
                accepting,
                reason,
                max_concurrency,
            } => {
                let new = (*accepting, *reason, *max_concurrency);
                let changed = self.availability.replace(new) != Some(new);
                match self.level(changed, now) {
                    LogLevel::Info(held_back) => {
                        info!(
                            accepting,
                            ?reason,
                            max_concurrency,
                            held_back,
                            "node availability"
                        )
                    }
                    LogLevel::Debug => {
                        debug!(accepting, ?reason, max_concurrency, "node availability")
                    }
                }
            }
            NodeMessage::BlockList { domains } => {
                let changed = self.blocklist.as_ref() != Some(domains);
                if changed {
                    self.blocklist = Some(domains.clone());
                }
                match self.level(changed, now) {
                    LogLevel::Info(held_back) => info!(
                        blocked = domains.len(),
                        held_back, "the node's owner blocks domains"
                    ),
                    LogLevel::Debug => debug!(blocked = domains.len(), "node block list"),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node repeating or flapping its state gets at most one info line per
    /// interval. Logging every frame at info (as before) fails the flood
    /// half: checked once by hand.
    #[test]
    fn state_frames_log_changes_at_most_once_per_interval() {
        let mut log = StateLog::default();
        let t0 = Instant::now();
        assert_eq!(log.level(true, t0), LogLevel::Info(0));
        assert_eq!(log.level(false, t0), LogLevel::Debug, "a repeat");
        let flood = (1..1000)
            .filter(|i| log.level(true, t0 + Duration::from_millis(*i)) != LogLevel::Debug);
        assert_eq!(flood.count(), 0, "a flapping node within the interval");
        assert_eq!(
            log.level(true, t0 + STATE_LOG_INTERVAL),
            LogLevel::Info(999)
        );
        // What counts as a change: the frame's content, not its arrival.
        let avail = NodeMessage::Availability {
            accepting: false,
            reason: PauseReason::DailyCap,
            max_concurrency: 4,
        };
        let mut log = StateLog::default();
        log.log(&avail, t0);
        assert!(log.last_info == Some(t0));
        log.log(&avail, t0 + STATE_LOG_INTERVAL * 2);
        assert!(log.last_info == Some(t0), "a repeat is not a change");
    }
}

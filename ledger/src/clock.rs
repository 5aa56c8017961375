//! Time as the ledger stores it: Unix milliseconds, UTC days and months,
//! hours and reward epochs. Pure arithmetic on Unix ms, except [`now_ms`].

use spareband_protocol::calendar;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use spareband_protocol::calendar::{month_start, utc_day, DAY_MS, HOUR_MS};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A Unix-ms time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub fn utc_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        utc_day(ms),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A reward epoch: epochs are aligned to multiples of their length in Unix
/// time, and numbered by that multiple (`start / length`). This is the one
/// epoch number: receipts, the dashboard, the popup, the API and the CSV
/// export all show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Epoch {
    /// Its number: `start_ms / length`.
    pub index: i64,
    /// Start, Unix ms (inclusive).
    pub start_ms: i64,
    /// End, Unix ms (exclusive).
    pub end_ms: i64,
}

impl Epoch {
    /// The epoch holding `ms` for epochs of `len`.
    pub fn at(ms: i64, len: Duration) -> Self {
        Self::numbered(calendar::epoch_index(ms, len_ms(len)), len)
    }

    /// Epoch number `index` for epochs of `len`.
    pub fn numbered(index: i64, len: Duration) -> Self {
        let (start_ms, end_ms) = calendar::epoch_bounds(index, len_ms(len));
        Epoch {
            index,
            start_ms,
            end_ms,
        }
    }
}

/// An epoch length in ms, at least 1.
pub fn len_ms(len: Duration) -> i64 {
    len.as_millis().clamp(1, i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_months_and_epochs() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_868_800_000), "2000-03-01");
        assert_eq!(utc_day(951_868_800_000 - 1), "2000-02-29");
        assert_eq!(utc_time(951_868_800_000 - 1), "2000-02-29T23:59:59Z");
        assert_eq!(utc_time(-1), "1969-12-31T23:59:59Z");
        // 2026-11-22T05:00Z → 2026-11-01T00:00Z
        assert_eq!(month_start(1_795_323_600_000), 1_793_491_200_000);
        let e = Epoch::at(DAY_MS * 3 + 5, Duration::from_secs(86_400));
        assert_eq!((e.index, e.start_ms, e.end_ms), (3, 3 * DAY_MS, 4 * DAY_MS));
        assert_eq!(Epoch::numbered(3, Duration::from_secs(86_400)), e);
    }
}

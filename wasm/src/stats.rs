//! What the node has shared: today, in all, and per hour for the last day.
//! Counted with the protocol's definition of a metered byte, so the numbers
//! match the relay's.

use spareband_protocol::calendar;

/// The hour number of a chart bar (the protocol's hours, in the `u64` the
/// saved stats use).
fn hour_of(now_ms: u64) -> u64 {
    calendar::hour_of(now_ms as i64) as u64
}

/// Hours kept for the popup's chart.
pub const CHART_HOURS: usize = 24;
/// Epochs whose verified counts are kept one by one (years of daily epochs);
/// older ones remain in the all-time total only.
pub const KEPT_EPOCHS: usize = 1000;

/// The relay's reward terms as last told (amounts as decimal strings: they
/// outgrow a JavaScript number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    /// Epoch length in ms.
    pub epoch_ms: u64,
    /// Base units per GiB in the current epoch.
    pub reward_per_gib: String,
    /// The last closed epoch (0: none).
    pub last_closed_epoch: u64,
    /// What this node's address can claim from it, base units.
    pub claimable: String,
    /// Whether this node earns (false: another node on its IP address does).
    pub earning: bool,
}

impl From<&spareband_protocol::RewardTerms> for Terms {
    fn from(t: &spareband_protocol::RewardTerms) -> Self {
        Terms {
            epoch_ms: t.epoch_ms,
            reward_per_gib: t.reward_per_gib.to_string(),
            last_closed_epoch: t.last_closed_epoch,
            claimable: t.claimable.to_string(),
            earning: t.earning,
        }
    }
}

/// Requests and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Bytes carried towards targets.
    pub up: u64,
    /// Bytes carried back.
    pub down: u64,
    /// Jobs completed.
    pub requests: u64,
}

impl Counts {
    /// Up plus down.
    pub fn bytes(&self) -> u64 {
        self.up + self.down
    }
}

/// The node's running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Local date of `today`, as `YYYY-MM-DD`.
    pub day: String,
    /// Today's counts.
    pub today: Counts,
    /// First local date of the owner's billing month `this_month` counts,
    /// as `YYYY-MM-DD` (the plan's reset day, see the options).
    pub month: String,
    /// This billing month's counts.
    pub this_month: Counts,
    /// All-time counts.
    pub total: Counts,
    /// `(hour number since the epoch, bytes)` for recent hours.
    pub hours: Vec<(u64, u64)>,
    /// All-time counts confirmed by the relay's signed receipts.
    pub verified: Counts,
    /// Receipts that did not verify or disagreed with the node's own count.
    pub receipt_problems: u64,
    /// Local date of `verified_today`.
    pub verified_day: String,
    /// Today's counts confirmed by receipts.
    pub verified_today: Counts,
    /// Counts confirmed by receipts per reward epoch (the relay's aligned
    /// index, as signed in each receipt), oldest first.
    pub verified_epochs: Vec<(u64, Counts)>,
    /// The relay's reward terms, as last told.
    pub terms: Option<Terms>,
}

impl Stats {
    /// Starts a new day's counts when the local date changed, and a new
    /// billing month's when its first day did.
    pub fn roll(&mut self, day: &str, month: &str) {
        if self.day != day {
            self.day = day.to_string();
            self.today = Counts::default();
        }
        if self.month != month {
            self.month = month.to_string();
            self.this_month = Counts::default();
        }
    }

    /// Adds bytes carried (and a finished request, if `request`) on local
    /// date `day` of the billing month that began on `month`.
    pub fn record(
        &mut self,
        now_ms: u64,
        (day, month): (&str, &str),
        up: u64,
        down: u64,
        request: bool,
    ) {
        self.roll(day, month);
        for c in [&mut self.today, &mut self.this_month, &mut self.total] {
            c.up += up;
            c.down += down;
            c.requests += request as u64;
        }
        let hour = hour_of(now_ms);
        match self.hours.last_mut() {
            Some((h, b)) if *h == hour => *b += up + down,
            _ => self.hours.push((hour, up + down)),
        }
        let oldest = hour.saturating_sub(CHART_HOURS as u64 - 1);
        self.hours.retain(|(h, _)| *h >= oldest);
    }

    /// Applies a receipt check made on local date `day`.
    pub fn receipt(&mut self, check: spareband_protocol::receipts::Check, day: &str) {
        use spareband_protocol::receipts::Check;
        match check {
            Check::Verified { up, down, epoch } => {
                if self.verified_day != day {
                    self.verified_day = day.to_string();
                    self.verified_today = Counts::default();
                }
                let at = match self.verified_epochs.iter().position(|(e, _)| *e >= epoch) {
                    Some(i) if self.verified_epochs[i].0 == epoch => i,
                    Some(i) => {
                        self.verified_epochs.insert(i, (epoch, Counts::default()));
                        i
                    }
                    None => {
                        self.verified_epochs.push((epoch, Counts::default()));
                        self.verified_epochs.len() - 1
                    }
                };
                for c in [
                    &mut self.verified,
                    &mut self.verified_today,
                    &mut self.verified_epochs[at].1,
                ] {
                    c.up += up;
                    c.down += down;
                    c.requests += 1;
                }
                if self.verified_epochs.len() > KEPT_EPOCHS {
                    self.verified_epochs.remove(0);
                }
            }
            Check::Mismatch { .. } | Check::BadSignature => self.receipt_problems += 1,
            Check::Pending => {}
        }
    }

    /// Bytes per hour for the last 24 hours, oldest first.
    pub fn last_day(&self, now_ms: u64) -> Vec<u64> {
        let now = hour_of(now_ms);
        (0..CHART_HOURS as u64)
            .rev()
            .map(|ago| {
                let h = now.saturating_sub(ago);
                self.hours
                    .iter()
                    .find(|(x, _)| *x == h)
                    .map_or(0, |(_, b)| *b)
            })
            .collect()
    }

    /// Today's bytes, for the cap.
    pub fn today_bytes(&self, day: &str) -> u64 {
        if self.day == day {
            self.today.bytes()
        } else {
            0
        }
    }

    /// Bytes in the billing month that began on `month`.
    pub fn month_bytes(&self, month: &str) -> u64 {
        if self.month == month {
            self.this_month.bytes()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = calendar::HOUR_MS as u64;

    #[test]
    fn counts_roll_over_at_midnight_and_keep_totals() {
        let mut s = Stats::default();
        let nov = |day| (day, "2026-11-01");
        s.record(10 * HOUR_MS, nov("2026-11-21"), 10, 90, true);
        s.record(10 * HOUR_MS + 5, nov("2026-11-21"), 0, 50, false);
        assert_eq!(
            s.today,
            Counts {
                up: 10,
                down: 140,
                requests: 1
            }
        );
        assert_eq!(s.today_bytes("2026-11-21"), 150);
        assert_eq!(s.today_bytes("2026-11-22"), 0);
        s.record(30 * HOUR_MS, nov("2026-11-22"), 1, 1, true);
        assert_eq!(
            s.month_bytes("2026-11-01"),
            152,
            "the month keeps both days"
        );
        assert_eq!(s.month_bytes("2026-12-01"), 0);
        assert_eq!(
            s.today,
            Counts {
                up: 1,
                down: 1,
                requests: 1
            }
        );
        assert_eq!(
            s.total,
            Counts {
                up: 11,
                down: 141,
                requests: 2
            }
        );
    }

    #[test]
    fn receipts_add_to_verified_totals_or_to_problems() {
        use spareband_protocol::receipts::Check;
        let mut s = Stats::default();
        s.receipt(
            Check::Verified {
                up: 1,
                down: 2,
                epoch: 7,
            },
            "2026-11-21",
        );
        s.receipt(Check::Pending, "2026-11-21");
        s.receipt(Check::BadSignature, "2026-11-21");
        s.receipt(
            Check::Mismatch {
                relay: (1, 1),
                own: (1, 2),
            },
            "2026-11-21",
        );
        assert_eq!(
            s.verified,
            Counts {
                up: 1,
                down: 2,
                requests: 1
            }
        );
        assert_eq!(s.receipt_problems, 2);
    }

    #[test]
    fn verified_counts_are_kept_per_day_and_per_epoch() {
        use spareband_protocol::receipts::Check;
        let mut s = Stats::default();
        let v = |up, down, epoch| Check::Verified { up, down, epoch };
        s.receipt(v(1, 10, 5), "2026-11-21");
        s.receipt(v(2, 20, 7), "2026-11-21");
        // A receipt for an earlier epoch arriving late goes in its place.
        s.receipt(v(3, 30, 6), "2026-11-22");
        s.receipt(v(4, 40, 7), "2026-11-22");
        let bytes: Vec<(u64, u64)> = s
            .verified_epochs
            .iter()
            .map(|(e, c)| (*e, c.bytes()))
            .collect();
        assert_eq!(bytes, vec![(5, 11), (6, 33), (7, 66)]);
        assert_eq!(s.verified_today.bytes(), 77);
        assert_eq!(s.verified_day, "2026-11-22");
        assert_eq!(s.verified.bytes(), 110);
        for e in 0..(KEPT_EPOCHS as u64 + 10) {
            s.receipt(v(0, 1, 100 + e), "2026-11-23");
        }
        assert_eq!(s.verified_epochs.len(), KEPT_EPOCHS);
        assert_eq!(
            s.verified_epochs.last().unwrap().0,
            100 + KEPT_EPOCHS as u64 + 9
        );
    }

    #[test]
    fn the_chart_shows_the_last_24_hours() {
        let mut s = Stats::default();
        s.record(100 * HOUR_MS, ("d", "m"), 5, 5, true);
        s.record(123 * HOUR_MS, ("d", "m"), 1, 2, true);
        let chart = s.last_day(123 * HOUR_MS + 1);
        assert_eq!(chart.len(), 24);
        assert_eq!(chart[23], 3);
        assert_eq!(chart[0], 10);
        // An hour later, hour 100 has dropped out of the window.
        s.record(124 * HOUR_MS, ("d", "m"), 1, 0, true);
        let chart = s.last_day(124 * HOUR_MS);
        assert_eq!((chart[0], chart[22], chart[23]), (0, 3, 1));
        assert!(s.hours.len() <= CHART_HOURS);
    }
}

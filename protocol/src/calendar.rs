//! UTC calendar arithmetic on Unix milliseconds, in one place: the day a
//! count belongs to, the month a quota runs in, the minute a site cap counts
//! in, the hour of a chart bar and the reward epoch of a receipt. Pure
//! functions of their arguments; the caller reads the clock.
//!
//! Days are converted with Howard Hinnant's `civil_from_days` and
//! `days_from_civil` (<https://howardhinnant.github.io/date_algorithms.html>),
//! exact for every `i64` day the callers can meet, before 1970 included.

/// One minute, in ms.
pub const MINUTE_MS: i64 = 60_000;
/// One hour, in ms.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// One UTC day, in ms (UTC days have no leap seconds in Unix time).
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
/// Days in a 400-year era.
const ERA_DAYS: i64 = 146_097;

/// Day of the week of a date, 0 = Monday … 6 = Sunday (1970-01-01 was a
/// Thursday).
pub fn weekday(year: i32, month: u8, day: u8) -> u8 {
    (days_from_civil(year as i64, month as i64, day as i64) + 3).rem_euclid(7) as u8
}

/// `(year, month 1..=12, day 1..=31)` of a day number since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + EPOCH_SHIFT_DAYS;
    let era = z.div_euclid(ERA_DAYS);
    let doe = z - era * ERA_DAYS;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day number since 1970-01-01 of a civil date (the inverse of
/// [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * ERA_DAYS + doe - EPOCH_SHIFT_DAYS
}

/// The UTC date holding `ms`, as `YYYY-MM-DD`.
pub fn utc_day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix ms of the first instant of the UTC month holding `ms`.
pub fn month_start(ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    days_from_civil(y, m, 1) * DAY_MS
}

/// The minute number since the epoch holding `ms` (fixed one-minute windows).
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

/// The hour number since the epoch holding `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

/// The index of the epoch of length `len_ms` holding `ms`; epochs are aligned
/// to the Unix epoch. A length below 1 ms counts as 1 ms.
pub fn epoch_index(ms: i64, len_ms: i64) -> i64 {
    ms.div_euclid(len_ms.max(1))
}

/// `(start, end)` in Unix ms of epoch `index` of length `len_ms`: `start` is
/// in it, `end` is the first instant of the next one.
pub fn epoch_bounds(index: i64, len_ms: i64) -> (i64, i64) {
    let len = len_ms.max(1);
    let start = index.saturating_mul(len);
    (start, start.saturating_add(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_the_epoch() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(DAY_MS - 1), "1970-01-01");
        assert_eq!(utc_day(DAY_MS), "1970-01-02");
        assert_eq!(utc_day(-1), "1969-12-31");
        assert_eq!(utc_day(-DAY_MS), "1969-12-31");
        assert_eq!(utc_day(-DAY_MS - 1), "1969-12-30");
        assert_eq!(utc_day(1_795_323_600_000), "2026-11-22");
    }

    #[test]
    fn leap_years() {
        let at = |y, m, d| days_from_civil(y, m, d) * DAY_MS;
        assert_eq!(utc_day(at(2024, 2, 29)), "2024-02-29");
        assert_eq!(utc_day(at(2024, 2, 29) + DAY_MS), "2024-03-01");
        assert_eq!(utc_day(at(2023, 2, 28) + DAY_MS), "2023-03-01");
        // Centuries are leap years only every 400 years.
        assert_eq!(utc_day(at(2000, 2, 28) + DAY_MS), "2000-02-29");
        assert_eq!(utc_day(at(2100, 2, 28) + DAY_MS), "2100-03-01");
        assert_eq!(utc_day(at(1900, 2, 28) + DAY_MS), "1900-03-01");
        assert_eq!(month_start(at(2024, 3, 1) - 1), at(2024, 2, 1));
    }

    #[test]
    fn days_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn months_start_at_their_first_instant() {
        assert_eq!(month_start(1_795_323_600_000), 1_793_491_200_000);
        assert_eq!(month_start(0), 0);
        assert_eq!(month_start(31 * DAY_MS - 1), 0);
        assert_eq!(month_start(31 * DAY_MS), 31 * DAY_MS);
        assert_eq!(month_start(-1), -31 * DAY_MS);
        let s = month_start(1_795_323_600_000);
        assert_eq!(month_start(s), s);
        assert_eq!(month_start(s - 1), days_from_civil(2026, 10, 1) * DAY_MS);
    }

    #[test]
    fn minutes_and_hours() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 1);
        assert_eq!(minute_of(-1), -1);
        assert_eq!(hour_of(HOUR_MS * 5 + 1), 5);
        assert_eq!(hour_of(-1), -1);
    }

    #[test]
    fn epochs() {
        assert_eq!(epoch_index(0, DAY_MS), 0);
        assert_eq!(epoch_index(DAY_MS - 1, DAY_MS), 0);
        assert_eq!(epoch_index(DAY_MS, DAY_MS), 1);
        assert_eq!(epoch_index(-1, DAY_MS), -1);
        assert_eq!(epoch_index(5, 0), 5);
        assert_eq!(epoch_bounds(0, DAY_MS), (0, DAY_MS));
        assert_eq!(epoch_bounds(3, 10), (30, 40));
        assert_eq!(epoch_bounds(-1, 10), (-10, 0));
        for ms in [-25, -10, -1, 0, 1, 9, 10, 11, 1_795_323_600_000] {
            let (start, end) = epoch_bounds(epoch_index(ms, 10), 10);
            assert!(start <= ms && ms < end);
        }
    }
}

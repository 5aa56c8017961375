//! The UTC calendar on Unix milliseconds: the one copy of the civil-date
//! arithmetic every component uses (days for usage, months for quotas).
//! Proleptic Gregorian, valid for any `i64` day count that fits.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC date `(year, month 1–12, day 1–31)` of a Unix-ms time.
pub fn civil_from_ms(ms: i64) -> (i64, u32, u32) {
    civil_from_days(ms.div_euclid(DAY_MS))
}

/// The date of a day count since 1970-01-01 (civil-from-days).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a date (days-from-civil, the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (y, m) = if m <= 2 {
        (y - 1, i64::from(m) + 9)
    } else {
        (y, i64::from(m) - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The first instant (Unix ms) of the UTC month that holds `ms`.
pub fn month_start(ms: i64) -> i64 {
    let (y, m, _) = civil_from_ms(ms);
    days_from_civil(y, m, 1) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_across_leap_days_and_before_1970() {
        for days in [-800_000, -1, 0, 1, 10_957, 11_016, 11_017, 20_789, 800_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2000-02-29 exists (divisible by 400); 2100-02-29 does not.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(
            civil_from_days(days_from_civil(2100, 2, 28) + 1),
            (2100, 3, 1)
        );
    }

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        // 2026-11-22T05:00Z → 2026-11-01T00:00Z
        assert_eq!(month_start(1_795_323_600_000), 1_793_491_200_000);
        // The first instant of a month is its own start; the one before is
        // in February of a leap year.
        assert_eq!(month_start(951_868_800_000), 951_868_800_000);
        assert_eq!(
            civil_from_ms(month_start(951_868_800_000 - 1)),
            (2000, 2, 1)
        );
    }
}

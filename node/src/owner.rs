//! The owner's controls on a native node: one speed limit per direction
//! shared by every job, the bytes shared per local day and billing month
//! (kept in a file beside the node key, so a restart does not reset a
//! cap), and, from `spareband_protocol::controls`, whether the node pauses
//! now. A native node has no signal for a metered connection, so it shares
//! on any connection (`--help` says so).

use chrono::{Datelike, Local, Timelike};
use spareband_protocol::controls::{billing_month, Date, Limits, LocalTime, Pace, Usage};
use spareband_protocol::PauseReason;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// How often a connection checks whether a pause began or ended (a new
/// day, month or scheduled hour): a schedule edge is honoured within this.
pub const PAUSE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Longest the usage file may lag behind the jobs (a crash loses at most
/// this much of the count).
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// What the owner chose.
#[derive(Debug, Clone, Default)]
pub struct OwnerControls {
    /// Download limit, Mbit/s (what the node fetches: answers from targets,
    /// request bodies from the relay).
    pub down_mbps: Option<f64>,
    /// Upload limit, Mbit/s (what the node sends: answers to the relay,
    /// request bodies to targets).
    pub up_mbps: Option<f64>,
    /// Caps and schedule.
    pub limits: Limits,
}

/// Where the owner's local time comes from: the system's zone, or a test's
/// day.
#[derive(Clone)]
pub struct Clock(pub Arc<dyn Fn() -> LocalTime + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Clock {
    fn now(&self) -> LocalTime {
        (self.0)()
    }
}

/// How long a reading of the local time is used again: jobs finish
/// thousands of times a second, and the zone's rules are not read for each.
const CLOCK_REUSE: Duration = Duration::from_secs(1);

impl Clock {
    /// A clock that says what the caller sets (tests that cross a day or
    /// a month).
    pub fn settable(start: LocalTime) -> (Clock, Arc<Mutex<LocalTime>>) {
        let time = Arc::new(Mutex::new(start));
        let read = time.clone();
        let clock = Clock(Arc::new(move || {
            *read.lock().unwrap_or_else(|e| e.into_inner())
        }));
        (clock, time)
    }
}

/// The system's local time, read at most once per [`CLOCK_REUSE`].
pub fn system_clock() -> Clock {
    let last: Mutex<Option<(std::time::Instant, LocalTime)>> = Mutex::new(None);
    Clock(Arc::new(move || {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, t)) = *last {
            if at.elapsed() < CLOCK_REUSE {
                return t;
            }
        }
        let now = Local::now();
        let date = Date {
            year: now.year(),
            month: now.month() as u8,
            day: now.day() as u8,
        };
        let t = LocalTime::at(date, (now.hour() * 60 + now.minute()) as u16);
        *last = Some((std::time::Instant::now(), t));
        t
    }))
}

/// Bytes shared, with the local day and billing month they count in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Book {
    day: Date,
    month_start: Date,
    usage: Usage,
}

impl Book {
    /// Moves the counts to `today`'s day and month, zeroing what ended.
    fn roll(&mut self, today: Date, reset_day: u8) {
        if self.day != today {
            self.day = today;
            self.usage.today = 0;
        }
        let (start, _) = billing_month(today, reset_day);
        if self.month_start != start {
            self.month_start = start;
            self.usage.this_month = 0;
        }
    }

    fn to_line(self) -> String {
        format!(
            "{} {} {} {}\n",
            self.day, self.usage.today, self.month_start, self.usage.this_month
        )
    }

    fn from_line(line: &str) -> Option<Book> {
        let mut p = line.split_whitespace();
        let date = |s: &str| {
            let mut d = s.split('-');
            Some(Date {
                year: d.next()?.parse().ok()?,
                month: d.next()?.parse().ok()?,
                day: d.next()?.parse().ok()?,
            })
        };
        // The fields in the order `to_line` writes them.
        let (day, today) = (date(p.next()?)?, p.next()?.parse().ok()?);
        let (month_start, this_month) = (date(p.next()?)?, p.next()?.parse().ok()?);
        Some(Book {
            day,
            month_start,
            usage: Usage { today, this_month },
        })
    }
}

/// The controls in force, shared by the node's connections and jobs.
pub struct Owner {
    down: Option<Mutex<Pace>>,
    up: Option<Mutex<Pace>>,
    limits: Limits,
    clock: Clock,
    file: PathBuf,
    book: Mutex<(Book, Instant)>,
    started: Instant,
}

impl Owner {
    /// The controls, with the usage saved in `file` (read now; a missing
    /// or unreadable file starts from zero, with a warning for the latter).
    pub fn new(controls: OwnerControls, clock: Clock, file: PathBuf) -> Self {
        let now = clock.now();
        let reset_day = controls.limits.reset_day.max(1);
        let mut book = read(&file).unwrap_or(Book {
            day: now.date,
            month_start: billing_month(now.date, reset_day).0,
            usage: Usage::default(),
        });
        book.roll(now.date, reset_day);
        Owner {
            down: controls.down_mbps.map(|m| Mutex::new(Pace::mbps(m))),
            up: controls.up_mbps.map(|m| Mutex::new(Pace::mbps(m))),
            limits: controls.limits,
            clock,
            file,
            book: Mutex::new((book, Instant::now())),
            started: Instant::now(),
        }
    }

    fn now(&self) -> LocalTime {
        self.clock.now()
    }

    /// Whether a cap is set, so that a finished job can change the answer
    /// of [`Owner::pause`].
    pub fn has_caps(&self) -> bool {
        self.limits.daily_cap_bytes.is_some() || self.limits.monthly_cap_bytes.is_some()
    }

    /// Waits until `n` bytes may pass in both directions: bytes the node
    /// receives and sends on (an answer from a target to the relay, a
    /// request body from the relay to a target). Returns at once without a
    /// limit.
    pub async fn pace(&self, n: usize) {
        // Every frame of every job passes here: without a limit, nothing.
        if self.down.is_none() && self.up.is_none() {
            return;
        }
        let now = self.started.elapsed().as_micros() as u64;
        let wait = [&self.down, &self.up]
            .into_iter()
            .flatten()
            .map(|p| {
                p.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .book(n as u64, now)
            })
            .max()
            .unwrap_or(0);
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
    }

    /// Counts a finished job's metered bytes against the caps.
    pub fn record(&self, bytes: u64) {
        let today = self.now().date;
        let mut g = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let (book, saved) = &mut *g;
        book.roll(today, self.limits.reset_day.max(1));
        book.usage.today += bytes;
        book.usage.this_month += bytes;
        if saved.elapsed() >= SAVE_EVERY {
            *saved = Instant::now();
            self.save(*book);
        }
    }

    /// Writes the counts now (at a stop).
    pub fn flush(&self) {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner()).0;
        self.save(book);
    }

    /// Why the node must not take jobs now, if it must not.
    pub fn pause(&self) -> Option<PauseReason> {
        let now = self.now();
        let usage = {
            let mut g = self.book.lock().unwrap_or_else(|e| e.into_inner());
            g.0.roll(now.date, self.limits.reset_day.max(1));
            g.0.usage
        };
        self.limits.pause(usage, now, None)
    }

    fn save(&self, book: Book) {
        let tmp = self.file.with_extension("usage.tmp");
        let written =
            std::fs::write(&tmp, book.to_line()).and_then(|_| std::fs::rename(&tmp, &self.file));
        if let Err(e) = written {
            warn!(file = %self.file.display(), error = %e, "could not save the usage counts");
        }
    }
}

fn read(file: &Path) -> Option<Book> {
    let text = std::fs::read_to_string(file).ok()?;
    let book = Book::from_line(&text);
    if book.is_none() {
        warn!(file = %file.display(), "the usage counts are unreadable; counting from zero");
    }
    book
}

/// Where the usage counts live: beside the key file.
pub fn usage_file(key_file: &Path) -> PathBuf {
    key_file.with_extension("usage")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spareband_protocol::controls::Schedule;

    #[test]
    fn the_monthly_cap_pauses_and_the_next_billing_month_resumes_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.usage");
        // Noon on a day of December 2026.
        let december = |day| {
            LocalTime::at(
                Date {
                    year: 2026,
                    month: 12,
                    day,
                },
                12 * 60,
            )
        };
        let (clock, time) = Clock::settable(december(10));
        let controls = OwnerControls {
            limits: Limits {
                monthly_cap_bytes: Some(1000),
                reset_day: 15,
                schedule: Schedule::default(),
                ..Limits::default()
            },
            ..OwnerControls::default()
        };
        let owner = Owner::new(controls.clone(), clock.clone(), file.clone());
        owner.record(600);
        assert_eq!(owner.pause(), None);
        owner.record(400);
        assert_eq!(owner.pause(), Some(PauseReason::MonthlyCap));
        owner.flush();
        // A restart keeps the count.
        let owner = Owner::new(controls.clone(), clock, file.clone());
        assert_eq!(owner.pause(), Some(PauseReason::MonthlyCap));
        *time.lock().unwrap() = december(14);
        assert_eq!(
            owner.pause(),
            Some(PauseReason::MonthlyCap),
            "still the same month"
        );
        *time.lock().unwrap() = december(15);
        assert_eq!(owner.pause(), None, "the plan reset on the 15th");
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_holds_the_slower_direction() {
        let owner = Owner::new(
            OwnerControls {
                down_mbps: Some(8.0),
                up_mbps: Some(4.0),
                ..OwnerControls::default()
            },
            Clock::settable(LocalTime::at(
                Date {
                    year: 2026,
                    month: 12,
                    day: 1,
                },
                0,
            ))
            .0,
            tempfile::tempdir().unwrap().path().join("u"),
        );
        let t0 = Instant::now();
        for _ in 0..64 {
            owner.pace(16 * 1024).await;
        }
        // 1 MiB at 4 Mbit/s (500,000 B/s), less the first burst.
        let took = t0.elapsed().as_secs_f64();
        assert!((1.9..2.1).contains(&took), "{took} s");
    }
}

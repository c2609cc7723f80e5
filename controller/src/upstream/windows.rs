//! Maintenance-window arithmetic for the release policy: when is the next moment at or after a
//! given time that some window is open. Pure; times are UTC.

use std::time::Duration;

use chrono::{Datelike, Days, TimeDelta};
use vmctl_protocol::{release::MaintenanceWindow, Timestamp};

/// `t + d`, saturating at the largest representable time instead of panicking.
#[must_use]
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|delta| t.checked_add_signed(delta))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The first instant at or after `from` when one of `windows` is open: `from` itself when a
/// window is open then, else the soonest opening. `None` when `windows` is empty.
///
/// Windows last at most a week (the protocol refuses longer ones), so looking a week back (for
/// a window that opened earlier and is still open) and a week ahead covers every case.
#[must_use]
pub fn next_open(windows: &[MaintenanceWindow], from: Timestamp) -> Option<Timestamp> {
    let today = from.date_naive();
    let mut best: Option<Timestamp> = None;
    for w in windows {
        for back in 0..=7 {
            candidate(w, today.checked_sub_days(Days::new(back)), from, &mut best);
        }
        for ahead in 1..=7 {
            candidate(w, today.checked_add_days(Days::new(ahead)), from, &mut best);
        }
    }
    best
}

fn candidate(
    w: &MaintenanceWindow,
    day: Option<chrono::NaiveDate>,
    from: Timestamp,
    best: &mut Option<Timestamp>,
) {
    let Some(day) = day else { return };
    if !w.days.is_empty() && !w.days.contains(&day.weekday()) {
        return;
    }
    let open = day.and_time(w.start).and_utc();
    let at = if open <= from && from < add(open, w.duration) {
        from
    } else if open >= from {
        open
    } else {
        return;
    };
    if best.is_none_or(|b| at < b) {
        *best = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn window(days: &[Weekday], start: (u32, u32), hours: u64) -> MaintenanceWindow {
        MaintenanceWindow {
            days: days.to_vec(),
            start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
            duration: Duration::from_secs(hours * 3600),
        }
    }

    #[test]
    fn the_next_opening_is_found_or_now_when_open() {
        // 2026-01-05 is a Monday.
        let sat = [window(&[Weekday::Sat], (2, 0), 4)];
        let daily = [window(&[], (22, 0), 4)];
        let cases: [(&[MaintenanceWindow], &str, Option<&str>); 7] = [
            (&sat, "2026-01-05T10:00:00Z", Some("2026-01-10T02:00:00Z")),
            (&sat, "2026-01-10T03:00:00Z", Some("2026-01-10T03:00:00Z")),
            (&sat, "2026-01-10T06:00:00Z", Some("2026-01-17T02:00:00Z")),
            (&sat, "2026-01-10T02:00:00Z", Some("2026-01-10T02:00:00Z")),
            // A window that runs past midnight is still open the next morning.
            (&daily, "2026-01-06T01:00:00Z", Some("2026-01-06T01:00:00Z")),
            (&daily, "2026-01-06T02:00:00Z", Some("2026-01-06T22:00:00Z")),
            (&[], "2026-01-06T02:00:00Z", None),
        ];
        for (windows, from, want) in cases {
            assert_eq!(next_open(windows, at(from)), want.map(at), "{from}");
        }
    }

    #[test]
    fn the_soonest_of_several_windows_wins_and_adding_saturates() {
        let ws = [
            window(&[Weekday::Sun], (1, 0), 1),
            window(&[Weekday::Wed], (23, 30), 1),
        ];
        assert_eq!(
            next_open(&ws, at("2026-01-05T10:00:00Z")),
            Some(at("2026-01-07T23:30:00Z"))
        );
        let far = add(at("2026-01-05T10:00:00Z"), Duration::MAX);
        assert_eq!(far, chrono::DateTime::<chrono::Utc>::MAX_UTC);
    }
}

//! The `schedule` step: weekly opening windows in an IANA time zone, plus
//! closed dates, evaluated at the call's timestamp. DST-correct because the
//! instant is converted to local wall-clock time first, then compared.
//!
//! A window whose end is not after its start (`22:00-06:00`) runs past
//! midnight into the next day.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;

use super::model::ScheduleStep;

/// A compiled schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    tz: Tz,
    /// Minutes-from-midnight windows per weekday (Monday = 0), already split
    /// at midnight.
    windows: [Vec<(u16, u16)>; 7],
    closed: Vec<NaiveDate>,
}

impl Schedule {
    /// Whether the schedule is open at `at`.
    pub(crate) fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        if self.closed.contains(&local.date_naive()) {
            return false;
        }
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.windows[local.weekday().num_days_from_monday() as usize]
            .iter()
            .any(|(start, end)| (*start..*end).contains(&minute))
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Compiles a schedule step; problems are `(relative path, message)`.
pub(crate) fn compile(step: &ScheduleStep) -> Result<Schedule, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let tz = step.timezone.parse::<Tz>().map_err(|_| {
        errors.push((
            "timezone".to_owned(),
            format!("unknown IANA time zone {:?}", step.timezone),
        ));
    });
    let mut windows: [Vec<(u16, u16)>; 7] = Default::default();
    for (days, ranges) in &step.open {
        let Some(day_list) = parse_days(days) else {
            errors.push((
                format!("open.{days}"),
                "use mon..sun, a range such as mon-fri, or daily".to_owned(),
            ));
            continue;
        };
        for (i, range) in ranges.iter().enumerate() {
            match parse_range(range) {
                Some((start, end)) => {
                    for &day in &day_list {
                        add_window(&mut windows, day, start, end);
                    }
                }
                None => errors.push((
                    format!("open.{days}[{i}]"),
                    "use HH:MM-HH:MM, e.g. 09:00-17:30".to_owned(),
                )),
            }
        }
    }
    let mut closed = Vec::new();
    for (i, date) in step.closed_dates.iter().enumerate() {
        match NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            Ok(d) => closed.push(d),
            Err(_) => errors.push((format!("closed_dates[{i}]"), "use YYYY-MM-DD".to_owned())),
        }
    }
    match tz {
        Ok(tz) if errors.is_empty() => Ok(Schedule {
            tz,
            windows,
            closed,
        }),
        _ => Err(errors),
    }
}

/// `mon`, `mon-fri`, `sat-sun`, `fri-mon` (wrapping), `daily`, `weekdays`, `weekends`.
fn parse_days(spec: &str) -> Option<Vec<usize>> {
    let spec = spec.trim().to_ascii_lowercase();
    let index = |d: &str| DAYS.iter().position(|x| *x == d.trim());
    match spec.as_str() {
        "daily" | "every day" => return Some((0..7).collect()),
        "weekdays" => return Some((0..5).collect()),
        "weekends" => return Some(vec![5, 6]),
        _ => {}
    }
    match spec.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (index(a)?, index(b)?);
            Some(
                (0..7)
                    .map(|k| (a + k) % 7)
                    .take((b + 7 - a) % 7 + 1)
                    .collect(),
            )
        }
        None => index(&spec).map(|d| vec![d]),
    }
}

/// `HH:MM-HH:MM` in minutes; `24:00` is allowed as an end.
fn parse_range(range: &str) -> Option<(u16, u16)> {
    let (a, b) = range.trim().split_once('-')?;
    let minutes = |t: &str| -> Option<u16> {
        let t = t.trim();
        if t == "24:00" {
            return Some(24 * 60);
        }
        let time = NaiveTime::parse_from_str(t, "%H:%M").ok()?;
        Some((time.hour() * 60 + time.minute()) as u16)
    };
    let (start, end) = (minutes(a)?, minutes(b)?);
    (start < 24 * 60 && start != end).then_some((start, end))
}

fn add_window(windows: &mut [Vec<(u16, u16)>; 7], day: usize, start: u16, end: u16) {
    if end > start {
        windows[day].push((start, end));
    } else {
        windows[day].push((start, 24 * 60));
        windows[(day + 1) % 7].push((0, end));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::routing::model::ScheduleBranches;

    fn schedule(tz: &str, open: &[(&str, &[&str])], closed: &[&str]) -> Schedule {
        let step = ScheduleStep {
            timezone: tz.to_owned(),
            open: open
                .iter()
                .map(|(d, r)| ((*d).to_owned(), r.iter().map(|s| (*s).to_owned()).collect()))
                .collect::<BTreeMap<_, _>>(),
            closed_dates: closed.iter().map(|s| (*s).to_owned()).collect(),
            branches: ScheduleBranches {
                open: "a".into(),
                closed: "b".into(),
            },
        };
        compile(&step).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn new_york_across_the_spring_forward() {
        // 2026-03-08 02:00 EST → 03:00 EDT. Open daily 09:00-17:00 local.
        let s = schedule("America/New_York", &[("daily", &["09:00-17:00"])], &[]);
        assert!(!s.is_open(at("2026-03-07T13:59:00Z")), "08:59 EST");
        assert!(s.is_open(at("2026-03-07T14:00:00Z")), "09:00 EST");
        assert!(!s.is_open(at("2026-03-07T13:30:00Z")), "08:30 EST");
        assert!(
            s.is_open(at("2026-03-08T13:30:00Z")),
            "09:30 EDT (08:30 with a stale offset)"
        );
        assert!(!s.is_open(at("2026-03-08T12:59:00Z")), "08:59 EDT");
        assert!(s.is_open(at("2026-03-08T13:00:00Z")), "09:00 EDT");
        assert!(s.is_open(at("2026-03-08T20:59:00Z")), "16:59 EDT");
        assert!(!s.is_open(at("2026-03-08T21:00:00Z")), "17:00 EDT");
    }

    #[test]
    fn berlin_across_the_autumn_fallback() {
        // 2026-10-25 03:00 CEST → 02:00 CET. Open mon-fri and sun 08:00-12:00.
        let s = schedule(
            "Europe/Berlin",
            &[("mon-fri", &["08:00-12:00"]), ("sun", &["08:00-12:00"])],
            &[],
        );
        assert!(s.is_open(at("2026-10-25T07:00:00Z")), "Sunday 08:00 CET");
        assert!(!s.is_open(at("2026-10-25T06:30:00Z")), "Sunday 07:30 CET");
        assert!(!s.is_open(at("2026-10-24T06:00:00Z")), "Saturday is closed");
        assert!(s.is_open(at("2026-10-23T06:00:00Z")), "Friday 08:00 CEST");
        assert!(!s.is_open(at("2026-10-23T10:00:00Z")), "Friday 12:00 CEST");
    }

    #[test]
    fn closed_dates_and_overnight_windows() {
        let s = schedule(
            "UTC",
            &[("fri", &["22:00-02:00"]), ("mon-fri", &["09:00-17:00"])],
            &["2026-12-25"],
        );
        assert!(s.is_open(at("2026-12-04T23:00:00Z")), "Friday 23:00");
        assert!(
            s.is_open(at("2026-12-05T01:59:00Z")),
            "Saturday 01:59, still Friday's window"
        );
        assert!(!s.is_open(at("2026-12-05T02:00:00Z")));
        assert!(
            !s.is_open(at("2026-12-25T10:00:00Z")),
            "Christmas (a Friday) is closed"
        );
        assert!(s.is_open(at("2026-12-24T10:00:00Z")));
    }

    #[test]
    fn bad_schedules_name_every_problem() {
        let step = ScheduleStep {
            timezone: "Mars/Olympus".into(),
            open: BTreeMap::from([
                ("funday".into(), vec!["9-5".into()]),
                ("mon".into(), vec!["25:00-26:00".into()]),
            ]),
            closed_dates: vec!["12/25".into()],
            branches: ScheduleBranches {
                open: "a".into(),
                closed: "b".into(),
            },
        };
        let errors = compile(&step).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["timezone", "open.funday", "open.mon[0]", "closed_dates[0]"]
        );
    }

    #[test]
    fn day_ranges_wrap_around_the_week() {
        assert_eq!(parse_days("fri-mon"), Some(vec![4, 5, 6, 0]));
        assert_eq!(parse_days("mon-fri"), Some(vec![0, 1, 2, 3, 4]));
        assert_eq!(parse_days("Sat"), Some(vec![5]));
        assert_eq!(parse_days("xyz"), None);
    }
}

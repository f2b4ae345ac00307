//! Schedule expressions as EventBridge Scheduler reads them, and when each fires next in
//! its time zone: `cron(minutes hours day-of-month month day-of-week year)`,
//! `rate(value unit)` and `at(yyyy-mm-ddThh:mm:ss)`. The local runner fires schedules by
//! these rules, and AWS by its own; a test holds both to the same expressions.
//!
//! Daylight saving follows EventBridge Scheduler: a cron time that does not exist on the
//! day the clocks go forward is skipped, and one that happens twice on the day they go
//! back fires once (the first time). A rate counts fixed durations (a day is 24 hours).

use super::{
    FireOutcome, MicroUsd, ProjectId, RunId, ScheduleCatchUp, ScheduleId, ScheduleKind,
    ScheduleOverlap, UserId,
};
use chrono::{DateTime, Datelike, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;

/// The years a cron expression may fire in (EventBridge's range).
const YEARS: std::ops::RangeInclusive<i32> = 1970..=2199;

/// A schedule's expression, checked.
#[derive(Debug, Clone)]
pub enum Expression {
    /// Fires at each local time the pattern matches.
    Cron(Box<Cron>),
    /// Fires every `period` from the schedule's start.
    Rate(Duration),
    /// Fires once, at this local time.
    At(NaiveDateTime),
}

/// A cron expression, parsed by croner with EventBridge's fields: a year, and day-of-week
/// numbers from 1 for Sunday (Quartz's, croner's alternative weekdays).
#[derive(Debug, Clone)]
pub struct Cron {
    pattern: croner::Cron,
}

impl FromStr for Expression {
    type Err = String;

    /// Reads `text` with EventBridge Scheduler's grammar; the error says what is wrong.
    fn from_str(text: &str) -> Result<Expression, String> {
        let text = text.trim();
        let inner = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(fields) = inner("cron(") {
            return Cron::parse(fields).map(|cron| Expression::Cron(Box::new(cron)));
        }
        if let Some(rate) = inner("rate(") {
            return rate_of(rate).map(Expression::Rate);
        }
        if let Some(at) = inner("at(") {
            return NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S")
                .map(Expression::At)
                .map_err(|_| format!("at({at}) must name a local time as yyyy-mm-ddThh:mm:ss"));
        }
        Err(
            "must be cron(minutes hours day-of-month month day-of-week year), rate(value unit) or at(yyyy-mm-ddThh:mm:ss)"
                .to_owned(),
        )
    }
}

/// `rate(value unit)`: a positive whole number of minutes, hours or days, the unit singular
/// for 1 and plural otherwise.
fn rate_of(text: &str) -> Result<Duration, String> {
    let refuse = || {
        format!(
            "rate({text}) must be a positive whole number and minute(s), hour(s) or day(s), such as rate(1 hour) or rate(5 minutes)"
        )
    };
    let (value, unit) = text.split_once(char::is_whitespace).ok_or_else(refuse)?;
    let value: u64 = value.parse().ok().filter(|v| *v > 0).ok_or_else(refuse)?;
    let seconds = match (unit.trim(), value) {
        ("minute", 1) | ("minutes", 2..) => 60,
        ("hour", 1) | ("hours", 2..) => 3600,
        ("day", 1) | ("days", 2..) => 86_400,
        _ => return Err(refuse()),
    };
    value
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(refuse)
}

impl Cron {
    fn parse(fields: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = fields.split_whitespace().collect();
        let [minutes, hours, day_of_month, month, day_of_week, year] = parts[..] else {
            return Err(format!(
                "cron({fields}) must have six fields: minutes hours day-of-month month day-of-week year"
            ));
        };
        // EventBridge: one of the day fields is `?`, the other says which days.
        let (day_of_month, day_of_week) = match (day_of_month, day_of_week) {
            ("?", "?") => {
                return Err(format!(
                    "cron({fields}): only one of day-of-month and day-of-week may be ?"
                ));
            }
            ("?", dow) => ("*", dow),
            (dom, "?") => (dom, "*"),
            _ => {
                return Err(format!(
                    "cron({fields}): one of day-of-month and day-of-week must be ?, the other names the days"
                ));
            }
        };
        if let Some(year) = year
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| n.len() == 4)
            .filter_map(|n| n.parse::<i32>().ok())
            .find(|y| !YEARS.contains(y))
        {
            return Err(format!(
                "cron({fields}): the year {year} is not within 1970-2199"
            ));
        }
        let minutes = quartz_steps(minutes, 59);
        let hours = quartz_steps(hours, 23);
        let day_of_month = quartz_steps(day_of_month, 31);
        let month = quartz_steps(month, 12);
        let year = quartz_steps(year, *YEARS.end());
        // croner takes a year only after a seconds field: EventBridge fires at second 0.
        let seven = format!("0 {minutes} {hours} {day_of_month} {month} {day_of_week} {year}");
        let pattern = croner::parser::CronParser::builder()
            .alternative_weekdays(true)
            .seconds(croner::parser::Seconds::Required)
            .year(croner::parser::Year::Required)
            .build()
            .parse(&seven)
            .map_err(|e| format!("cron({fields}) is not a schedule: {e}"))?;
        Ok(Cron { pattern })
    }

    /// The first time after `after` whose wall-clock time in `tz` matches, skipping the
    /// times the clocks skip and the second of the times they repeat.
    fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.step(after, tz, croner::Direction::Forward)
            .filter(|at| *at > after)
    }

    /// The latest time at or before `until` that fires.
    fn latest_until(&self, until: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let inclusive = until + chrono::Duration::seconds(1);
        self.step(inclusive, tz, croner::Direction::Backward)
            .filter(|at| *at <= until)
    }

    /// The first time from `from` in `direction` whose wall-clock time in `tz` matches,
    /// skipping the times the clocks skip and the second of the times they repeat.
    fn step(
        &self,
        from: DateTime<Utc>,
        tz: Tz,
        direction: croner::Direction,
    ) -> Option<DateTime<Utc>> {
        let mut from = from.with_timezone(&tz);
        // Each turn moves past one candidate the clocks skipped or repeated.
        for _ in 0..100 {
            let candidate = match direction {
                croner::Direction::Forward => self.pattern.find_next_occurrence(&from, false),
                croner::Direction::Backward => self.pattern.find_previous_occurrence(&from, false),
            }
            .ok()?;
            if !YEARS.contains(&candidate.year()) {
                return None;
            }
            let fires = match tz.from_local_datetime(&candidate.naive_local()) {
                // The wall-clock time is the matched one, not a time shifted out of a gap.
                LocalResult::Single(at) => self.pattern.is_time_matching(&at).unwrap_or(false),
                LocalResult::Ambiguous(first, _) => first == candidate,
                LocalResult::None => false,
            };
            if fires {
                return Some(candidate.with_timezone(&Utc));
            }
            from = candidate;
        }
        None
    }
}

/// EventBridge's `start/step` (`0/15`: from 0 every 15) as croner writes it,
/// `start-last/step`; every other part of the field as it is.
fn quartz_steps(field: &str, last: i32) -> String {
    field
        .split(',')
        .map(|part| match part.split_once('/') {
            Some((start, step))
                if !start.is_empty() && start.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!("{start}-{last}/{step}")
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How many whole `period`s fit in `elapsed`.
fn rate_periods(period: Duration, elapsed: chrono::Duration) -> Option<i64> {
    let step = i64::try_from(period.as_millis()).ok().filter(|s| *s > 0)?;
    Some(elapsed.num_milliseconds() / step)
}

/// `start` plus `periods` times `period`, if the calendar reaches it.
fn rate_at(period: Duration, start: DateTime<Utc>, periods: i64) -> Option<DateTime<Utc>> {
    let step = i64::try_from(period.as_millis()).ok()?;
    let offset = chrono::Duration::try_milliseconds(periods.checked_mul(step)?)?;
    start.checked_add_signed(offset)
}

/// A time zone by its IANA name (`Europe/Paris`, `UTC`).
pub fn time_zone(name: &str) -> Result<Tz, String> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone name, such as Europe/Paris or UTC"))
}

impl Expression {
    /// When a schedule made (or resumed) at `now` fires first: a rate at once, as
    /// EventBridge Scheduler starts a rate with no start date; the others at their next
    /// time after `now`.
    pub fn first_after(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Expression::Rate(_) => Some(now),
            _ => self.next_after(now, tz, now),
        }
    }

    /// The latest time the schedule fires at or before `until` (a rate counts from
    /// `start`), if any.
    pub fn latest_until(
        &self,
        until: DateTime<Utc>,
        tz: Tz,
        start: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Expression::Cron(cron) => cron.latest_until(until, tz),
            Expression::Rate(period) => {
                if start > until {
                    return None;
                }
                rate_at(*period, start, rate_periods(*period, until - start)?)
            }
            Expression::At(_) => self
                .next_after(until - chrono::Duration::days(36_600), tz, start)
                .filter(|at| *at <= until),
        }
    }

    /// When the schedule fires next after `after`, in `tz`; a rate counts from `start`.
    /// `None` when it never fires again (an `at` that has passed, a cron of past years).
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
        start: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Expression::Cron(cron) => cron.next_after(after, tz),
            Expression::Rate(period) => {
                if start > after {
                    return Some(start);
                }
                let periods = rate_periods(*period, after - start)?;
                rate_at(*period, start, periods.checked_add(1)?)
            }
            Expression::At(local) => {
                let at = match tz.from_local_datetime(local) {
                    LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at,
                    // A time the clocks skip: the first moment after the gap.
                    LocalResult::None => tz
                        .from_local_datetime(&local.checked_add_signed(chrono::Duration::hours(1))?)
                        .earliest()?,
                };
                let at = at.with_timezone(&Utc);
                (at > after).then_some(at)
            }
        }
    }
}

/// A project's command started by a clock, in its time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schedule {
    pub id: ScheduleId,
    pub project_id: ProjectId,
    #[serde(skip)]
    pub user_id: UserId,
    /// What its runs do: the command, or the daily marketing loop.
    pub kind: ScheduleKind,
    /// `cron(...)`, `rate(...)` or `at(...)`, as EventBridge Scheduler reads it.
    pub expression: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    pub command: String,
    /// Each run's budget.
    pub budget_micro_usd: MicroUsd,
    pub overlap: ScheduleOverlap,
    pub catch_up: ScheduleCatchUp,
    pub enabled: bool,
    /// When it fires next; `null` when paused or when it never fires again.
    pub next_fire_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one fire of a schedule did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fire {
    pub schedule_id: ScheduleId,
    /// The time it was due (one fire per schedule and time).
    pub scheduled_at: DateTime<Utc>,
    pub outcome: FireOutcome,
    /// The run it started.
    pub run_id: Option<RunId>,
    /// Why it started nothing, or why it waits.
    pub reason: Option<String>,
    pub fired_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn fires(expression: &str, tz: &str, after: &str, count: usize) -> Vec<String> {
        let expression: Expression = expression.parse().expect("an expression");
        let tz = time_zone(tz).expect("a zone");
        let start = utc(after);
        let mut at = start;
        let mut seen = Vec::new();
        for _ in 0..count {
            match expression.next_after(at, tz, start) {
                Some(next) => {
                    seen.push(next.with_timezone(&tz).to_rfc3339());
                    at = next;
                }
                None => break,
            }
        }
        seen
    }

    #[test]
    fn a_daily_cron_keeps_its_local_time_across_both_daylight_saving_changes() {
        // Paris goes to summer time on 29 March 2026 and back on 25 October 2026.
        let spring = fires(
            "cron(0 8 * * ? *)",
            "Europe/Paris",
            "2026-03-27T12:00:00Z",
            3,
        );
        assert_eq!(
            spring,
            [
                "2026-03-28T08:00:00+01:00",
                "2026-03-29T08:00:00+02:00",
                "2026-03-30T08:00:00+02:00"
            ]
        );
        let autumn = fires(
            "cron(0 8 * * ? *)",
            "Europe/Paris",
            "2026-10-24T12:00:00Z",
            2,
        );
        assert_eq!(
            autumn,
            ["2026-10-25T08:00:00+01:00", "2026-10-26T08:00:00+01:00"]
        );
    }

    #[test]
    fn a_time_the_clocks_skip_is_skipped_and_one_they_repeat_fires_once() {
        let gap = fires(
            "cron(30 2 * * ? *)",
            "Europe/Paris",
            "2026-03-28T00:00:00Z",
            2,
        );
        assert_eq!(
            gap,
            ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"]
        );
        let twice = fires(
            "cron(30 2 * * ? *)",
            "Europe/Paris",
            "2026-10-24T12:00:00Z",
            2,
        );
        assert_eq!(
            twice,
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
    }

    #[test]
    fn a_start_and_step_counts_from_the_start_as_eventbridge_reads_it() {
        let quarterly = fires("cron(0/15 * * * ? *)", "UTC", "2026-12-06T10:07:00Z", 3);
        assert_eq!(
            quarterly,
            [
                "2026-12-06T10:15:00+00:00",
                "2026-12-06T10:30:00+00:00",
                "2026-12-06T10:45:00+00:00"
            ]
        );
    }

    #[test]
    fn weekdays_are_numbered_from_sunday_as_eventbridge_does() {
        // 6 December 2026 is a Sunday: 2 is Monday.
        let monday = fires("cron(0 9 ? * 2 *)", "UTC", "2026-12-06T00:00:00Z", 1);
        assert_eq!(monday, ["2026-12-07T09:00:00+00:00"]);
        let named = fires("cron(0 9 ? * MON-FRI *)", "UTC", "2026-12-05T00:00:00Z", 1);
        assert_eq!(named, ["2026-12-07T09:00:00+00:00"]);
    }

    #[test]
    fn the_year_field_bounds_a_cron() {
        let last = fires("cron(0 0 1 1 ? 2027)", "UTC", "2026-06-01T00:00:00Z", 3);
        assert_eq!(last, ["2027-01-01T00:00:00+00:00"]);
        let every_other = fires("cron(0 0 1 1 ? 2026/2)", "UTC", "2026-06-01T00:00:00Z", 2);
        assert_eq!(
            every_other,
            ["2028-01-01T00:00:00+00:00", "2030-01-01T00:00:00+00:00"]
        );
    }

    #[test]
    fn a_rate_counts_fixed_periods_from_its_start_and_at_fires_once() {
        let hourly = fires("rate(1 hour)", "UTC", "2026-12-06T10:15:00Z", 2);
        assert_eq!(
            hourly,
            ["2026-12-06T11:15:00+00:00", "2026-12-06T12:15:00+00:00"]
        );
        let once = fires(
            "at(2026-12-24T08:00:00)",
            "Europe/Paris",
            "2026-12-06T00:00:00Z",
            3,
        );
        assert_eq!(once, ["2026-12-24T08:00:00+01:00"]);
    }

    #[test]
    fn a_schedule_that_never_fires_again_says_so_without_running_away() {
        let start = utc("2026-12-06T00:00:00Z");
        let utc_zone = time_zone("UTC").expect("a zone");
        let never: Expression = "cron(0 0 31 2 ? *)".parse().expect("an expression");
        assert_eq!(
            never.next_after(start, utc_zone, start),
            None,
            "no 31 February"
        );
        let huge: Expression = "rate(99999999 days)".parse().expect("an expression");
        assert_eq!(
            huge.next_after(start, utc_zone, start),
            None,
            "past the calendar"
        );
        let past: Expression = "cron(0 0 1 1 ? 2020)".parse().expect("an expression");
        assert_eq!(past.next_after(start, utc_zone, start), None);
        assert_eq!(
            past.latest_until(start, utc_zone, start),
            Some(utc("2020-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn anything_else_is_refused_with_what_is_wrong() {
        for bad in [
            "cron(0 8 * * *)",
            "cron(0 8 * * 1 *)",
            "cron(0 8 ? * ? *)",
            "cron(61 8 * * ? *)",
            "cron(0 8 * * ? 1969)",
            "rate(0 minutes)",
            "rate(1 minutes)",
            "rate(2 hour)",
            "rate(5 weeks)",
            "at(2026-12-24 08:00)",
            "every day",
            "",
        ] {
            assert!(bad.parse::<Expression>().is_err(), "{bad}");
        }
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(time_zone("Europe/Paris").is_ok());
    }
}

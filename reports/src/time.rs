//! Local time for reports: the zone the buckets are counted in (China time unless configured)
//! and the time filter (today / yesterday / last 7 days / last month / a custom range of at
//! most a year), resolved to whole local days.
//!
//! Aggregates are kept per UTC hour, so the zone is a read-time setting: changing it rebuilds
//! nothing. That needs every offset of the zone to be a whole number of hours, which
//! [`Zone::new`] checks (China, Europe and the Americas are; India is not).

use jiff::tz::TimeZone;
use jiff::{civil::Date, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest custom range, in days (the manual allows a month; we allow a year).
pub const MAX_RANGE_DAYS: i64 = 366;

/// Why a zone or a time filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("time zone {0:?} is not known")]
    UnknownZone(String),
    #[error("time zone {0:?} has offsets that are not whole hours; reports count whole local hours")]
    PartHourZone(String),
    #[error("{field}: {value:?} is not a date (YYYY-MM-DD)")]
    BadDate { field: &'static str, value: String },
    #[error("to: the range ends before it starts")]
    Inverted,
    #[error("to: a range covers at most {max} days (got {got})")]
    TooLong { max: i64, got: i64 },
}

impl TimeError {
    /// The message in Chinese, naming the field.
    pub fn message_zh(&self) -> String {
        match self {
            TimeError::UnknownZone(z) => format!("时区“{z}”不存在"),
            TimeError::PartHourZone(z) => format!("时区“{z}”的偏移不是整小时，报表按整点统计"),
            TimeError::BadDate { field, value } => format!("{field}：“{value}”不是日期（YYYY-MM-DD）"),
            TimeError::Inverted => "to：结束日期早于开始日期".to_owned(),
            TimeError::TooLong { max, got } => format!("to：时间段最多 {max} 天（现有 {got} 天）"),
        }
    }
}

/// The zone reports count local hours and days in.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// China time, the default.
    pub fn china() -> Zone {
        Zone::new("Asia/Shanghai").unwrap_or_else(|_| Zone { name: "UTC".to_owned(), tz: TimeZone::UTC })
    }

    /// A zone by IANA name; refused when unknown or when any offset since 1970 (or in the
    /// next 20 years) is not a whole hour.
    pub fn new(name: &str) -> Result<Zone, TimeError> {
        let tz = TimeZone::get(name).map_err(|_| TimeError::UnknownZone(name.to_owned()))?;
        // Checking a sample each ~30 days catches every zone with a part-hour standard offset
        // and the part-hour summer times (Lord Howe); history before 1970 never matters here.
        let mut at = 0_i64;
        while at < 2_400_000_000 {
            let ts = Timestamp::from_second(at).map_err(|_| TimeError::UnknownZone(name.to_owned()))?;
            if tz.to_offset(ts).seconds() % 3600 != 0 {
                return Err(TimeError::PartHourZone(name.to_owned()));
            }
            at += 30 * 86_400 + 7_200;
        }
        Ok(Zone { name: name.to_owned(), tz })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's offset at `unix` seconds, in seconds.
    pub fn offset_at(&self, unix: i64) -> i64 {
        match Timestamp::from_second(unix) {
            Ok(ts) => i64::from(self.tz.to_offset(ts).seconds()),
            Err(_) => 0,
        }
    }

    /// The local hour (hours since 1970-01-01 00:00 local) of the UTC hour `utc_hour`.
    pub fn local_hour(&self, utc_hour: i64) -> i64 {
        let at = utc_hour * 3600;
        (at + self.offset_at(at)).div_euclid(3600)
    }

    /// The local day (days since 1970-01-01 local) of `unix` seconds.
    pub fn local_day(&self, unix: i64) -> i64 {
        (unix + self.offset_at(unix)).div_euclid(86_400)
    }

    pub(crate) fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::china()
    }
}

/// The preview's time filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimeFilter {
    Today,
    Yesterday,
    /// Today and the 6 days before.
    #[serde(rename = "last_7_days")]
    Last7Days,
    /// Today and the 29 days before (近一月).
    LastMonth,
    /// From `from` to `to`, both included, local dates `YYYY-MM-DD`.
    Custom { from: String, to: String },
}

/// Whole local days, both ends included, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRange {
    pub first: i64,
    pub last: i64,
}

impl DayRange {
    /// The UTC hours `[start, end)` whose local hours fall in the range. Offsets are whole
    /// hours, so a local day is exactly 24 (or, across a DST change, 23 or 25) UTC hours.
    pub fn utc_hours(&self, zone: &Zone) -> (i64, i64) {
        let start_local = self.first * 86_400;
        let end_local = (self.last + 1) * 86_400;
        // The offset at the boundary, found from the offset an hour-ish around it.
        let start = start_local - zone.offset_at(start_local - zone.offset_at(start_local));
        let end = end_local - zone.offset_at(end_local - zone.offset_at(end_local));
        (start.div_euclid(3600), end.div_euclid(3600))
    }
}

fn parse_date(field: &'static str, value: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::BadDate { field, value: value.to_owned() };
    let date: Date = value.trim().parse().map_err(|_| bad())?;
    Ok(days_from_civil(i64::from(date.year()), i64::from(date.month()), i64::from(date.day())))
}

impl TimeFilter {
    /// The local days the filter covers when it is `now` (unix seconds) in `zone`.
    pub fn resolve(&self, now: i64, zone: &Zone) -> Result<DayRange, TimeError> {
        let today = zone.local_day(now);
        let range = match self {
            TimeFilter::Today => DayRange { first: today, last: today },
            TimeFilter::Yesterday => DayRange { first: today - 1, last: today - 1 },
            TimeFilter::Last7Days => DayRange { first: today - 6, last: today },
            TimeFilter::LastMonth => DayRange { first: today - 29, last: today },
            TimeFilter::Custom { from, to } => {
                let first = parse_date("from", from)?;
                let last = parse_date("to", to)?;
                if last < first {
                    return Err(TimeError::Inverted);
                }
                let got = last - first + 1;
                if got > MAX_RANGE_DAYS {
                    return Err(TimeError::TooLong { max: MAX_RANGE_DAYS, got });
                }
                DayRange { first, last }
            }
        };
        Ok(range)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// ISO weekday 1 (Monday) - 7 of days since 1970-01-01 (a Thursday).
pub fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7) + 1
}

/// Months since 1970-01 of days since 1970-01-01.
pub fn month_index(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    (y - 1970) * 12 + m - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_and_weekdays_match_jiff() {
        for day in [-800, -1, 0, 59, 365, 11_016, 20_429, 24_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            let date = Date::new(y as i16, m as i8, d as i8).unwrap();
            assert_eq!(weekday(day), i64::from(date.weekday().to_monday_one_offset()));
        }
    }

    #[test]
    fn china_midnight_is_16_utc_and_filters_resolve() {
        let zone = Zone::china();
        // 2026-12-07 01:00 China = 2026-12-06 17:00 UTC.
        let now = 1_796_490_000 + 17 * 3600 - 1_796_490_000 % 86_400;
        let today = zone.local_day(now);
        let range = TimeFilter::Today.resolve(now, &zone).unwrap();
        assert_eq!(range, DayRange { first: today, last: today });
        let (start, end) = range.utc_hours(&zone);
        assert_eq!(end - start, 24);
        assert_eq!(zone.local_hour(start).rem_euclid(24), 0);
        assert_eq!(TimeFilter::LastMonth.resolve(now, &zone).unwrap().first, today - 29);
        let custom = TimeFilter::Custom { from: "2026-01-01".into(), to: "2026-12-31".into() };
        assert_eq!(custom.resolve(now, &zone).unwrap().last - custom.resolve(now, &zone).unwrap().first, 364);
    }

    #[test]
    fn bad_ranges_and_zones_are_refused() {
        let zone = Zone::china();
        let long = TimeFilter::Custom { from: "2025-01-01".into(), to: "2026-12-31".into() };
        assert!(matches!(long.resolve(0, &zone), Err(TimeError::TooLong { max: 366, .. })));
        let inverted = TimeFilter::Custom { from: "2026-02-01".into(), to: "2026-01-01".into() };
        assert_eq!(inverted.resolve(0, &zone), Err(TimeError::Inverted));
        let bad = TimeFilter::Custom { from: "2026-13-01".into(), to: "2026-01-01".into() };
        assert!(matches!(bad.resolve(0, &zone), Err(TimeError::BadDate { field: "from", .. })));
        assert!(matches!(Zone::new("Asia/Kolkata"), Err(TimeError::PartHourZone(_))));
        assert!(matches!(Zone::new("Mars/Base"), Err(TimeError::UnknownZone(_))));
        Zone::new("Europe/Berlin").unwrap();
    }

    #[test]
    fn a_dst_day_has_23_utc_hours() {
        let zone = Zone::new("Europe/Berlin").unwrap();
        let day = days_from_civil(2026, 3, 29);
        let (start, end) = DayRange { first: day, last: day }.utc_hours(&zone);
        assert_eq!(end - start, 23);
        assert_eq!(zone.local_hour(start), day * 24);
    }
}

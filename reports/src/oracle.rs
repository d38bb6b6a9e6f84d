//! The brute-force answer: every raw fact read, filtered and grouped one by one, with the
//! local time worked out by the tz library from each attempt's own start. Slow on purpose and
//! simple on purpose: tests hold the engine's answer against it.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::fact::{hangup_code, hangup_name, AttemptFact, Measures, N_MEASURES};
use crate::model::{Condition, ReportDef, Subject, Tag};
use crate::store::{all_facts, ReportError};
use crate::table::{day_text, field_statistics, values, Filter, KeyPart, ReportTable, Row, Value};
use crate::time::{days_from_civil, Zone};

/// The local (day number, hour, weekday, `YYYY-MM`) of an instant.
fn local(zone: &Zone, unix: i64) -> (i64, i64, i64, String) {
    let zoned = Timestamp::from_second(unix).unwrap_or(Timestamp::UNIX_EPOCH).to_zoned(zone.tz().clone());
    let date = zoned.date();
    let day = days_from_civil(i64::from(date.year()), i64::from(date.month()), i64::from(date.day()));
    let weekday = i64::from(date.weekday().to_monday_one_offset());
    (day, i64::from(zoned.hour()), weekday, format!("{:04}-{:02}", date.year(), date.month()))
}

fn combo_value(combo: &[(String, String)], key: &str) -> String {
    combo.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
}

fn subject_text(fact: &AttemptFact, combo: &[(String, String)], hour: i64, weekday: i64, s: &Subject) -> String {
    match s {
        Subject::Project => fact.project.to_string(),
        Subject::Site => fact.site.to_string(),
        Subject::Team => fact.team.clone(),
        Subject::Extension => fact.extension.clone(),
        Subject::Agent => fact.agent.clone(),
        Subject::Batch => fact.batch.to_string(),
        Subject::Account => fact.account.clone(),
        Subject::HangupSide => hangup_name(hangup_code(fact.hangup)).to_owned(),
        Subject::Direction => fact.direction.name().to_owned(),
        Subject::Hour => hour.to_string(),
        Subject::Weekday => weekday.to_string(),
        Subject::Field { key } => combo_value(combo, key),
    }
}

fn passes(condition: &Condition, text: &str) -> bool {
    // Numbers compare as numbers ("07" is hour 7).
    let numeric =
        matches!(condition.subject, Subject::Project | Subject::Site | Subject::Batch | Subject::Hour | Subject::Weekday);
    let same = |v: &String| {
        v == text || numeric && v.parse::<i64>().ok().is_some_and(|n| text.parse::<i64>().ok() == Some(n))
    };
    condition.values.iter().any(same) != condition.negate
}

fn in_filter(fact: &AttemptFact, filter: &Filter, day: i64) -> bool {
    let has = |list: &Option<Vec<i64>>, v: i64| list.as_ref().is_none_or(|l| l.contains(&v));
    let has_text = |list: &Option<Vec<String>>, v: &String| list.as_ref().is_none_or(|l| l.contains(v));
    has(&filter.projects, fact.project)
        && has(&filter.sites, fact.site)
        && has_text(&filter.accounts, &fact.account)
        && has_text(&filter.teams, &fact.team)
        && (filter.days.first..=filter.days.last).contains(&day)
}

fn key_part(fact: &AttemptFact, tag: Tag, day: i64, hour: i64, weekday: i64, month: &str) -> KeyPart {
    let site_text = |text: &String| KeyPart::SiteText { site: fact.site, text: text.clone() };
    match tag {
        Tag::Project => KeyPart::Int(fact.project),
        Tag::Site => KeyPart::Int(fact.site),
        Tag::Team => site_text(&fact.team),
        Tag::Extension => site_text(&fact.extension),
        Tag::Agent => site_text(&fact.agent),
        Tag::Batch => KeyPart::Int(fact.batch),
        Tag::Account => KeyPart::Text(fact.account.clone()),
        Tag::HangupSide => KeyPart::Text(hangup_name(hangup_code(fact.hangup)).to_owned()),
        Tag::Direction => KeyPart::Text(fact.direction.name().to_owned()),
        Tag::Hour => KeyPart::Int(hour),
        Tag::Weekday => KeyPart::Int(weekday),
        Tag::Day => KeyPart::Text(day_text(day)),
        Tag::Month => KeyPart::Text(month.to_owned()),
    }
}

/// Answers `def` over every raw fact in `conn`.
pub fn run_brute_force(
    conn: &rusqlite::Connection,
    zone: &Zone,
    def: &ReportDef,
    filter: &Filter,
) -> Result<ReportTable, ReportError> {
    let fields = field_statistics(def);
    let mut groups: BTreeMap<Vec<KeyPart>, (Measures, Vec<i64>)> = BTreeMap::new();
    for (fact, combo_text) in all_facts(conn)? {
        let combo: Vec<(String, String)> = serde_json::from_str(&combo_text)?;
        let (day, hour, weekday, month) = local(zone, fact.started_at);
        if !in_filter(&fact, filter, day) {
            continue;
        }
        let ok = def.conditions.iter().all(|c| passes(c, &subject_text(&fact, &combo, hour, weekday, &c.subject)));
        if !ok {
            continue;
        }
        let keys = def.tags.iter().map(|t| key_part(&fact, *t, day, hour, weekday, &month)).collect();
        let (sums, counts) = groups.entry(keys).or_insert(([0; N_MEASURES], vec![0; fields.len()]));
        for (sum, m) in sums.iter_mut().zip(fact.measures()) {
            *sum += m;
        }
        for (count, (key, value)) in counts.iter_mut().zip(&fields) {
            *count += i64::from(&combo_value(&combo, key) == value);
        }
    }
    let mut total = ([0_i64; N_MEASURES], vec![0_i64; fields.len()]);
    let rows = groups
        .into_iter()
        .map(|(keys, (m, counts))| {
            for (t, v) in total.0.iter_mut().zip(m) {
                *t += v;
            }
            for (t, v) in total.1.iter_mut().zip(&counts) {
                *t += v;
            }
            Row { keys, values: values(def, &m, &fields, &counts) }
        })
        .collect();
    let total: Vec<Value> = values(def, &total.0, &fields, &total.1);
    Ok(ReportTable { tags: def.tags.clone(), headers: def.columns.iter().map(|c| c.header.clone()).collect(), rows, total })
}

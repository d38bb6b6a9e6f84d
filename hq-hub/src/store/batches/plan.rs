//! Which rows of a dispatch go to which site (and agent), decided without the database.
//!
//! [`plan_dispatch`] takes what the store read (the file's rows left after the blacklist,
//! the project's attribution rules, a verdict on each site the request names) and answers
//! the batches to write, or why there are none:
//!
//! - shared (共享批次): every chosen site (each once, in the order given) gets all rows;
//! - exclusive (独享批次): each part takes the next `count` rows, in file order, for its site;
//! - auto (自动批次): each row goes to the site of the first rule its field value matches
//!   (trimmed), and to the rule's agent through the system field `seat` if the rule names
//!   one; rows no rule matches are counted as not found.
//!
//! `Store::dispatch` (in `batches`, this module's parent) reads, plans, then leaves out numbers already live at a
//! site and writes the batches.

use std::collections::{BTreeMap, BTreeSet};

use super::{AttributionRule, DispatchError, DispatchKind};

/// One imported row on its way into batches.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SourceRow {
    pub import_row_id: i64,
    pub row_number: u32,
    pub phone: String,
    pub fields: Vec<(String, String)>,
}

/// What the store found about a site the dispatch names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SiteVerdict {
    /// It exists, takes part in the project and lies in the caller's data permission.
    Open,
    /// No such site.
    Unknown,
    /// Not among the project's participating sites.
    NotParticipating,
    /// Outside the caller's data permission.
    OutsideScope,
}

/// What the planner is given.
pub(super) struct PlanInput<'a> {
    /// The batch name (trimmed) of shared and auto batches.
    pub name: &'a str,
    pub kind: &'a DispatchKind,
    /// The sites of a shared batch.
    pub site_ids: &'a [i64],
    /// The file's rows, blacklisted numbers already removed.
    pub rows: Vec<SourceRow>,
    /// The project's attribution rules, in order (read for auto batches only).
    pub rules: &'a [AttributionRule],
    /// A verdict for every site the request or the rules name; a site missing here is
    /// unknown.
    pub sites: &'a BTreeMap<i64, SiteVerdict>,
}

/// One batch to write.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlannedBatch {
    pub name: String,
    pub site_id: i64,
    pub rows: Vec<SourceRow>,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DispatchPlan {
    /// `shared`, `exclusive` or `auto`, as the batches are stored.
    pub kind: &'static str,
    pub batches: Vec<PlannedBatch>,
    /// Auto batches: rows a rule routed (归属数量) and rows no rule matched (未找到归属数量).
    pub attributed: u64,
    pub not_found: u64,
}

/// Every site a request may send rows to: the shared sites, the exclusive parts' sites and
/// the sites the rules name (the store judges each before planning).
pub(super) fn named_sites(kind: &DispatchKind, site_ids: &[i64], rules: &[AttributionRule]) -> BTreeSet<i64> {
    let mut sites: BTreeSet<i64> = site_ids.iter().copied().collect();
    match kind {
        DispatchKind::Shared => {}
        DispatchKind::Exclusive(parts) => sites.extend(parts.iter().map(|p| p.site_id)),
        DispatchKind::Auto => sites.extend(rules.iter().map(|r| r.site_id)),
    }
    sites
}

fn check_site(sites: &BTreeMap<i64, SiteVerdict>, site_id: i64) -> Result<(), DispatchError> {
    match sites.get(&site_id).copied().unwrap_or(SiteVerdict::Unknown) {
        SiteVerdict::Open => Ok(()),
        SiteVerdict::Unknown => Err(DispatchError::UnknownSite(site_id)),
        SiteVerdict::NotParticipating => Err(DispatchError::NotParticipating(site_id)),
        SiteVerdict::OutsideScope => Err(DispatchError::OutsideScope(site_id)),
    }
}

/// Plans a dispatch: the batches, in the order they are written. The first problem met
/// (in request order) is the answer when there is one.
pub(super) fn plan_dispatch(input: PlanInput<'_>) -> Result<DispatchPlan, DispatchError> {
    let PlanInput { name, kind, site_ids, rows, rules, sites } = input;
    let mut plan = DispatchPlan { kind: "shared", batches: Vec::new(), attributed: 0, not_found: 0 };
    match kind {
        DispatchKind::Shared => {
            let mut seen = BTreeSet::new();
            let site_ids: Vec<i64> = site_ids.iter().copied().filter(|id| seen.insert(*id)).collect();
            if site_ids.is_empty() {
                return Err(DispatchError::NoSites);
            }
            for site in site_ids {
                check_site(sites, site)?;
                plan.batches.push(PlannedBatch { name: name.to_string(), site_id: site, rows: rows.clone() });
            }
        }
        DispatchKind::Exclusive(parts) => {
            plan.kind = "exclusive";
            if parts.is_empty() {
                return Err(DispatchError::NoSites);
            }
            let asked: u64 = parts.iter().map(|p| p.count).sum();
            if asked > rows.len() as u64 {
                return Err(DispatchError::TooManyRows { asked, available: rows.len() as u64 });
            }
            let mut rest = rows.into_iter();
            for (idx, part) in parts.iter().enumerate() {
                let part_name = part.name.trim();
                if part_name.is_empty() {
                    return Err(DispatchError::BadPart { number: idx + 1, reason: "the name is empty: name each batch".into() });
                }
                if part.count == 0 {
                    return Err(DispatchError::BadPart { number: idx + 1, reason: "the count is 0: give it at least one row".into() });
                }
                check_site(sites, part.site_id)?;
                let taken = rest.by_ref().take(part.count as usize).collect();
                plan.batches.push(PlannedBatch { name: part_name.to_string(), site_id: part.site_id, rows: taken });
            }
        }
        DispatchKind::Auto => {
            plan.kind = "auto";
            if rules.is_empty() {
                return Err(DispatchError::NoRules);
            }
            let mut by_site: BTreeMap<i64, Vec<SourceRow>> = BTreeMap::new();
            for mut row in rows {
                let rule = rules
                    .iter()
                    .find(|rule| row.fields.iter().any(|(key, value)| *key == rule.field_key && value.trim() == rule.value));
                match rule {
                    Some(rule) => {
                        plan.attributed += 1;
                        if !rule.agent.is_empty() {
                            // The system field 归属座席 (seat): the site hands the row to this agent.
                            row.fields.retain(|(key, _)| key != "seat");
                            row.fields.push(("seat".to_string(), rule.agent.clone()));
                        }
                        by_site.entry(rule.site_id).or_default().push(row);
                    }
                    None => plan.not_found += 1,
                }
            }
            for (site, site_rows) in by_site {
                check_site(sites, site)?;
                plan.batches.push(PlannedBatch { name: name.to_string(), site_id: site, rows: site_rows });
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::*;
    use crate::store::ExclusivePart;

    /// Rows 2..=7 of a file: phone, and the team field (一组 / 二组 / none).
    fn rows() -> Vec<SourceRow> {
        let teams = ["一组", " 二组 ", "三组", "一组", "", "二组"];
        teams
            .iter()
            .enumerate()
            .map(|(idx, team)| SourceRow {
                import_row_id: idx as i64 + 100,
                row_number: idx as u32 + 2,
                phone: format!("1380013800{idx}"),
                fields: vec![("team".to_string(), team.to_string()), ("seat".to_string(), String::new())],
            })
            .collect()
    }

    fn rule(value: &str, site_id: i64, agent: &str) -> AttributionRule {
        AttributionRule { field_key: "team".into(), value: value.into(), site_id, agent: agent.into() }
    }

    fn part(name: &str, count: u64, site_id: i64) -> ExclusivePart {
        ExclusivePart { name: name.into(), count, site_id }
    }

    /// Sites 1 and 2 are open, 3 does not take part, 4 is outside the caller's permission,
    /// any other is unknown.
    fn check(kind: DispatchKind, site_ids: &[i64], rules: &[AttributionRule], expect: Expect) {
        let sites = BTreeMap::from([
            (1, SiteVerdict::Open),
            (2, SiteVerdict::Open),
            (3, SiteVerdict::NotParticipating),
            (4, SiteVerdict::OutsideScope),
        ]);
        let input = PlanInput { name: "五月", kind: &kind, site_ids, rows: rows(), rules, sites: &sites };
        let out = match plan_dispatch(input) {
            Ok(plan) => {
                let mut out = format!("{}: attributed {}, not found {}\n", plan.kind, plan.attributed, plan.not_found);
                for batch in plan.batches {
                    let rows: Vec<String> = batch
                        .rows
                        .iter()
                        .map(|row| match row.fields.iter().find(|(key, value)| key == "seat" && !value.is_empty()) {
                            Some((_, seat)) => format!("{}@{seat}", row.row_number),
                            None => row.row_number.to_string(),
                        })
                        .collect();
                    out.push_str(&format!("  {} → site {}: rows {}\n", batch.name, batch.site_id, rows.join(" ")));
                }
                out
            }
            Err(e) => format!("error: {e}\n"),
        };
        expect.assert_eq(&out);
    }

    #[test]
    fn shared_batches_give_every_chosen_site_all_rows() {
        check(
            DispatchKind::Shared,
            &[2, 1, 2],
            &[],
            expect![[r#"
                shared: attributed 0, not found 0
                  五月 → site 2: rows 2 3 4 5 6 7
                  五月 → site 1: rows 2 3 4 5 6 7
            "#]],
        );
        check(DispatchKind::Shared, &[], &[], expect![[r#"
            error: no site chosen: pick at least one site to dispatch to
        "#]]);
        check(DispatchKind::Shared, &[1, 3], &[], expect![[r#"
            error: site 3 does not take part in this sub-project: add it to the participating sites first
        "#]]);
        check(DispatchKind::Shared, &[4], &[], expect![[r#"
            error: site 4 is outside your data permission: ask an admin to extend it
        "#]]);
        check(DispatchKind::Shared, &[9], &[], expect![[r#"
            error: site 9 does not exist: choose an existing site
        "#]]);
    }

    #[test]
    fn exclusive_batches_take_the_next_rows_in_file_order() {
        check(
            DispatchKind::Exclusive(vec![part(" 甲批 ", 2, 1), part("乙批", 3, 2)]),
            &[],
            &[],
            expect![[r#"
                exclusive: attributed 0, not found 0
                  甲批 → site 1: rows 2 3
                  乙批 → site 2: rows 4 5 6
            "#]],
        );
        check(DispatchKind::Exclusive(vec![part("甲批", 4, 1), part("乙批", 3, 2)]), &[], &[], expect![[r#"
            error: the exclusive batches ask for 7 rows but only 6 can be dispatched: lower the counts
        "#]]);
        check(DispatchKind::Exclusive(vec![part("甲批", 1, 1), part(" ", 1, 2)]), &[], &[], expect![[r#"
            error: exclusive batch 2: the name is empty: name each batch
        "#]]);
        check(DispatchKind::Exclusive(vec![part("甲批", 0, 1)]), &[], &[], expect![[r#"
            error: exclusive batch 1: the count is 0: give it at least one row
        "#]]);
        // The parts are judged in order: a bad site before a bad later part.
        check(DispatchKind::Exclusive(vec![part("甲批", 1, 3), part("", 1, 2)]), &[], &[], expect![[r#"
            error: site 3 does not take part in this sub-project: add it to the participating sites first
        "#]]);
        check(DispatchKind::Exclusive(vec![]), &[], &[], expect![[r#"
            error: no site chosen: pick at least one site to dispatch to
        "#]]);
    }

    #[test]
    fn auto_batches_follow_the_first_matching_rule_to_its_site_and_agent() {
        check(
            DispatchKind::Auto,
            &[],
            &[rule("一组", 2, "1001"), rule("二组", 1, ""), rule("一组", 1, "9999")],
            expect![[r#"
                auto: attributed 4, not found 2
                  五月 → site 1: rows 3 7
                  五月 → site 2: rows 2@1001 5@1001
            "#]],
        );
        check(DispatchKind::Auto, &[], &[], expect![[r#"
            error: this sub-project has no attribution rules: set them up (归属设置) before using auto batches
        "#]]);
        check(DispatchKind::Auto, &[], &[rule("一组", 1, ""), rule("二组", 4, "")], expect![[r#"
            error: site 4 is outside your data permission: ask an admin to extend it
        "#]]);
        // A rule whose site gets no row is not judged (it sends nothing there).
        check(DispatchKind::Auto, &[], &[rule("一组", 1, ""), rule("四组", 9, "")], expect![[r#"
            auto: attributed 2, not found 4
              五月 → site 1: rows 2 5
        "#]]);
    }

    #[test]
    fn named_sites_cover_every_kind() {
        let rules = [rule("一组", 5, ""), rule("二组", 6, "")];
        let exclusive = DispatchKind::Exclusive(vec![part("甲", 1, 7)]);
        let named = |kind: &DispatchKind| named_sites(kind, &[1, 2], &rules).into_iter().collect::<Vec<_>>();
        assert_eq!(named(&DispatchKind::Shared), vec![1, 2]);
        assert_eq!(named(&exclusive), vec![1, 2, 7]);
        assert_eq!(named(&DispatchKind::Auto), vec![1, 2, 5, 6]);
    }
}

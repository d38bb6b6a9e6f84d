//! Attribution (归属) and allocation: the site's own rules and HQ's, which agent a customer
//! row belongs to, and giving a batch's rows to their agents.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sync_protocol::AttributionRules;

use super::{DbError, Store, corrupt};

/// One site attribution rule: field = value(s) → agent (username).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SiteRule {
    /// `(field, values)`: the row's field must hold one of the values. `phone` is the number.
    pub conditions: Vec<(String, Vec<String>)>,
    /// `true`: every condition must hold (同时满足); `false` (default): any one (任意满足).
    #[serde(default)]
    pub all_match: bool,
    /// The agent's username the row goes to.
    pub agent: String,
}

/// What an allocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AllocationReport {
    /// Rows given to an agent.
    pub attributed: u64,
    /// Rows no valid rule matched (they stay for anyone).
    pub not_found: u64,
}

/// Why rules could not be saved or applied.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    #[error("batch {0} is unknown at this site")]
    NoSuchBatch(u64),
    /// A rule is malformed; the message names the rule by its position (from 1).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The agent a row belongs to under `rules`: the first *valid* rule (its agent is one of
/// `agents`) that matches wins, as the manual's tie rule says; within one condition any of
/// its values matches; across conditions, any or all as the rule says.
pub fn attribute<'a>(
    rules: &'a [SiteRule],
    phone: &str,
    fields: &[(String, String)],
    agents: &[String],
) -> Option<&'a str> {
    let value_of = |field: &str| -> Option<&str> {
        if field == "phone" {
            return Some(phone);
        }
        fields.iter().find(|(key, _)| key == field).map(|(_, value)| value.trim())
    };
    let holds = |(field, values): &(String, Vec<String>)| {
        value_of(field).is_some_and(|value| values.iter().any(|wanted| wanted.trim() == value))
    };
    rules
        .iter()
        .filter(|rule| agents.contains(&rule.agent) && !rule.conditions.is_empty())
        .find(|rule| if rule.all_match { rule.conditions.iter().all(holds) } else { rule.conditions.iter().any(holds) })
        .map(|rule| rule.agent.as_str())
}

pub(super) fn apply_hq_rules(tx: &Transaction<'_>, rules: &AttributionRules) -> Result<(), DbError> {
    let site_rules: Vec<SiteRule> = rules
        .rules
        .iter()
        .map(|rule| SiteRule {
            conditions: rule.conditions.iter().map(|c| (c.field.clone(), c.values.clone())).collect(),
            all_match: rule.all_match,
            agent: rule.agent.clone(),
        })
        .collect();
    let json = serde_json::to_string(&site_rules).map_err(|e| corrupt("attribution rules", e))?;
    tx.execute(
        "INSERT INTO hq_rules (project_id, version, rules) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version, rules = excluded.rules
         WHERE excluded.version > hq_rules.version",
        params![rules.project_id, rules.version as i64, json],
    )?;
    Ok(())
}

/// Gives the undialed, unowned rows of a batch that just arrived to their agents by HQ's
/// attribution rules of its project, when HQ sent some and the site has none of its own (a
/// site's own rules win, and its admin applies them with [`Store::allocate`]). Rows no
/// valid rule matches stay for anyone.
pub(super) fn allocate_by_hq_rules(tx: &Transaction<'_>, batch_id: u64) -> Result<u64, DbError> {
    let Some(Some(project_id)) = tx
        .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get::<_, Option<u64>>(0))
        .optional()?
    else {
        return Ok(0);
    };
    let site_has_rules: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM site_rules WHERE project_id = ?1)", [project_id], |row| row.get(0))?;
    let hq: Option<String> = tx
        .query_row("SELECT rules FROM hq_rules WHERE project_id = ?1", [project_id], |row| row.get(0))
        .optional()?;
    let Some(json) = hq.filter(|_| !site_has_rules) else { return Ok(0) };
    let rules: Vec<SiteRule> = serde_json::from_str(&json).map_err(|e| corrupt("HQ attribution rules", e))?;
    if rules.is_empty() {
        return Ok(0);
    }
    let agents: Vec<String> = {
        let mut statement = tx.prepare_cached("SELECT username FROM users WHERE role = 'agent'")?;
        statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?
    };
    let rows: Vec<(u32, u32, String, Vec<u8>)> = {
        let mut statement = tx.prepare_cached(
            "SELECT chunk_idx, row_idx, phone, fields FROM batch_rows
             WHERE batch_id = ?1 AND status = 'new' AND owner IS NULL",
        )?;
        statement
            .query_map([batch_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut given = 0;
    for (chunk_idx, row_idx, phone, fields) in rows {
        let fields: Vec<(String, String)> = postcard::from_bytes(&fields).map_err(|e| corrupt("customer row", e))?;
        if let Some(owner) = attribute(&rules, &phone, &fields, &agents) {
            tx.execute(
                "UPDATE batch_rows SET owner = ?4 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx, owner],
            )?;
            given += 1;
        }
    }
    if given > 0 {
        tracing::info!(batch_id, project_id, rows = given, "rows given to agents by HQ's attribution rules");
    }
    Ok(given)
}

impl Store {
    /// Replaces the site's attribution rules of a project, in order.
    pub fn set_site_rules(&self, project_id: u64, rules: &[SiteRule]) -> Result<(), AttributionError> {
        // A refusal names the field by its title on the page, not by its variable.
        let def = self.project(project_id)?;
        let title = |key: &str| -> String {
            let found = def.as_ref().and_then(|def| def.customer_fields.iter().find(|f| f.key == key)).map(|f| f.title.clone());
            found.unwrap_or_else(|| if key == "phone" { "电话号码".to_string() } else { key.to_string() })
        };
        for (idx, rule) in rules.iter().enumerate() {
            if rule.conditions.is_empty() {
                return Err(AttributionError::Invalid(format!("rule {}: add at least one field = value", idx + 1)));
            }
            for (field, values) in &rule.conditions {
                if field.trim().is_empty() || values.iter().all(|value| value.trim().is_empty()) {
                    return Err(AttributionError::Invalid(format!(
                        "rule {}: field \"{}\" needs a name and at least one value",
                        idx + 1,
                        title(field)
                    )));
                }
            }
            if rule.agent.trim().is_empty() {
                return Err(AttributionError::Invalid(format!("rule {}: choose the agent", idx + 1)));
            }
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        tx.execute("DELETE FROM site_rules WHERE project_id = ?1", [project_id]).map_err(DbError::from)?;
        for (idx, rule) in rules.iter().enumerate() {
            let conditions = serde_json::to_string(&rule.conditions).map_err(|e| corrupt("rule", e))?;
            tx.execute(
                "INSERT INTO site_rules (project_id, position, all_match, conditions, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project_id, idx as u32, rule.all_match, conditions, rule.agent.trim()],
            )
            .map_err(DbError::from)?;
        }
        tx.commit().map_err(DbError::from)?;
        Ok(())
    }

    /// The site's rules of a project, or HQ's when the site has none.
    pub fn site_rules(&self, project_id: u64) -> Result<Vec<SiteRule>, DbError> {
        let conn = self.lock();
        rules_in(&conn, project_id)
    }

    /// Applies the rules to the undialed rows of a batch (S4): each becomes owned by the
    /// rule's agent, or unowned when no valid rule matches.
    pub fn allocate(&self, batch_id: u64) -> Result<AllocationReport, AttributionError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let project_id: Option<Option<u64>> = tx
            .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        let Some(project_id) = project_id else { return Err(AttributionError::NoSuchBatch(batch_id)) };
        let rules = rules_in(&tx, project_id.unwrap_or_default())?;
        let agents: Vec<String> = {
            let mut statement = tx.prepare("SELECT username FROM users WHERE role = 'agent'").map_err(DbError::from)?;
            statement.query_map([], |row| row.get(0)).map_err(DbError::from)?.collect::<Result<_, _>>().map_err(DbError::from)?
        };
        let rows: Vec<(u32, u32, String, Vec<u8>)> = {
            let mut statement = tx
                .prepare(
                    "SELECT chunk_idx, row_idx, phone, fields FROM batch_rows
                     WHERE batch_id = ?1 AND status = 'new'",
                )
                .map_err(DbError::from)?;
            statement
                .query_map([batch_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                .map_err(DbError::from)?
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?
        };
        let mut report = AllocationReport { attributed: 0, not_found: 0 };
        for (chunk_idx, row_idx, phone, fields) in rows {
            let fields: Vec<(String, String)> =
                postcard::from_bytes(&fields).map_err(|e| corrupt("customer row", e))?;
            let owner = attribute(&rules, &phone, &fields, &agents);
            match owner {
                Some(_) => report.attributed += 1,
                None => report.not_found += 1,
            }
            tx.execute(
                "UPDATE batch_rows SET owner = ?4 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx, owner],
            )
            .map_err(DbError::from)?;
        }
        tx.commit().map_err(DbError::from)?;
        Ok(report)
    }
}

fn rules_in(conn: &Connection, project_id: u64) -> Result<Vec<SiteRule>, DbError> {
    let mut statement = conn.prepare(
        "SELECT all_match, conditions, agent FROM site_rules WHERE project_id = ?1 ORDER BY position",
    )?;
    let mut rows = statement.query([project_id])?;
    let mut rules = Vec::new();
    while let Some(row) = rows.next()? {
        let conditions: String = row.get(1)?;
        rules.push(SiteRule {
            all_match: row.get(0)?,
            conditions: serde_json::from_str(&conditions).map_err(|e| corrupt("attribution rule", e))?,
            agent: row.get(2)?,
        });
    }
    if !rules.is_empty() {
        return Ok(rules);
    }
    let hq: Option<String> = conn
        .query_row("SELECT rules FROM hq_rules WHERE project_id = ?1", [project_id], |row| row.get(0))
        .optional()?;
    match hq {
        Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("HQ attribution rules", e)),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(conditions: &[(&str, &[&str])], all_match: bool, agent: &str) -> SiteRule {
        SiteRule {
            conditions: conditions
                .iter()
                .map(|(field, values)| (field.to_string(), values.iter().map(|v| v.to_string()).collect()))
                .collect(),
            all_match,
            agent: agent.to_string(),
        }
    }

    fn row(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn any_match_is_the_default_and_one_condition_is_enough() {
        let rules = vec![rule(&[("seat", &["1001"]), ("area", &["北区"])], false, "a1")];
        let agents = vec!["a1".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001"), ("area", "南区")]), &agents), Some("a1"));
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "9"), ("area", "北区")]), &agents), Some("a1"));
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "9"), ("area", "南区")]), &agents), None);
    }

    #[test]
    fn all_match_needs_every_condition() {
        let rules = vec![rule(&[("seat", &["1001"]), ("area", &["北区"])], true, "a1")];
        let agents = vec!["a1".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001"), ("area", "南区")]), &agents), None);
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001"), ("area", "北区")]), &agents), Some("a1"));
    }

    #[test]
    fn several_values_of_one_field_any_matches() {
        let rules = vec![rule(&[("level", &["A", "B"])], true, "a1")];
        let agents = vec!["a1".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("level", "B")]), &agents), Some("a1"));
        assert_eq!(attribute(&rules, "1", &row(&[("level", "C")]), &agents), None);
    }

    #[test]
    fn same_value_to_several_agents_first_valid_rule_wins() {
        let rules = vec![
            rule(&[("seat", &["1001"])], false, "gone"),
            rule(&[("seat", &["1001"])], false, "a2"),
            rule(&[("seat", &["1001"])], false, "a3"),
        ];
        // "gone" is not an agent of the site: its rule is not valid, so a2's wins.
        let agents = vec!["a2".to_string(), "a3".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001")]), &agents), Some("a2"));
    }

    #[test]
    fn phone_is_a_field_for_rules() {
        let rules = vec![rule(&[("phone", &["13800000001"])], false, "a1")];
        assert_eq!(attribute(&rules, "13800000001", &[], &["a1".to_string()]), Some("a1"));
    }
}

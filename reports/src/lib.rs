//! The report engine shared by the hub and the site box (H14-H17, S6-S9).
//!
//! A report ([`ReportDef`]) groups call attempts by up to five tags, filters them by
//! conditions, and shows statistics and ratios under its own headers. The engine is given
//! one [`AttemptFact`] per attempt and the single-choice values of its business record,
//! inside the store's own write transaction ([`record_attempt`], [`record_business`]); the
//! store appends [`SCHEMA`] to its migrations.
//!
//! # Design: cells in SQLite, cubes in memory
//!
//! Reports never read the raw attempts. Every write adds the attempt's contribution to one
//! *cell* of `report_cells`: the sums of every base statistic for one UTC hour and one full
//! dimension key (project, site, team, agent, extension, batch, dispatching account,
//! direction, hang-up side, business values). A redelivered attempt first takes its stored
//! contribution back (`report_facts` keeps each attempt's fact and values), so nothing
//! counts twice, and a record saved later moves the attempt to its new values' cell. Cells
//! are keyed by the hour the call *started*, so late data lands where it happened.
//!
//! SQLite is too slow to group even the cells of a month at HQ scale (~1 µs a row), so
//! [`Engine`] holds the cells again in memory as *cubes*: each a copy at a coarser grain (some
//! dimensions summed away, buckets of local days instead of local hours), rebuilt from
//! `report_cells` at start and updated after each commit from the transaction's [`Pending`]
//! deltas. A report is answered from the smallest cube holding every dimension it groups or
//! filters by, in one pass over the buckets of its range with integer keys from the
//! engine's dictionaries. A missed or out-of-order delta is detected by the version the
//! writes bump, and the cubes are rebuilt rather than answer wrong.
//!
//! Cube choice: an agent belongs to one site and team and (nearly always) one extension,
//! so summing agents and extensions away divides a cube by the agents per site; days divide
//! by the working hours; batches and business values multiply cells, so the coarsest cubes
//! drop them ([`hub_cubes`], [`site_cubes`]). Groups are summed into a dense array indexed
//! by the tags' value ranges when that is small (no hashing per cell), else a hash map, and
//! only the measures the columns read are summed. `examples/report_bench.rs` measures it
//! against DuckDB (figures in `docs/benchmarks.md`): at HQ scale the finest cube, which
//! every cube is derived from, dominates memory; agent × hour reports have their own narrow
//! hourly cube (no batch, account, direction, hang-up side or business values). A bucket
//! indexes its cells by position (a `hashbrown::HashTable` of `u32`), so each key is stored
//! once.
//!
//! Local time is read-time: cells are per UTC hour and the [`Zone`] (China time by default)
//! maps them to local hours, so zones must have whole-hour offsets ([`Zone::new`] checks).
//!
//! [`oracle::run_brute_force`] answers the same report from the raw facts; the property test
//! `tests/oracle.rs` holds the engine to it.

mod engine;
mod fact;
mod model;
pub mod oracle;
mod query;
mod store;
mod table;
mod time;

pub use engine::{hub_cubes, site_cubes, CubeSpec, Engine};
#[doc(hidden)]
pub use query::set_dense_group_limit;
pub use fact::{measure_index, AttemptFact, Direction, HangupSide, Measures, Outcome, MEASURES, N_MEASURES};
pub use model::{
    Column, Condition, DefError, DefErrorKind, Lang, ReportDef, Statistic, Subject, Tag, MAX_COLUMNS, MAX_CONDITIONS,
    MAX_NAME_CHARS, MAX_TAGS,
};
pub use store::{
    canonical_combo, flush, move_attempt, record_attempt, record_business, version, CellKey, Pending, ReportError, FACTS_WITHOUT_ROWID,
    SCHEMA,
};
pub use table::{day_text, month_text, Filter, KeyPart, ReportTable, Row, Value};
pub use time::{civil_from_days, days_from_civil, weekday, DayRange, TimeError, TimeFilter, Zone, MAX_RANGE_DAYS};

/// The dimension indexes of [`CubeSpec::without`].
pub mod dims {
    pub use crate::engine::{ACCOUNT, AGENT, BATCH, COMBO, DIRECTION, EXTENSION, HANGUP, PROJECT, SITE, TEAM};
}

//! Answering a report from the cubes: pick the smallest cube that keeps every dimension the
//! report needs, turn the filter and conditions into per-id lookup tables, then one pass
//! over the buckets of the range summing each cell into its group.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::engine::{
    bucket_time, subject_dim, tag_dim, Bucket, CellSums, CubeView, FxMap, Group, MemView, ACCOUNT, COMBO, PROJECT, SITE, TEAM,
};
use crate::fact::N_MEASURES;
use crate::model::{Condition, ReportDef, Subject, Tag, MAX_TAGS};
use crate::table::{field_statistics, values, Filter, ReportTable, Row};
use crate::time::month_index;

/// The answer with no rows (an engine that holds nothing).
pub(crate) fn empty(def: &ReportDef) -> ReportTable {
    let m = [0; N_MEASURES];
    let fields = field_statistics(def);
    let counts = vec![0; fields.len()];
    ReportTable {
        tags: def.tags.clone(),
        headers: def.columns.iter().map(|c| c.header.clone()).collect(),
        rows: Vec::new(),
        total: values(def, &m, &fields, &counts),
    }
}

/// The dimensions (bit mask) and whether hours are needed.
fn needs(def: &ReportDef, filter: &Filter) -> (u16, bool) {
    let mut dims = 0_u16;
    let mut hourly = false;
    for tag in &def.tags {
        match tag_dim(*tag) {
            Some(d) => dims |= 1 << d,
            None => hourly |= *tag == Tag::Hour,
        }
    }
    for condition in &def.conditions {
        match subject_dim(&condition.subject) {
            Some(d) => dims |= 1 << d,
            None => hourly |= condition.subject == Subject::Hour,
        }
    }
    if !field_statistics(def).is_empty() {
        dims |= 1 << COMBO;
    }
    let scoped = [
        (filter.projects.is_some(), PROJECT),
        (filter.sites.is_some(), SITE),
        (filter.accounts.is_some(), ACCOUNT),
        (filter.teams.is_some(), TEAM),
    ];
    for (on, d) in scoped {
        if on {
            dims |= 1 << d;
        }
    }
    (dims, hourly)
}

/// The lookup tables a pass checks each cell against.
struct Compiled {
    /// `(dimension, allowed[id])`, one per constrained dimension.
    dims: Vec<(usize, Vec<bool>)>,
    hours: [bool; 24],
    weekdays: [bool; 8],
    /// Per business-field count: whether each combo id holds the value.
    fields: Vec<Vec<bool>>,
}

fn and_into(dims: &mut Vec<(usize, Vec<bool>)>, dim: usize, allowed: Vec<bool>) {
    match dims.iter_mut().find(|(d, _)| *d == dim) {
        Some((_, old)) => old.iter_mut().zip(allowed).for_each(|(o, a)| *o &= a),
        None => dims.push((dim, allowed)),
    }
}

fn condition_table(mem: &MemView<'_>, dim: usize, condition: &Condition) -> Vec<bool> {
    (0..mem.dicts.len(dim))
        .map(|id| {
            let hit = match &condition.subject {
                Subject::Field { key } => {
                    let combo = mem.dicts.combo(id);
                    let value = combo.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("");
                    condition.values.iter().any(|v| v == value)
                }
                _ => condition.values.iter().any(|v| mem.dicts.matches(dim, id, v)),
            };
            hit != condition.negate
        })
        .collect()
}

fn time_table<const N: usize>(condition: &Condition) -> [bool; N] {
    let mut table = [false; N];
    for (i, slot) in table.iter_mut().enumerate() {
        let hit = condition.values.iter().any(|v| v.trim().parse::<usize>().ok() == Some(i));
        *slot = hit != condition.negate;
    }
    table
}

fn compile(mem: &MemView<'_>, def: &ReportDef, filter: &Filter) -> Compiled {
    let mut c = Compiled { dims: Vec::new(), hours: [true; 24], weekdays: [true; 8], fields: Vec::new() };
    let list = |dim: usize, values: Vec<String>| Condition { subject: subject_of(dim), values, negate: false };
    let scoped = [
        (PROJECT, filter.projects.as_ref().map(|l| l.iter().map(i64::to_string).collect::<Vec<_>>())),
        (SITE, filter.sites.as_ref().map(|l| l.iter().map(i64::to_string).collect())),
        (ACCOUNT, filter.accounts.clone()),
        (TEAM, filter.teams.clone()),
    ];
    for (dim, values) in scoped {
        if let Some(values) = values {
            let table = condition_table(mem, dim, &list(dim, values));
            and_into(&mut c.dims, dim, table);
        }
    }
    for condition in &def.conditions {
        match (subject_dim(&condition.subject), &condition.subject) {
            (Some(dim), _) => {
                let table = condition_table(mem, dim, condition);
                and_into(&mut c.dims, dim, table);
            }
            (None, Subject::Hour) => {
                let t: [bool; 24] = time_table(condition);
                c.hours.iter_mut().zip(t).for_each(|(o, a)| *o &= a);
            }
            (None, _) => {
                let t: [bool; 8] = time_table(condition);
                c.weekdays.iter_mut().zip(t).for_each(|(o, a)| *o &= a);
            }
        }
    }
    for (key, value) in field_statistics(def) {
        let table = (0..mem.dicts.len(COMBO)).map(|id| mem.dicts.combo(id).iter().any(|(k, v)| *k == key && *v == value));
        c.fields.push(table.collect());
    }
    c
}

fn subject_of(dim: usize) -> Subject {
    match dim {
        PROJECT => Subject::Project,
        SITE => Subject::Site,
        ACCOUNT => Subject::Account,
        _ => Subject::Team,
    }
}

/// The smallest cube covering the needs; the finest always does.
fn pick<'m>(mem: &'m MemView<'_>, dims: u16, hourly: bool) -> Option<&'m CubeView<'m>> {
    mem.cubes.iter().filter(|c| c.spec.covers(dims, hourly)).min_by_key(|c| c.cells)
}

/// How groups are laid out: a dense array when the tags' value ranges multiply to a small
/// enough number (no hashing at all: a few multiplications per cell), else a hash map.
#[derive(Clone)]
struct Layout {
    /// The cell measures summed (only those the columns read), then the field counts.
    measures: Vec<usize>,
    stride: usize,
    /// Per tag slot: (smallest value, number of values, multiplier) of the dense index.
    dense: Option<Vec<(i64, usize, usize)>>,
}

/// Dense group arrays up to this many groups (times the stride, in i64s).
static MAX_DENSE_GROUPS: AtomicUsize = AtomicUsize::new(1 << 20);

/// Sets the largest dense group array (tests set 0 to hold the hash-map layout to the
/// oracle too); returns the previous limit.
#[doc(hidden)]
pub fn set_dense_group_limit(groups: usize) -> usize {
    MAX_DENSE_GROUPS.swap(groups, Ordering::Relaxed)
}

impl Layout {
    fn new(mem: &MemView<'_>, def: &ReportDef, filter: &Filter, n_fields: usize) -> Layout {
        let mut measures: Vec<usize> = Vec::new();
        let stats = def.columns.iter().flat_map(|c| std::iter::once(&c.statistic).chain(c.divide_by.iter()));
        for statistic in stats {
            let index = crate::fact::measure_index(statistic).unwrap_or(0);
            if !measures.contains(&index) {
                measures.push(index);
            }
        }
        let months = (month_index(filter.days.first), month_index(filter.days.last.max(filter.days.first)));
        let mut ranges = Vec::new();
        for tag in &def.tags {
            ranges.push(match (tag, tag_dim(*tag)) {
                (_, Some(dim)) => (0, mem.dicts.len(dim).max(1)),
                (Tag::Hour, None) => (0, 24),
                (Tag::Weekday, None) => (0, 8),
                (Tag::Day, None) => (filter.days.first, (filter.days.last - filter.days.first + 1).max(1) as usize),
                _ => (months.0, (months.1 - months.0 + 1).max(1) as usize),
            });
        }
        let total = ranges.iter().try_fold(1_usize, |acc, (_, n)| acc.checked_mul(*n));
        let dense = total.filter(|t| *t <= MAX_DENSE_GROUPS.load(Ordering::Relaxed)).map(|_| {
            let mut mult = 1;
            let mut out = vec![(0, 0, 0); ranges.len()];
            for (slot, (base, n)) in ranges.iter().enumerate().rev() {
                out[slot] = (*base, *n, mult);
                mult *= n;
            }
            out
        });
        Layout { stride: measures.len() + n_fields, measures, dense }
    }

    fn groups(&self) -> usize {
        self.dense.as_ref().map_or(0, |d| d.iter().map(|(_, n, _)| n).product())
    }
}

/// The group sums: per group, the summed measures then the field counts, flat.
struct Groups {
    layout: Layout,
    index: FxMap<Group, usize>,
    keys: Vec<Group>,
    sums: Vec<i64>,
    /// Dense layout: which groups had a cell.
    touched: Vec<bool>,
    /// The last group added to: neighbouring cells mostly share a group, and comparing 20
    /// bytes is cheaper than hashing them.
    last: Option<(Group, usize)>,
}

impl Groups {
    fn new(layout: &Layout) -> Groups {
        let n = layout.groups();
        Groups {
            layout: layout.clone(),
            index: FxMap::default(),
            keys: Vec::new(),
            sums: vec![0; n * layout.stride],
            touched: vec![false; n],
            last: None,
        }
    }

    fn slot(&mut self, key: Group) -> usize {
        if let Some(dense) = &self.layout.dense {
            let mut at = 0;
            for (slot, (base, _, mult)) in dense.iter().enumerate() {
                at += (i64::from(key[slot] as i32) - base) as usize * mult;
            }
            self.touched[at] = true;
            return at * self.layout.stride;
        }
        if let Some((last, at)) = self.last {
            if last == key {
                return at;
            }
        }
        let at = match self.index.get(&key) {
            Some(at) => *at,
            None => {
                let at = self.sums.len();
                self.sums.resize(at + self.layout.stride, 0);
                self.index.insert(key, at);
                self.keys.push(key);
                at
            }
        };
        self.last = Some((key, at));
        at
    }

    fn add(&mut self, key: Group, m: &CellSums, fields: &[Vec<bool>], combo: u32) {
        let at = self.slot(key);
        let n = self.layout.measures.len();
        let slot = &mut self.sums[at..at + self.layout.stride];
        for (s, i) in slot[..n].iter_mut().zip(&self.layout.measures) {
            *s += i64::from(m[*i]);
        }
        for (s, table) in slot[n..].iter_mut().zip(fields) {
            if table.get(combo as usize).copied().unwrap_or(false) {
                *s += i64::from(m[0]);
            }
        }
    }

    /// Every group with its sums, and its key.
    fn each(&self) -> Vec<(Group, &[i64])> {
        let stride = self.layout.stride;
        match &self.layout.dense {
            Some(dense) => (0..self.touched.len())
                .filter(|i| self.touched[*i])
                .map(|i| {
                    let mut key: Group = [0; MAX_TAGS];
                    for (slot, (base, n, mult)) in dense.iter().enumerate() {
                        key[slot] = ((i / mult % n) as i64 + base) as i32 as u32;
                    }
                    (key, &self.sums[i * stride..(i + 1) * stride])
                })
                .collect(),
            None => self.keys.iter().map(|k| (*k, &self.sums[self.index[k]..self.index[k] + stride])).collect(),
        }
    }

    fn merge(&mut self, other: Groups) {
        if self.layout.dense.is_some() {
            self.sums.iter_mut().zip(&other.sums).for_each(|(s, o)| *s += o);
            self.touched.iter_mut().zip(&other.touched).for_each(|(t, o)| *t |= o);
            return;
        }
        for key in &other.keys {
            let from = other.index[key];
            let at = self.slot(*key);
            let stride = self.layout.stride;
            for (s, v) in self.sums[at..at + stride].iter_mut().zip(&other.sums[from..from + stride]) {
                *s += v;
            }
        }
    }

    /// The full measures (zero where not summed) and the field counts of one group's sums.
    fn measures_of(&self, sums: &[i64]) -> ([i64; N_MEASURES], Vec<i64>) {
        let mut m = [0_i64; N_MEASURES];
        let n = self.layout.measures.len();
        for (i, v) in self.layout.measures.iter().zip(&sums[..n]) {
            m[*i] = *v;
        }
        (m, sums[n..].to_vec())
    }
}

/// Below this many cells a report is summed on the calling thread.
const PARALLEL_CELLS: usize = 200_000;

/// Sums the cells of `buckets` into groups.
fn scan<'b>(
    buckets: impl Iterator<Item = (&'b i64, &'b Bucket)>,
    hourly: bool,
    def: &ReportDef,
    compiled: &Compiled,
    layout: &Layout,
) -> Groups {
    let mut groups = Groups::new(layout);
    let cell_tags: Vec<(usize, usize)> =
        def.tags.iter().enumerate().filter_map(|(slot, t)| tag_dim(*t).map(|d| (slot, d))).collect();
    for (&bucket, cells) in buckets {
        let (hour, day, weekday, month) = bucket_time(bucket, hourly);
        if hour.is_some_and(|h| !compiled.hours[h as usize]) || !compiled.weekdays[weekday as usize] {
            continue;
        }
        let mut base: Group = [0; MAX_TAGS];
        for (slot, tag) in def.tags.iter().enumerate() {
            base[slot] = match tag {
                Tag::Hour => hour.unwrap_or(0) as u32,
                Tag::Weekday => weekday as u32,
                Tag::Day => day as i32 as u32,
                Tag::Month => month as i32 as u32,
                _ => 0,
            };
        }
        'cells: for (key, m) in cells.cells() {
            if m[0] == 0 {
                continue;
            }
            for (dim, allowed) in &compiled.dims {
                if !allowed.get(key[*dim] as usize).copied().unwrap_or(false) {
                    continue 'cells;
                }
            }
            let mut group = base;
            for (slot, dim) in &cell_tags {
                group[*slot] = key[*dim];
            }
            groups.add(group, m, &compiled.fields, key[COMBO]);
        }
    }
    groups
}

/// Answers `def` within `filter` from the memory.
pub(crate) fn answer(mem: MemView<'_>, def: &ReportDef, filter: &Filter) -> ReportTable {
    let (dims, hourly) = needs(def, filter);
    let Some(cube) = pick(&mem, dims, hourly) else { return empty(def) };
    let compiled = compile(&mem, def, filter);
    let field_stats = field_statistics(def);
    let layout = Layout::new(&mem, def, filter, field_stats.len());
    let (lo, hi) = if cube.spec.hourly {
        (filter.days.first * 24, (filter.days.last + 1) * 24)
    } else {
        (filter.days.first, filter.days.last + 1)
    };
    let buckets: Vec<(&i64, &Bucket)> = if lo < hi { cube.buckets.range(lo..hi).collect() } else { Vec::new() };
    let cells: usize = buckets.iter().map(|(_, b)| b.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let groups = if cells < PARALLEL_CELLS || threads < 2 || buckets.len() < 2 {
        scan(buckets.into_iter(), cube.spec.hourly, def, &compiled, &layout)
    } else {
        // Contiguous shares of about equal cells, one per thread, merged at the end.
        let share = cells.div_ceil(threads);
        let mut parts: Vec<Vec<(&i64, &Bucket)>> = vec![Vec::new()];
        let mut in_part = 0;
        for bucket in buckets {
            if in_part >= share {
                parts.push(Vec::new());
                in_part = 0;
            }
            in_part += bucket.1.len();
            if let Some(part) = parts.last_mut() {
                part.push(bucket);
            }
        }
        let hourly = cube.spec.hourly;
        let compiled = &compiled;
        let layout = &layout;
        let mut results = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| s.spawn(move || scan(part.into_iter(), hourly, def, compiled, layout)))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect::<Vec<_>>()
        });
        let mut first = results.pop().unwrap_or_else(|| Groups::new(layout));
        for other in results {
            first.merge(other);
        }
        first
    };
    finish(&mem, def, &field_stats, groups)
}

/// Per tag slot, each id's rank in the order of its key part: rows are sorted by these
/// integers, not by comparing their texts (100,000 agent-hour rows took tens of ms so).
fn ranks(mem: &MemView<'_>, def: &ReportDef) -> Vec<Option<Vec<u32>>> {
    def.tags
        .iter()
        .map(|tag| {
            let dim = tag_dim(*tag)?;
            let mut ids: Vec<u32> = (0..mem.dicts.len(dim) as u32).collect();
            let parts: Vec<_> = ids.iter().map(|id| mem.dicts.key_part(*tag, *id)).collect();
            ids.sort_by(|a, b| parts[*a as usize].cmp(&parts[*b as usize]));
            let mut rank = vec![0_u32; ids.len()];
            for (r, id) in ids.iter().enumerate() {
                rank[*id as usize] = r as u32;
            }
            Some(rank)
        })
        .collect()
}

fn finish(mem: &MemView<'_>, def: &ReportDef, field_stats: &[(String, String)], groups: Groups) -> ReportTable {
    let mut total = vec![0_i64; groups.layout.stride];
    let ranks = ranks(mem, def);
    // Time tags: the id's numeric order is the key part's (hours, weekdays, days and months
    // as zero-padded texts).
    let order = |key: &Group| -> [i64; MAX_TAGS] {
        let mut out = [0_i64; MAX_TAGS];
        for (slot, rank) in ranks.iter().enumerate() {
            out[slot] = match rank {
                Some(r) => i64::from(r[key[slot] as usize]),
                None => i64::from(key[slot] as i32),
            };
        }
        out
    };
    let mut each = groups.each();
    each.sort_by_cached_key(|(key, _)| order(key));
    let rows: Vec<Row> = each
        .into_iter()
        .map(|(key, sums)| {
            total.iter_mut().zip(sums).for_each(|(t, s)| *t += s);
            let (m, counts) = groups.measures_of(sums);
            let keys = def.tags.iter().enumerate().map(|(slot, tag)| mem.dicts.key_part(*tag, key[slot])).collect();
            Row { keys, values: values(def, &m, field_stats, &counts) }
        })
        .collect();
    debug_assert!(rows.windows(2).all(|w| w[0].keys < w[1].keys), "rows in key order");
    let (m, counts) = groups.measures_of(&total);
    ReportTable {
        tags: def.tags.clone(),
        headers: def.columns.iter().map(|c| c.header.clone()).collect(),
        rows,
        total: values(def, &m, field_stats, &counts),
    }
}

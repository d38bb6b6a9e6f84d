//! Answering a report from the cubes: pick the smallest cube that keeps every dimension the
//! report needs, turn the filter and conditions into per-id lookup tables, then one pass
//! over the buckets of the range summing each cell into its group.

use crate::engine::{
    bucket_time, subject_dim, tag_dim, Bucket, CellSums, CubeView, FxMap, Group, MemView, ACCOUNT, COMBO, PROJECT, SITE, TEAM,
};
use crate::fact::N_MEASURES;
use crate::model::{Condition, ReportDef, Subject, Tag, MAX_TAGS};
use crate::table::{field_statistics, values, Filter, ReportTable, Row};

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

/// The group sums: per group, the base measures then the field counts, flat.
struct Groups {
    index: FxMap<Group, usize>,
    keys: Vec<Group>,
    sums: Vec<i64>,
    stride: usize,
    /// The last group added to: neighbouring cells mostly share a group, and comparing 20
    /// bytes is cheaper than hashing them.
    last: Option<(Group, usize)>,
}

impl Groups {
    fn new(stride: usize) -> Groups {
        Groups { index: FxMap::default(), keys: Vec::new(), sums: Vec::new(), stride, last: None }
    }

    fn slot(&mut self, key: Group) -> usize {
        if let Some((last, at)) = self.last {
            if last == key {
                return at;
            }
        }
        let at = match self.index.get(&key) {
            Some(at) => *at,
            None => {
                let at = self.sums.len();
                self.sums.resize(at + self.stride, 0);
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
        let slot = &mut self.sums[at..at + self.stride];
        for (s, v) in slot[..N_MEASURES].iter_mut().zip(m) {
            *s += i64::from(*v);
        }
        for (s, table) in slot[N_MEASURES..].iter_mut().zip(fields) {
            if table.get(combo as usize).copied().unwrap_or(false) {
                *s += i64::from(m[0]);
            }
        }
    }

    fn merge(&mut self, other: Groups) {
        for key in &other.keys {
            let from = other.index[key];
            let at = self.slot(*key);
            for (s, v) in self.sums[at..at + self.stride].iter_mut().zip(&other.sums[from..from + other.stride]) {
                *s += v;
            }
        }
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
    stride: usize,
) -> Groups {
    let mut groups = Groups::new(stride);
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
    let stride = N_MEASURES + field_stats.len();
    let (lo, hi) = if cube.spec.hourly {
        (filter.days.first * 24, (filter.days.last + 1) * 24)
    } else {
        (filter.days.first, filter.days.last + 1)
    };
    let buckets: Vec<(&i64, &Bucket)> = if lo < hi { cube.buckets.range(lo..hi).collect() } else { Vec::new() };
    let cells: usize = buckets.iter().map(|(_, b)| b.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let groups = if cells < PARALLEL_CELLS || threads < 2 || buckets.len() < 2 {
        scan(buckets.into_iter(), cube.spec.hourly, def, &compiled, stride)
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
        let mut results = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| s.spawn(move || scan(part.into_iter(), hourly, def, compiled, stride)))
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect::<Vec<_>>()
        });
        let mut first = results.pop().unwrap_or_else(|| Groups::new(stride));
        for other in results {
            first.merge(other);
        }
        first
    };
    finish(&mem, def, &field_stats, groups)
}

fn finish(mem: &MemView<'_>, def: &ReportDef, field_stats: &[(String, String)], groups: Groups) -> ReportTable {
    let mut total = vec![0_i64; groups.stride];
    let mut rows: Vec<Row> = groups
        .keys
        .iter()
        .map(|key| {
            let at = groups.index[key];
            let sums = &groups.sums[at..at + groups.stride];
            total.iter_mut().zip(sums).for_each(|(t, s)| *t += s);
            let mut m = [0_i64; N_MEASURES];
            m.copy_from_slice(&sums[..N_MEASURES]);
            let keys = def.tags.iter().enumerate().map(|(slot, tag)| mem.dicts.key_part(*tag, key[slot])).collect();
            Row { keys, values: values(def, &m, field_stats, &sums[N_MEASURES..]) }
        })
        .collect();
    rows.sort_by(|a, b| a.keys.cmp(&b.keys));
    let mut m = [0_i64; N_MEASURES];
    m.copy_from_slice(&total[..N_MEASURES]);
    ReportTable {
        tags: def.tags.clone(),
        headers: def.columns.iter().map(|c| c.header.clone()).collect(),
        rows,
        total: values(def, &m, field_stats, &total[N_MEASURES..]),
    }
}

//! The fast path: in-memory cubes of the cells, each at its own grain, kept in step with the
//! store's commits, and the report answered from the smallest cube that holds every
//! dimension the report groups or filters by. See the crate documentation for the design.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{PoisonError, RwLock};

use hashbrown::HashTable;

use crate::fact::{hangup_name, Direction, Measures, N_MEASURES};
use crate::model::{ReportDef, Subject, Tag};
use crate::store::{self, CellKey, Pending, ReportError};
use crate::table::{day_text, month_text, Filter, KeyPart, ReportTable};
use crate::time::{month_index, weekday, Zone};

/// The dimensions of a cell key, in key order.
pub const PROJECT: usize = 0;
pub const SITE: usize = 1;
pub const TEAM: usize = 2;
pub const AGENT: usize = 3;
pub const EXTENSION: usize = 4;
pub const BATCH: usize = 5;
pub const ACCOUNT: usize = 6;
pub const DIRECTION: usize = 7;
pub const HANGUP: usize = 8;
pub const COMBO: usize = 9;
const N_DIMS: usize = 10;
/// A dimension a cube does not keep holds this.
const ROLLED_UP: u32 = u32::MAX;

type Key = [u32; N_DIMS];
type GroupKey = [u32; crate::model::MAX_TAGS];

/// FxHash (rustc's hasher): the keys are small integers from our own dictionaries, so a
/// DoS-resistant hash buys nothing and costs most of a scan's time.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Values to dense ids.
#[derive(Debug)]
struct Interner<T> {
    map: FxMap<T, u32>,
    items: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner { map: FxMap::default(), items: Vec::new() }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    fn id(&mut self, item: &T) -> u32 {
        if let Some(id) = self.map.get(item) {
            return *id;
        }
        let id = self.items.len() as u32;
        self.items.push(item.clone());
        self.map.insert(item.clone(), id);
        id
    }
}

#[derive(Debug, Default)]
struct Dicts {
    projects: Interner<i64>,
    sites: Interner<i64>,
    batches: Interner<i64>,
    accounts: Interner<String>,
    /// Team, agent, extension: each of one site.
    teams: Interner<(i64, String)>,
    agents: Interner<(i64, String)>,
    extensions: Interner<(i64, String)>,
    combos: Interner<String>,
    /// Each combo's values, parsed.
    combo_values: Vec<Vec<(String, String)>>,
}

impl Dicts {
    fn key(&mut self, cell: &CellKey) -> Key {
        let combo = self.combos.id(&cell.combo);
        if combo as usize == self.combo_values.len() {
            self.combo_values.push(serde_json::from_str(&cell.combo).unwrap_or_default());
        }
        [
            self.projects.id(&cell.project),
            self.sites.id(&cell.site),
            self.teams.id(&(cell.site, cell.team.clone())),
            self.agents.id(&(cell.site, cell.agent.clone())),
            self.extensions.id(&(cell.site, cell.extension.clone())),
            self.batches.id(&cell.batch),
            self.accounts.id(&cell.account),
            u32::from(cell.direction),
            u32::from(cell.hangup),
            combo,
        ]
    }

    fn len(&self, dim: usize) -> usize {
        match dim {
            PROJECT => self.projects.items.len(),
            SITE => self.sites.items.len(),
            TEAM => self.teams.items.len(),
            AGENT => self.agents.items.len(),
            EXTENSION => self.extensions.items.len(),
            BATCH => self.batches.items.len(),
            ACCOUNT => self.accounts.items.len(),
            DIRECTION => 2,
            HANGUP => 4,
            _ => self.combos.items.len(),
        }
    }

    /// Whether id `id` of `dim` equals the condition text `value`.
    fn matches(&self, dim: usize, id: usize, value: &str) -> bool {
        let int = |v: i64| value.trim().parse::<i64>().ok() == Some(v);
        match dim {
            PROJECT => int(self.projects.items[id]),
            SITE => int(self.sites.items[id]),
            BATCH => int(self.batches.items[id]),
            TEAM => self.teams.items[id].1 == value,
            AGENT => self.agents.items[id].1 == value,
            EXTENSION => self.extensions.items[id].1 == value,
            ACCOUNT => self.accounts.items[id] == value,
            DIRECTION => Direction::from_code(id as u8).name() == value,
            HANGUP => hangup_name(id as u8) == value,
            _ => false,
        }
    }

    fn key_part(&self, tag: Tag, id: u32) -> KeyPart {
        let id_usize = id as usize;
        let site_text = |(site, text): &(i64, String)| KeyPart::SiteText { site: *site, text: text.clone() };
        match tag {
            Tag::Project => KeyPart::Int(self.projects.items[id_usize]),
            Tag::Site => KeyPart::Int(self.sites.items[id_usize]),
            Tag::Batch => KeyPart::Int(self.batches.items[id_usize]),
            Tag::Team => site_text(&self.teams.items[id_usize]),
            Tag::Agent => site_text(&self.agents.items[id_usize]),
            Tag::Extension => site_text(&self.extensions.items[id_usize]),
            Tag::Account => KeyPart::Text(self.accounts.items[id_usize].clone()),
            Tag::Direction => KeyPart::Text(Direction::from_code(id as u8).name().to_owned()),
            Tag::HangupSide => KeyPart::Text(hangup_name(id as u8).to_owned()),
            Tag::Hour | Tag::Weekday => KeyPart::Int(i64::from(id)),
            Tag::Day => KeyPart::Text(day_text(i64::from(id as i32))),
            Tag::Month => KeyPart::Text(month_text(i64::from(id as i32))),
        }
    }
}

/// The grain of a cube: which dimensions it keeps and whether its buckets are local hours
/// or local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubeSpec {
    /// Bit `d` set: the cube keeps dimension `d` ([`PROJECT`] .. [`COMBO`]).
    pub dims: u16,
    pub hourly: bool,
}

impl CubeSpec {
    /// Every dimension, per local hour: the finest, what `report_cells` holds.
    pub const FINEST: CubeSpec = CubeSpec { dims: (1 << N_DIMS) - 1, hourly: true };

    pub fn without(dims: &[usize], hourly: bool) -> CubeSpec {
        let mut mask = (1_u16 << N_DIMS) - 1;
        for d in dims {
            mask &= !(1 << d);
        }
        CubeSpec { dims: mask, hourly }
    }

    pub(crate) fn covers(&self, dims: u16, hourly: bool) -> bool {
        self.dims & dims == dims && (self.hourly || !hourly)
    }
}

/// HQ's cubes, besides the finest. An agent is one site's, one team's and (nearly always)
/// one extension's, so summing agents and extensions away divides a cube by the agents per
/// site (~100); batches and business values multiply it, so the coarsest cubes drop them too.
/// Days divide by the working hours (~10). A report grouping by agent and hour without
/// business values or batches has its own cube, and a narrower one without the direction
/// too (inbound calls nearly double an agent-hour's cells; "dials" and the connects need no
/// direction dimension); one that needs agent, hour and business values together is
/// answered from the finest.
pub fn hub_cubes() -> Vec<CubeSpec> {
    vec![
        CubeSpec::without(&[], false),
        CubeSpec::without(&[AGENT, EXTENSION], true),
        CubeSpec::without(&[AGENT, EXTENSION], false),
        CubeSpec::without(&[AGENT, EXTENSION, BATCH, COMBO], true),
        CubeSpec::without(&[AGENT, EXTENSION, BATCH, COMBO], false),
        CubeSpec::without(&[BATCH, ACCOUNT, HANGUP, COMBO], true),
        CubeSpec::without(&[BATCH, ACCOUNT, DIRECTION, HANGUP, COMBO], true),
    ]
}

/// A site's cubes, besides the finest: one site's month is ~100 times smaller than HQ's, so
/// fewer, finer cubes do.
pub fn site_cubes() -> Vec<CubeSpec> {
    vec![
        CubeSpec::without(&[], false),
        CubeSpec::without(&[AGENT, EXTENSION], true),
        CubeSpec::without(&[AGENT, EXTENSION, BATCH, COMBO], false),
        CubeSpec::without(&[BATCH, ACCOUNT, DIRECTION, HANGUP, COMBO], true),
    ]
}

#[derive(Debug, Default)]
pub(crate) struct Bucket {
    /// Positions in `keys`, hashed by the key they point at: 4 bytes a cell instead of a
    /// second copy of the key.
    index: HashTable<u32>,
    keys: Vec<Key>,
    /// Sums kept as `u32` (wrapping, so a delta may be negative): half the memory of
    /// `i64`, and a cell holds at most one local day of one key, far below 2^32 seconds.
    vals: Vec<CellSums>,
}

/// A cube cell's sums.
pub(crate) type CellSums = [u32; N_MEASURES];

#[derive(Debug)]
struct Cube {
    spec: CubeSpec,
    cells: usize,
    /// By local hour (hourly) or local day.
    buckets: BTreeMap<i64, Bucket>,
}

impl Cube {
    fn add(&mut self, local_hour: i64, key: &Key, m: &Measures) {
        let bucket = if self.spec.hourly { local_hour } else { local_hour.div_euclid(24) };
        let mut rolled = *key;
        for (d, slot) in rolled.iter_mut().enumerate() {
            if self.spec.dims & (1 << d) == 0 {
                *slot = ROLLED_UP;
            }
        }
        let bucket = self.buckets.entry(bucket).or_default();
        let hash = key_hash(&rolled);
        let keys = &bucket.keys;
        let i = match bucket.index.find(hash, |at| keys[*at as usize] == rolled) {
            Some(at) => *at as usize,
            None => {
                let at = bucket.keys.len();
                let keys = &bucket.keys;
                bucket.index.insert_unique(hash, at as u32, |at| key_hash(&keys[*at as usize]));
                bucket.keys.push(rolled);
                bucket.vals.push([0; N_MEASURES]);
                self.cells += 1;
                at
            }
        };
        for (v, d) in bucket.vals[i].iter_mut().zip(m) {
            // Two's complement: adding a negative delta's low 32 bits subtracts it.
            *v = v.wrapping_add(*d as u32);
        }
    }
}

fn key_hash(key: &Key) -> u64 {
    BuildHasherDefault::<Fx>::default().hash_one(key)
}

#[derive(Debug)]
struct Mem {
    version: i64,
    dicts: Dicts,
    cubes: Vec<Cube>,
}

/// The report engine of one store: cubes in memory, rebuilt from `report_cells` when it
/// starts (or missed a commit) and updated by [`Engine::apply`] after each commit.
#[derive(Debug)]
pub struct Engine {
    zone: Zone,
    specs: Vec<CubeSpec>,
    mem: RwLock<Option<Mem>>,
}

impl Engine {
    /// An engine keeping the finest cube only (small stores and tests).
    pub fn new(zone: Zone) -> Engine {
        Engine::with_cubes(zone, vec![CubeSpec::FINEST])
    }

    /// An engine keeping `specs`; a report is answered from the smallest one covering it,
    /// and the finest is always added so every report has one.
    pub fn with_cubes(zone: Zone, mut specs: Vec<CubeSpec>) -> Engine {
        if !specs.contains(&CubeSpec::FINEST) {
            specs.push(CubeSpec::FINEST);
        }
        Engine { zone, specs, mem: RwLock::new(None) }
    }

    /// HQ's engine: the cubes of [`hub_cubes`].
    pub fn hub(zone: Zone) -> Engine {
        Engine::with_cubes(zone, hub_cubes())
    }

    /// A site box's engine: the cubes of [`site_cubes`].
    pub fn site(zone: Zone) -> Engine {
        Engine::with_cubes(zone, site_cubes())
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    fn add(&self, mem: &mut Mem, utc_hour: i64, cell: &CellKey, m: &Measures) {
        let key = mem.dicts.key(cell);
        let local_hour = self.zone.local_hour(utc_hour);
        for cube in &mut mem.cubes {
            cube.add(local_hour, &key, m);
        }
    }

    fn load(&self, conn: &rusqlite::Connection) -> Result<Mem, ReportError> {
        // One read transaction: the version and the cells of the same snapshot.
        let tx = conn.unchecked_transaction()?;
        let version = store::version(&tx)?;
        let cubes = self.specs.iter().map(|spec| Cube { spec: *spec, cells: 0, buckets: BTreeMap::new() }).collect();
        let mut mem = Mem { version, dicts: Dicts::default(), cubes };
        store::for_each_cell(&tx, |hour, cell, m| self.add(&mut mem, hour, &cell, &m))?;
        tx.finish()?;
        // The columns grew by doubling: a quarter of their memory is slack on average, and
        // most buckets (past hours) take few new cells after the load.
        for bucket in mem.cubes.iter_mut().flat_map(|c| c.buckets.values_mut()) {
            bucket.keys.shrink_to_fit();
            bucket.vals.shrink_to_fit();
            let keys = &bucket.keys;
            bucket.index.shrink_to_fit(|at| key_hash(&keys[*at as usize]));
        }
        Ok(mem)
    }

    /// Takes a committed transaction's changes. Called after the commit, in commit order
    /// (the store holds its write lock); if the engine is not at the version the changes
    /// start from, it drops its cubes and reloads at the next report.
    pub fn apply(&self, pending: Pending) {
        let Some(from) = pending.from_version else { return };
        let mut guard = self.mem.write().unwrap_or_else(PoisonError::into_inner);
        let Some(mem) = guard.as_mut() else { return };
        if mem.version != from {
            *guard = None;
            return;
        }
        for (hour, cell, m) in &pending.deltas {
            self.add(mem, *hour, cell, m);
        }
        mem.version = pending.to_version;
    }

    /// Drops the cubes: the next report reloads them (after a bulk load or a restore).
    pub fn invalidate(&self) {
        *self.mem.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Cells per cube, for the benchmark and the crate doc's sizing.
    pub fn cube_sizes(&self, conn: &rusqlite::Connection) -> Result<Vec<(CubeSpec, usize)>, ReportError> {
        self.ensure_loaded(conn)?;
        let guard = self.mem.read().unwrap_or_else(PoisonError::into_inner);
        Ok(guard.as_ref().map(|m| m.cubes.iter().map(|c| (c.spec, c.cells)).collect()).unwrap_or_default())
    }

    /// Brings the cubes up to the store's version (loading them the first time): call with
    /// the store's connection, then [`Engine::answer`] without it.
    pub fn refresh(&self, conn: &rusqlite::Connection) -> Result<(), ReportError> {
        self.ensure_loaded(conn)
    }

    /// Answers `def` from the cubes as they are (see [`Engine::refresh`]).
    pub fn answer(&self, def: &ReportDef, filter: &Filter) -> ReportTable {
        let guard = self.mem.read().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(mem) => crate::query::answer(mem_view(mem), def, filter),
            None => crate::query::empty(def),
        }
    }

    fn ensure_loaded(&self, conn: &rusqlite::Connection) -> Result<(), ReportError> {
        let version = store::version(conn)?;
        let fresh = self.mem.read().unwrap_or_else(PoisonError::into_inner).as_ref().is_some_and(|m| m.version >= version);
        if !fresh {
            let mut guard = self.mem.write().unwrap_or_else(PoisonError::into_inner);
            if guard.as_ref().is_none_or(|m| m.version < version) {
                *guard = Some(self.load(conn)?);
            }
        }
        Ok(())
    }

    /// Answers `def` within `filter`, from the cubes.
    pub fn run(&self, conn: &rusqlite::Connection, def: &ReportDef, filter: &Filter) -> Result<ReportTable, ReportError> {
        self.ensure_loaded(conn)?;
        Ok(self.answer(def, filter))
    }
}

/// What the query module reads of the memory.
pub(crate) struct MemView<'a> {
    pub(crate) dicts: DictsView<'a>,
    pub(crate) cubes: Vec<CubeView<'a>>,
}

pub(crate) struct DictsView<'a>(&'a Dicts);

pub(crate) struct CubeView<'a> {
    pub(crate) spec: CubeSpec,
    pub(crate) cells: usize,
    pub(crate) buckets: &'a BTreeMap<i64, Bucket>,
}

fn mem_view(mem: &Mem) -> MemView<'_> {
    MemView {
        dicts: DictsView(&mem.dicts),
        cubes: mem.cubes.iter().map(|c| CubeView { spec: c.spec, cells: c.cells, buckets: &c.buckets }).collect(),
    }
}

impl DictsView<'_> {
    pub(crate) fn len(&self, dim: usize) -> usize {
        self.0.len(dim)
    }

    pub(crate) fn matches(&self, dim: usize, id: usize, value: &str) -> bool {
        self.0.matches(dim, id, value)
    }

    pub(crate) fn combo(&self, id: usize) -> &[(String, String)] {
        &self.0.combo_values[id]
    }

    pub(crate) fn key_part(&self, tag: Tag, id: u32) -> KeyPart {
        self.0.key_part(tag, id)
    }
}

impl Bucket {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn cells(&self) -> impl Iterator<Item = (&Key, &CellSums)> {
        self.keys.iter().zip(&self.vals)
    }
}

/// The cell-key dimension of a non-time tag.
pub(crate) fn tag_dim(tag: Tag) -> Option<usize> {
    match tag {
        Tag::Project => Some(PROJECT),
        Tag::Site => Some(SITE),
        Tag::Team => Some(TEAM),
        Tag::Agent => Some(AGENT),
        Tag::Extension => Some(EXTENSION),
        Tag::Batch => Some(BATCH),
        Tag::Account => Some(ACCOUNT),
        Tag::Direction => Some(DIRECTION),
        Tag::HangupSide => Some(HANGUP),
        _ => None,
    }
}

/// The cell-key dimension a condition's subject reads; `None` for the time subjects.
pub(crate) fn subject_dim(subject: &Subject) -> Option<usize> {
    match subject {
        Subject::Project => Some(PROJECT),
        Subject::Site => Some(SITE),
        Subject::Team => Some(TEAM),
        Subject::Agent => Some(AGENT),
        Subject::Extension => Some(EXTENSION),
        Subject::Batch => Some(BATCH),
        Subject::Account => Some(ACCOUNT),
        Subject::Direction => Some(DIRECTION),
        Subject::HangupSide => Some(HANGUP),
        Subject::Field { .. } => Some(COMBO),
        Subject::Hour | Subject::Weekday => None,
    }
}

/// The local-time parts of a bucket: `(hour or None, day, weekday, month index)`.
pub(crate) fn bucket_time(bucket: i64, hourly: bool) -> (Option<i64>, i64, i64, i64) {
    let (hour, day) = if hourly { (Some(bucket.rem_euclid(24)), bucket.div_euclid(24)) } else { (None, bucket) };
    (hour, day, weekday(day), month_index(day))
}

pub(crate) type Group = GroupKey;

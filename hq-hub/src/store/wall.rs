//! The monitoring wall's memory (职场监控管理): each site's latest [`SiteLive`] snapshot, its
//! link state and since when, and a broadcast of which site changed.
//!
//! - Snapshots arrive every half second or so from every site; keeping them in memory lets
//!   the wall's streams read a site without touching SQLite. Each is also written to
//!   `site_live` at most every [`PERSIST_EVERY_MS`] and when the link goes down, so after a
//!   restart an offline site still shows its last known state.
//! - Subscribers get site ids, not snapshots: a slow wall that lags only loses ids and
//!   re-reads the whole wall ([`WallChange::Lagged`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection};
use sync_protocol::SiteLive;
use tokio::sync::broadcast;

use super::{now_unix, DbError, Scope, Store};

/// A snapshot is written to the database at most this often per site (and always when the
/// site's link goes down).
const PERSIST_EVERY_MS: i64 = 10_000;

/// How many changes a slow wall may fall behind before it re-reads everything.
const CHANGES_BUFFER: usize = 4096;

/// One site as the wall shows it.
#[derive(Debug, Clone)]
pub struct WallSite {
    pub id: i64,
    pub name: String,
    pub online: bool,
    /// Since when the link has been in its current state (unix seconds), if it ever connected.
    pub link_since: Option<i64>,
    /// The latest snapshot, live while `online`, the last known state otherwise.
    pub live: Option<Arc<SiteLive>>,
    /// When the hub received `live` (unix milliseconds).
    pub received_at_ms: Option<i64>,
    /// HQ holds back changes the site's version cannot read (see `store::upgrades`).
    pub needs_upgrade: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    online: bool,
    needs_upgrade: bool,
    link_since: Option<i64>,
    live: Option<Arc<SiteLive>>,
    received_at_ms: Option<i64>,
    persisted_at_ms: i64,
}

/// The in-memory half of the wall, held by the [`Store`].
pub(super) struct Wall {
    sites: Mutex<HashMap<i64, Entry>>,
    changes: broadcast::Sender<i64>,
}

impl Wall {
    /// The snapshots kept before the hub last stopped.
    pub(super) fn load(conn: &Connection) -> Result<Wall, rusqlite::Error> {
        let mut stmt = conn.prepare(
            "SELECT s.id, s.name, s.online, s.link_since, l.received_at_ms, l.snapshot,
                    EXISTS (SELECT 1 FROM down_held h WHERE h.site_id = s.id)
             FROM sites s LEFT JOIN site_live l ON l.site_id = s.id",
        )?;
        let mut sites = HashMap::new();
        let rows = stmt.query_map([], |r| {
            let snapshot: Option<String> = r.get(5)?;
            let received: Option<i64> = r.get(4)?;
            // A snapshot this build cannot read is dropped: the next one replaces it.
            let live = snapshot.and_then(|json| serde_json::from_str::<SiteLive>(&json).ok()).map(Arc::new);
            let entry = Entry {
                name: r.get(1)?,
                // Nothing is connected before the link server starts.
                online: false,
                needs_upgrade: r.get(6)?,
                link_since: r.get(3)?,
                received_at_ms: live.as_ref().and(received),
                live,
                persisted_at_ms: received.unwrap_or(0),
            };
            Ok((r.get::<_, i64>(0)?, entry))
        })?;
        for row in rows {
            let (id, entry) = row?;
            sites.insert(id, entry);
        }
        Ok(Wall { sites: Mutex::new(sites), changes: broadcast::channel(CHANGES_BUFFER).0 })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Entry>> {
        self.sites.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store {
    /// A site's snapshot arrived: keep it, tell the walls, and write it down now and then.
    pub(super) fn keep_site_live(&self, site_id: i64, live: SiteLive) -> Result<(), DbError> {
        let now_ms = now_unix() * 1000;
        let persist = {
            let mut sites = self.wall.lock();
            let entry = match sites.get_mut(&site_id) {
                Some(entry) => entry,
                None => {
                    drop(sites);
                    self.wall_entry_from_db(site_id)?;
                    sites = self.wall.lock();
                    let Some(entry) = sites.get_mut(&site_id) else { return Ok(()) };
                    entry
                }
            };
            let live = Arc::new(live);
            entry.live = Some(live.clone());
            entry.received_at_ms = Some(now_ms);
            let due = now_ms - entry.persisted_at_ms >= PERSIST_EVERY_MS;
            if due {
                entry.persisted_at_ms = now_ms;
            }
            due.then_some(live)
        };
        let _ = self.wall.changes.send(site_id);
        if let Some(live) = persist {
            self.persist_site_live(site_id, &live, now_ms)?;
        }
        Ok(())
    }

    /// The link of `site_id` came up or went down (already recorded in `sites`): the walls
    /// are told, and going down writes the last snapshot so it survives a restart.
    pub(super) fn wall_link_changed(&self, site_id: i64, online: bool) -> Result<(), DbError> {
        let now = now_unix();
        let last = {
            let mut sites = self.wall.lock();
            match sites.get_mut(&site_id) {
                Some(entry) => {
                    entry.online = online;
                    entry.link_since = Some(now);
                    entry.live.clone().zip(entry.received_at_ms)
                }
                None => {
                    drop(sites);
                    self.wall_entry_from_db(site_id)?;
                    None
                }
            }
        };
        let _ = self.wall.changes.send(site_id);
        if let (false, Some((live, received_at_ms))) = (online, last) {
            self.persist_site_live(site_id, &live, received_at_ms)?;
        }
        Ok(())
    }

    fn persist_site_live(&self, site_id: i64, live: &SiteLive, received_at_ms: i64) -> Result<(), DbError> {
        let json = serde_json::to_string(live).unwrap_or_default();
        self.conn().execute(
            "INSERT INTO site_live (site_id, received_at_ms, snapshot) VALUES (?1, ?2, ?3)
             ON CONFLICT(site_id) DO UPDATE SET received_at_ms = excluded.received_at_ms, snapshot = excluded.snapshot",
            params![site_id, received_at_ms, json],
        )?;
        Ok(())
    }

    /// Reads a site the wall does not hold yet (created since the hub started).
    fn wall_entry_from_db(&self, site_id: i64) -> Result<(), DbError> {
        let row = self
            .list_sites()?
            .into_iter()
            .find(|site| site.id == site_id);
        if let Some(site) = row {
            let entry = Entry {
                name: site.name,
                online: site.online,
                needs_upgrade: site.needs_upgrade,
                link_since: site.link_since,
                live: None,
                received_at_ms: None,
                persisted_at_ms: 0,
            };
            self.wall.lock().entry(site_id).or_insert(entry);
        }
        Ok(())
    }

    /// Whether HQ now holds back changes from `site` until its box is upgraded: the walls
    /// show it on the site's card as it changes.
    pub(super) fn wall_needs_upgrade(&self, site_id: i64, needs: bool) {
        let changed = self.wall.lock().get_mut(&site_id).is_some_and(|entry| std::mem::replace(&mut entry.needs_upgrade, needs) != needs);
        if changed {
            let _ = self.wall.changes.send(site_id);
        }
    }

    /// Which sites change, as they do (a site id per change).
    pub fn wall_changes(&self) -> broadcast::Receiver<i64> {
        self.wall.changes.subscribe()
    }

    /// Every site `scope` may see, enrolled or not, by id, as the wall shows them. Names
    /// and link states are read afresh; snapshots come from memory.
    pub fn wall_sites(&self, scope: &Scope) -> Result<Vec<WallSite>, DbError> {
        let sites = self.list_sites()?;
        let mut memory = self.wall.lock();
        let mut out = Vec::new();
        for site in sites.into_iter().filter(|site| scope.site(site.id)) {
            let entry = memory.entry(site.id).or_insert_with(|| Entry {
                name: site.name.clone(),
                online: site.online,
                needs_upgrade: site.needs_upgrade,
                link_since: site.link_since,
                live: None,
                received_at_ms: None,
                persisted_at_ms: 0,
            });
            entry.name = site.name.clone();
            entry.online = site.online;
            entry.link_since = site.link_since;
            entry.needs_upgrade = site.needs_upgrade;
            out.push(wall_site(site.id, entry));
        }
        Ok(out)
    }

    /// One site as the wall shows it, from memory (what a wall's stream reads per change);
    /// `None` if it does not exist or lies outside `scope`.
    pub fn wall_site(&self, scope: &Scope, site_id: i64) -> Result<Option<WallSite>, DbError> {
        if !scope.site(site_id) {
            return Ok(None);
        }
        if let Some(entry) = self.wall.lock().get(&site_id) {
            return Ok(Some(wall_site(site_id, entry)));
        }
        self.wall_entry_from_db(site_id)?;
        Ok(self.wall.lock().get(&site_id).map(|entry| wall_site(site_id, entry)))
    }
}

fn wall_site(id: i64, entry: &Entry) -> WallSite {
    WallSite {
        id,
        name: entry.name.clone(),
        online: entry.online,
        link_since: entry.link_since,
        live: entry.live.clone(),
        received_at_ms: entry.received_at_ms,
        needs_upgrade: entry.needs_upgrade,
    }
}

#[cfg(test)]
mod tests {
    use sync_link::HubStore;
    use sync_protocol::{LiveAgent, LiveAgentState};

    use super::*;
    use crate::store::Account;

    fn admin() -> Scope {
        Scope::all(Account { id: 1, username: "admin".into(), is_admin: true })
    }

    fn snapshot(ringing: u32) -> SiteLive {
        SiteLive {
            taken_at_ms: 1,
            agents: vec![LiveAgent {
                username: "a1".into(),
                extension: "801".into(),
                state: LiveAgentState::Ringing,
                since_ms: 1,
            }],
            calls_ringing: ringing,
            ..SiteLive::default()
        }
    }

    /// A snapshot reaches the wall and its subscribers; the link going down keeps it (as the
    /// last known state, with since when the site is offline) and writes it down, so a
    /// restarted hub still shows it.
    #[test]
    fn the_wall_keeps_the_latest_snapshot_and_the_last_known_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_site("A").unwrap();
        let b = store.create_site("B").unwrap();
        let mut changes = store.wall_changes();
        store.link_state(a as u64, true);
        store.site_live(a as u64, snapshot(2));
        store.site_live(a as u64, snapshot(3));
        assert_eq!(changes.try_recv().unwrap(), a);
        let wall = store.wall_sites(&admin()).unwrap();
        assert_eq!(wall.len(), 2);
        assert!(wall[0].online);
        assert_eq!(wall[0].live.as_ref().unwrap().calls_ringing, 3);
        assert!(wall[1].live.is_none() && !wall[1].online);
        store.link_state(a as u64, false);
        let site = store.wall_site(&admin(), a).unwrap().unwrap();
        assert!(!site.online);
        assert!(site.link_since.unwrap() >= now_unix() - 5);
        assert_eq!(site.live.as_ref().unwrap().calls_ringing, 3, "the last known state stays");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let site = store.wall_site(&admin(), a).unwrap().unwrap();
        assert!(!site.online);
        assert_eq!(site.live.as_ref().unwrap().calls_ringing, 3);
        assert_eq!(site.live.as_ref().unwrap().agents[0].state, LiveAgentState::Ringing);
        assert!(store.wall_site(&admin(), b).unwrap().unwrap().live.is_none());
        assert!(store.wall_site(&admin(), 999).unwrap().is_none());
    }
}

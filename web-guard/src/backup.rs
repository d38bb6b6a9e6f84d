//! The backup directory both servers write (`hq-hub backup --to DIR`, `appliance backup
//! --to DIR`) and read back (`restore --from DIR`), while the server keeps running.
//!
//! - The database is copied with SQLite's online backup API: a consistent snapshot of the
//!   live file, taken page by page while writers go on (each step holds the read lock only
//!   briefly; a write during the copy restarts it from the changed pages).
//! - The files beside it (the hub's CA, the box's identity and settings) are copied as they
//!   are, secrets keeping owner-only modes.
//! - `backup.json` names what the directory holds: which server, its version, when, and
//!   the database's schema version, so a restore refuses another server's backup or one
//!   newer than the build.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "backup.json";

/// Why a backup or a restore failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path} already exists and is not empty; back up into a new directory")]
    TargetNotEmpty { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}; is it this server's database?")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("{path} is not a backup directory (no {MANIFEST}); give the directory `backup --to` wrote")]
    NoManifest { path: PathBuf },
    #[error("{path} holds a backup of the {found}, not of the {expected}")]
    WrongKind { path: PathBuf, found: String, expected: &'static str },
    #[error("the backup's database is at schema version {found} but this build knows {known}; restore with the release that wrote it or a newer one")]
    TooNew { found: i64, known: usize },
    #[error("the backup's database fails SQLite's integrity check ({detail}); use another backup")]
    Corrupt { detail: String },
}

pub type BackupResult<T> = Result<T, BackupError>;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

fn sqlite_error(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite { path: path.to_path_buf(), source }
}

/// Creates the backup directory `to`, which must not exist or be empty.
pub fn create_target(to: &Path) -> BackupResult<()> {
    if to.exists() && fs::read_dir(to).map_err(io_error(to))?.next().is_some() {
        return Err(BackupError::TargetNotEmpty { path: to.to_path_buf() });
    }
    fs::create_dir_all(to).map_err(io_error(to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).map_err(io_error(to))
}

/// Copies the live database `source` to `target` with SQLite's online backup, 256 pages a
/// step, so writers wait at most one step. The copy is owner-only.
pub fn copy_database(source: &Path, target: &Path) -> BackupResult<()> {
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_error(source))?;
    from.busy_timeout(Duration::from_secs(10)).map_err(sqlite_error(source))?;
    let mut to = Connection::open(target).map_err(sqlite_error(target))?;
    {
        let backup = rusqlite::backup::Backup::new(&from, &mut to).map_err(sqlite_error(target))?;
        backup.run_to_completion(256, Duration::from_millis(5), None).map_err(sqlite_error(source))?;
    }
    // One self-contained file: no WAL beside it.
    to.pragma_update(None, "journal_mode", "DELETE").map_err(sqlite_error(target))?;
    drop(to);
    fs::set_permissions(target, fs::Permissions::from_mode(0o600)).map_err(io_error(target))
}

/// Copies `from` (a file or a directory, recursively) to `to`, keeping each file's mode.
pub fn copy_tree(from: &Path, to: &Path) -> BackupResult<()> {
    let meta = fs::metadata(from).map_err(io_error(from))?;
    if meta.is_dir() {
        fs::create_dir_all(to).map_err(io_error(to))?;
        fs::set_permissions(to, meta.permissions()).map_err(io_error(to))?;
        for entry in fs::read_dir(from).map_err(io_error(from))? {
            let entry = entry.map_err(io_error(from))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map_err(io_error(from))?;
        fs::set_permissions(to, meta.permissions()).map_err(io_error(to))
    }
}

/// Writes the manifest: `kind` names the server, `fields` what it wants to say besides.
pub fn write_manifest(to: &Path, kind: &str, schema_version: i64, fields: serde_json::Value) -> BackupResult<()> {
    let mut manifest = serde_json::json!({
        "kind": kind,
        "schema_version": schema_version,
        "created_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    if let (Some(object), serde_json::Value::Object(more)) = (manifest.as_object_mut(), fields) {
        object.extend(more);
    }
    let path = to.join(MANIFEST);
    fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap_or_default()).map_err(io_error(&path))
}

/// Reads a backup directory's manifest and checks it is `expected`'s and that its database
/// (`database`, a file name in the directory) is whole and not newer than `known_schema`.
pub fn check_backup(from: &Path, expected: &'static str, database: &str, known_schema: usize) -> BackupResult<serde_json::Value> {
    let path = from.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(|_| BackupError::NoManifest { path: from.to_path_buf() })?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| BackupError::NoManifest { path: from.to_path_buf() })?;
    let kind = manifest["kind"].as_str().unwrap_or("unknown").to_owned();
    if kind != expected {
        return Err(BackupError::WrongKind { path: from.to_path_buf(), found: kind, expected });
    }
    let db = from.join(database);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_error(&db))?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sqlite_error(&db))?;
    if found < 0 || found as usize > known_schema {
        return Err(BackupError::TooNew { found, known: known_schema });
    }
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(sqlite_error(&db))?;
    if check != "ok" {
        return Err(BackupError::Corrupt { detail: check });
    }
    Ok(manifest)
}

/// Moves what a restore will replace in `data_dir` (the `names` present) into
/// `data_dir/replaced-<unix seconds>/`, never deleting it; returns that directory if
/// anything was moved. The database's `-wal` and `-shm` files go with it.
pub fn set_aside(data_dir: &Path, names: &[&str]) -> BackupResult<Option<PathBuf>> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let aside = data_dir.join(format!("replaced-{stamp}"));
    let mut moved = false;
    for name in names.iter().flat_map(|name| [name.to_string(), format!("{name}-wal"), format!("{name}-shm")]) {
        let path = data_dir.join(&name);
        if path.exists() {
            fs::create_dir_all(&aside).map_err(io_error(&aside))?;
            fs::rename(&path, aside.join(&name)).map_err(io_error(&path))?;
            moved = true;
        }
    }
    Ok(moved.then_some(aside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_database_is_copied_whole_and_read_back_with_its_checks() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = Connection::open(&live).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2); PRAGMA user_version = 3;").unwrap();
        let to = dir.path().join("backup");
        create_target(&to).unwrap();
        copy_database(&live, &to.join("live.db")).unwrap();
        // Written while the copy exists: not in it.
        conn.execute("INSERT INTO t VALUES (3)", []).unwrap();
        write_manifest(&to, "site appliance", 3, serde_json::json!({ "site_id": 5 })).unwrap();
        let manifest = check_backup(&to, "site appliance", "live.db", 3).unwrap();
        assert_eq!(manifest["site_id"], 5);
        let copy = Connection::open(to.join("live.db")).unwrap();
        assert_eq!(copy.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 2);

        assert!(matches!(create_target(&to), Err(BackupError::TargetNotEmpty { .. })));
        assert!(matches!(check_backup(&to, "HQ hub", "live.db", 3), Err(BackupError::WrongKind { .. })));
        assert!(matches!(check_backup(&to, "site appliance", "live.db", 2), Err(BackupError::TooNew { found: 3, known: 2 })));
        assert!(matches!(check_backup(dir.path(), "site appliance", "live.db", 3), Err(BackupError::NoManifest { .. })));
    }
}

//! The hub's configuration file (`/etc/outpost/hub.toml` in the package). Every key is
//! optional; a command-line flag or its `HQ_HUB_*` variable wins over the file, the file over
//! the default. Example (the defaults):
//!
//! ```toml
//! data_dir = "/var/lib/outpost-hub"   # database, uploaded files, the link's CA
//! http_bind = "127.0.0.1:8080"        # console and JSON API
//! sync_bind = "0.0.0.0:4433"          # the sites' QUIC link (UDP)
//! time_zone = "Asia/Shanghai"         # local days and hours of reports and the home page
//! enrollment_code_ttl = "24h"         # how long a site's enrollment code stays valid
//! ```
//!
//! Every error names the key, what was wrong and the fix, as `appliance.toml`'s do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::TimeZone;

/// The file's keys, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    pub data_dir: Option<PathBuf>,
    pub http_bind: Option<SocketAddr>,
    pub sync_bind: Option<SocketAddr>,
    pub time_zone: Option<String>,
    pub enrollment_code_ttl: Option<String>,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HubConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, an unknown key or a value of the wrong type; the message names the line.
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    /// A value parses but makes no sense; the message names the key and the fix.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// What `serve` runs with, after flags, variables, the file and the defaults.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub data_dir: PathBuf,
    pub http_bind: SocketAddr,
    pub sync_bind: SocketAddr,
    pub time_zone: TimeZone,
    pub enrollment_code_ttl: Duration,
}

/// What the command line (or its variables) gave; `None` leaves the key to the file.
#[derive(Debug, Clone, Default)]
pub struct ServeFlags {
    pub data_dir: Option<PathBuf>,
    pub http_bind: Option<SocketAddr>,
    pub sync_bind: Option<SocketAddr>,
    pub time_zone: Option<TimeZone>,
    pub enrollment_code_ttl: Option<Duration>,
}

impl HubFile {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<HubFile, HubConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| HubConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|source| HubConfigError::Parse { path: path.to_path_buf(), source })
    }

    /// The settings, `flags` first, then this file (read from `path`, for messages), then the
    /// defaults. Without a data directory anywhere there is nothing to serve.
    pub fn settings(self, flags: ServeFlags, path: Option<&Path>) -> Result<ServeSettings, HubConfigError> {
        let invalid = |message: String| HubConfigError::Invalid {
            path: path.map_or_else(|| PathBuf::from("(command line)"), Path::to_path_buf),
            message,
        };
        let time_zone = match (flags.time_zone, self.time_zone) {
            (Some(zone), _) => zone,
            (None, Some(name)) => TimeZone::new(name.trim())
                .map_err(|error| invalid(format!("time_zone = {name:?}: {error}; give an IANA zone with whole-hour offsets, e.g. \"Asia/Shanghai\"")))?,
            (None, None) => TimeZone::china(),
        };
        let enrollment_code_ttl = match (flags.enrollment_code_ttl, self.enrollment_code_ttl) {
            (Some(ttl), _) => ttl,
            (None, Some(text)) => parse_ttl(&text).map_err(|error| invalid(format!("enrollment_code_ttl = {text:?}: {error}")))?,
            (None, None) => Duration::from_secs(24 * 3600),
        };
        let data_dir = flags.data_dir.or(self.data_dir).ok_or_else(|| {
            invalid("no data directory: set data_dir in the file, --data, or HQ_HUB_DATA".to_string())
        })?;
        let http_bind = flags.http_bind.or(self.http_bind).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let sync_bind = flags.sync_bind.or(self.sync_bind).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4433)));
        if http_bind.port() != 0 && http_bind == sync_bind {
            return Err(invalid(format!("http_bind and sync_bind are both {http_bind}: give the sync link its own port")));
        }
        Ok(ServeSettings { data_dir, http_bind, sync_bind, time_zone, enrollment_code_ttl })
    }
}

/// `90s`, `30m`, `24h`, `7d`: a positive whole number and its unit.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a lifetime: give a positive whole number with s, m, h or d, e.g. 24h");
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(bad()),
    };
    match number.checked_mul(seconds) {
        Some(total) if total > 0 => Ok(Duration::from_secs(total)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServeSettings, HubConfigError> {
        let file: HubFile = toml::from_str(text).map_err(|source| HubConfigError::Parse { path: "hub.toml".into(), source })?;
        file.settings(ServeFlags::default(), Some(Path::new("hub.toml")))
    }

    #[test]
    fn enrollment_code_lifetimes() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_ttl("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "24", "h", "0h", "1.5h", "-1h", "24 h", "3w"] {
            let error = parse_ttl(bad).unwrap_err();
            assert!(error.contains("not a lifetime"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn the_file_gives_what_flags_leave_and_defaults_the_rest() {
        let settings = parse("data_dir = \"/srv/hub\"\nsync_bind = \"0.0.0.0:4433\"\ntime_zone = \"Asia/Tokyo\"\n").unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/srv/hub"));
        assert_eq!(settings.sync_bind, "0.0.0.0:4433".parse().unwrap());
        assert_eq!(settings.http_bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.enrollment_code_ttl, Duration::from_secs(86_400));
        let file: HubFile = toml::from_str("data_dir = \"/srv/hub\"\nhttp_bind = \"0.0.0.0:80\"\n").unwrap();
        let flags = ServeFlags { http_bind: Some("127.0.0.1:9000".parse().unwrap()), ..ServeFlags::default() };
        assert_eq!(file.settings(flags, None).unwrap().http_bind, "127.0.0.1:9000".parse().unwrap(), "a flag wins");
    }

    #[test]
    fn every_error_names_the_key_and_the_fix() {
        let cases = [
            ("data_dir = \"/d\"\ntime_zone = \"Mars/Olympus\"\n", "time_zone = \"Mars/Olympus\""),
            ("data_dir = \"/d\"\nenrollment_code_ttl = \"3w\"\n", "enrollment_code_ttl = \"3w\""),
            ("data_dir = \"/d\"\nhttp_bind = \"0.0.0.0:4433\"\nsync_bind = \"0.0.0.0:4433\"\n", "give the sync link its own port"),
            ("http_bind = \"127.0.0.1:8080\"\n", "no data directory"),
            ("data_dir = \"/d\"\nhttp_port = 80\n", "unknown field `http_port`"),
            ("data_dir = \"/d\"\nhttp_bind = \"localhost\"\n", "http_bind"),
        ];
        for (text, needle) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.starts_with("hub.toml") && error.contains(needle), "{text:?}: {error}");
        }
    }
}

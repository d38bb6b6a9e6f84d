//! The appliance's configuration file, `appliance.toml` in the data directory.
//!
//! Every key has a default, so an empty file (or none) gives a box that serves its web UI on
//! port 8080 and SIP on 5060 of every interface. Example:
//!
//! ```toml
//! http_bind = "0.0.0.0:8080"        # site web UI (admin and agent desk)
//! sip_bind = "0.0.0.0:5060"         # SIP for trunks and agents' phones (UDP and TCP)
//! public_ip = "192.168.1.10"        # address phones and trunks reach; written into SDP
//! rtp_ports = [20000, 20999]        # RTP port range, two ports per call leg
//! hold_audio = "/var/lib/outpost/hold.wav"   # optional: 8 kHz µ-law WAV for waiting calls
//!
//! [[trunks]]
//! name = "carrier"
//! address = "203.0.113.5:5060"
//! domain = "carrier.example"
//! username = "site12"               # optional digest credentials
//! password = "secret"
//! channels = 30                     # most calls at once on this trunk
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the appliance needs to start.
#[derive(Debug, Clone)]
pub struct ApplianceConfig {
    /// Holds `site.db`, the site identity, recordings and `appliance.toml`.
    pub data_dir: PathBuf,
    pub http_bind: SocketAddr,
    pub sip_bind: SocketAddr,
    pub public_ip: IpAddr,
    pub rtp_ports: (u16, u16),
    pub trunks: Vec<hardware::TrunkConfig>,
    pub hold_audio: Option<PathBuf>,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML or a key has the wrong type; the message names the line.
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    /// A value parses but makes no sense; the message names the key and the fix.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http_bind: Option<SocketAddr>,
    sip_bind: Option<SocketAddr>,
    public_ip: Option<IpAddr>,
    rtp_ports: Option<(u16, u16)>,
    hold_audio: Option<PathBuf>,
    #[serde(default)]
    trunks: Vec<FileTrunk>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTrunk {
    name: String,
    address: SocketAddr,
    domain: Option<String>,
    username: Option<String>,
    password: Option<String>,
    channels: Option<u32>,
}

impl ApplianceConfig {
    /// The defaults for a box whose data lives in `data_dir`.
    pub fn with_defaults(data_dir: &Path) -> ApplianceConfig {
        ApplianceConfig {
            data_dir: data_dir.to_path_buf(),
            http_bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
            sip_bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5060)),
            public_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_ports: (20000, 20999),
            trunks: Vec::new(),
            hold_audio: None,
        }
    }

    /// Reads `file` (default: `appliance.toml` in `data_dir`). A missing default file means
    /// all defaults; a missing file named explicitly is an error.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> Result<ApplianceConfig, ConfigError> {
        let path = file.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join("appliance.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && file.is_none() => {
                String::new()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(data_dir, &path, &text)
    }

    /// Parses the text of a configuration file (`path` is only used in messages).
    pub fn parse(data_dir: &Path, path: &Path, text: &str) -> Result<ApplianceConfig, ConfigError> {
        let file: FileConfig = toml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), message };
        let mut config = ApplianceConfig::with_defaults(data_dir);
        if let Some(bind) = file.http_bind {
            config.http_bind = bind;
        }
        if let Some(bind) = file.sip_bind {
            config.sip_bind = bind;
        }
        if let Some(ip) = file.public_ip {
            config.public_ip = ip;
        }
        if let Some((low, high)) = file.rtp_ports {
            if low >= high || high - low < 3 {
                return Err(invalid(format!(
                    "rtp_ports = [{low}, {high}]: the range must hold at least 4 ports, low first"
                )));
            }
            config.rtp_ports = (low, high);
        }
        config.hold_audio = file.hold_audio;
        for trunk in file.trunks {
            if trunk.name.trim().is_empty() {
                return Err(invalid(format!("trunk at {}: name must not be empty", trunk.address)));
            }
            if config.trunks.iter().any(|t: &hardware::TrunkConfig| t.name == trunk.name) {
                return Err(invalid(format!("trunk \"{}\" is defined twice", trunk.name)));
            }
            let channels = trunk.channels.unwrap_or(30);
            if channels == 0 {
                return Err(invalid(format!("trunk \"{}\": channels must be at least 1", trunk.name)));
            }
            config.trunks.push(hardware::TrunkConfig {
                domain: trunk.domain.unwrap_or_else(|| trunk.address.ip().to_string()),
                name: trunk.name,
                address: trunk.address,
                username: trunk.username,
                password: trunk.password,
                channels,
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = include_str!("config.rs")
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| line.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let config = ApplianceConfig::parse(Path::new("/d"), Path::new("appliance.toml"), &text)
            .expect("the documented example parses");
        assert_eq!(config.rtp_ports, (20000, 20999));
        assert_eq!(config.trunks.len(), 1);
        assert_eq!(config.trunks[0].channels, 30);
        assert_eq!(config.trunks[0].username.as_deref(), Some("site12"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_ranges() {
        let unknown = ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), "htp_bind = 1");
        assert!(matches!(unknown, Err(ConfigError::Parse { .. })));
        let range =
            ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), "rtp_ports = [30000, 20000]");
        let message = range.expect_err("reversed range").to_string();
        assert!(message.contains("rtp_ports"), "{message}");
    }
}

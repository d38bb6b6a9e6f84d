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
//! fxo_profiles = "/var/lib/outpost/fxo.toml" # optional: FXO gateways (docs/fxo-profiles.md)
//! media_timeout_seconds = 60        # hang up an answered call whose customer sends no RTP
//! session_idle_minutes = 480        # a web session unused this long must log in again (8 h)
//! report_time_zone = "Asia/Shanghai" # reports count days and hours here (whole-hour zones)
//! stop_grace_seconds = 30           # on SIGTERM: calls in progress may finish this long
//! recording_floor_mb = 512          # under this much free disk, new calls are not recorded
//! inbound_queue_seconds = 60        # a customer's call waits this long in the site's queue
//!
//! [panel]                           # optional: a 128x64 SSD1306 front panel on I2C
//! i2c = "/dev/i2c-1"
//! address = 0x3c                    # the controller's address (0x3c or 0x3d)
//! name = "SH-PUDONG-01"             # the site's name on the panel (ASCII); default: its id
//!
//! [lockout]                         # phones guessing passwords (defaults shown)
//! max_failures = 5
//! window_seconds = 60
//! lockout_seconds = 300
//!
//! [[trunks]]
//! name = "carrier"
//! address = "203.0.113.5:5060"
//! domain = "carrier.example"
//! username = "site12"               # optional digest credentials
//! password = "secret"
//! channels = 30                     # most calls at once on this trunk
//! transport = "udp"                 # udp (default) or tcp
//! register = true                   # REGISTER as `username` (carriers that want it)
//! register_expires = 600            # seconds asked for; refreshed at half of what is granted
//! health_check_seconds = 30         # OPTIONS this often; a silent trunk is skipped
//! failover = ["backup"]             # tried in order on 5xx, silence, or no free channel
//! dids = ["02155550000"]            # the site's numbers this carrier delivers calls to (呼入)
//!
//! [[trunks]]
//! name = "backup"
//! address = "198.51.100.7:5060"
//! outbound_proxy = "198.51.100.1:5060"  # every request via this proxy (loose Route)
//! dial_pattern = "0086{number}"         # Request-URI user part; {number} is the number
//! channels = 10
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hardware::{LockoutPolicy, SipTransport, TelephonyOptions, TrunkOptions, TrunkRegistration};
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
    /// Per-trunk transport, proxy, registration, health checks and failover; the
    /// registrar's lockout policy.
    pub telephony: TelephonyOptions,
    /// The web server's sessions and the reports' time zone.
    pub web: WebOptions,
    /// On a stop (SIGTERM, Ctrl-C): no new call is dialed, and the calls in progress may
    /// finish for this long before they are hung up.
    pub stop_grace: Duration,
    /// The disk floor under which new calls are not recorded.
    pub recordings: crate::recordings::RecordingOptions,
    /// The front panel: where it is attached, if it is, and the name it shows.
    pub panel: crate::panel::PanelOptions,
    /// How long a customer's call to the site (呼入) waits in the site-wide queue (callers
    /// who are none of the site's customers, or whose task is not running) for an agent.
    pub inbound_queue: Duration,
}

/// The web server's settings.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// A session with no request for this long is ended. The default, 8 hours, outlasts an
    /// agent's shift with its breaks, so no one is logged out mid-shift, while a browser left
    /// signed in overnight on a shared desk is not.
    pub session_idle: Duration,
    /// The zone the reports count local days and hours in (China time by default).
    pub report_zone: reports::Zone,
}

impl Default for WebOptions {
    fn default() -> WebOptions {
        WebOptions { session_idle: Duration::from_secs(8 * 3600), report_zone: reports::Zone::china() }
    }
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
    fxo_profiles: Option<PathBuf>,
    media_timeout_seconds: Option<u64>,
    session_idle_minutes: Option<u64>,
    report_time_zone: Option<String>,
    stop_grace_seconds: Option<u64>,
    recording_floor_mb: Option<u64>,
    panel: Option<FilePanel>,
    inbound_queue_seconds: Option<u64>,
    lockout: Option<FileLockout>,
    #[serde(default)]
    trunks: Vec<FileTrunk>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePanel {
    i2c: Option<PathBuf>,
    address: Option<u8>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLockout {
    max_failures: Option<u32>,
    window_seconds: Option<u64>,
    lockout_seconds: Option<u64>,
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
    transport: Option<String>,
    outbound_proxy: Option<SocketAddr>,
    #[serde(default)]
    register: bool,
    register_expires: Option<u64>,
    health_check_seconds: Option<u64>,
    #[serde(default)]
    failover: Vec<String>,
    dial_pattern: Option<String>,
    #[serde(default)]
    dids: Vec<String>,
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
            telephony: TelephonyOptions::default(),
            web: WebOptions::default(),
            stop_grace: Duration::from_secs(30),
            recordings: crate::recordings::RecordingOptions::default(),
            panel: crate::panel::PanelOptions::default(),
            inbound_queue: Duration::from_secs(60),
        }
    }

    /// A box on 127.0.0.1 with ephemeral web, SIP and RTP ports and one trunk named
    /// `carrier` of `channels` lines toward `carrier`: the demo's and the tests' appliance.
    /// Its lines are [`hardware::TelephonyConfig::on_loopback`]'s and its trunk
    /// [`hardware::TrunkConfig::on_loopback`]'s, pointed at `carrier`.
    pub fn on_loopback(data_dir: &Path, carrier: SocketAddr, channels: u32) -> ApplianceConfig {
        let lines = hardware::TelephonyConfig::on_loopback(data_dir);
        ApplianceConfig {
            http_bind: SocketAddr::new(lines.public_ip, 0),
            sip_bind: lines.sip_bind,
            public_ip: lines.public_ip,
            rtp_ports: lines.rtp_ports,
            trunks: vec![hardware::TrunkConfig {
                address: carrier,
                ..hardware::TrunkConfig::on_loopback("carrier", carrier.port(), channels)
            }],
            hold_audio: lines.hold_audio,
            ..ApplianceConfig::with_defaults(data_dir)
        }
    }

    /// The lines' configuration: this box's addresses, trunks and hold audio, recordings under
    /// `<data>/recordings`, and the agents' phones `extensions`.
    pub fn telephony_config(&self, extensions: Vec<hardware::ExtensionConfig>) -> hardware::TelephonyConfig {
        hardware::TelephonyConfig {
            sip_bind: self.sip_bind,
            public_ip: self.public_ip,
            rtp_ports: self.rtp_ports,
            trunks: self.trunks.clone(),
            extensions,
            recordings_dir: self.data_dir.join("recordings"),
            hold_audio: self.hold_audio.clone(),
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
        if let Some(seconds) = file.media_timeout_seconds {
            // Shorter than a few seconds would cut calls at a network hiccup.
            if seconds < 5 {
                return Err(invalid(format!(
                    "media_timeout_seconds = {seconds}: use at least 5 (60 is the default)"
                )));
            }
            config.telephony.media_timeout = Duration::from_secs(seconds);
        }
        if let Some(minutes) = file.session_idle_minutes {
            if minutes == 0 {
                return Err(invalid("session_idle_minutes = 0: use at least 1 (480, 8 hours, is the default)".to_string()));
            }
            config.web.session_idle = Duration::from_secs(minutes * 60);
        }
        if let Some(zone) = file.report_time_zone {
            config.web.report_zone =
                reports::Zone::new(&zone).map_err(|error| invalid(format!("report_time_zone = {zone:?}: {error}")))?;
        }
        if let Some(seconds) = file.inbound_queue_seconds {
            if !(1..=600).contains(&seconds) {
                return Err(invalid(format!("inbound_queue_seconds = {seconds}: use 1 to 600 (60 is the default)")));
            }
            config.inbound_queue = Duration::from_secs(seconds);
        }
        if let Some(seconds) = file.stop_grace_seconds {
            // systemd's TimeoutStopSec (90 s by default) must leave room for the hang-ups.
            if seconds > 75 {
                return Err(invalid(format!(
                    "stop_grace_seconds = {seconds}: use at most 75 (30 is the default), or systemd kills the box first"
                )));
            }
            config.stop_grace = Duration::from_secs(seconds);
        }
        if let Some(megabytes) = file.recording_floor_mb {
            config.recordings.floor_bytes = megabytes.saturating_mul(1 << 20);
        }
        if let Some(panel) = file.panel {
            if panel.address.is_some_and(|address| !(0x3c..=0x3d).contains(&address)) {
                return Err(invalid(format!(
                    "[panel] address = {:#x}: an SSD1306 answers at 0x3c or 0x3d; use the one printed on the board",
                    panel.address.unwrap_or_default()
                )));
            }
            config.panel = crate::panel::PanelOptions {
                i2c: panel.i2c,
                address: panel.address.unwrap_or(0x3c),
                name: panel.name,
            };
        }
        if let Some(lockout) = file.lockout {
            let defaults = LockoutPolicy::default();
            let policy = LockoutPolicy {
                max_failures: lockout.max_failures.unwrap_or(defaults.max_failures),
                window: lockout.window_seconds.map(Duration::from_secs).unwrap_or(defaults.window),
                lockout: lockout.lockout_seconds.map(Duration::from_secs).unwrap_or(defaults.lockout),
            };
            if policy.max_failures == 0 || policy.window.is_zero() {
                return Err(invalid(
                    "[lockout]: max_failures and window_seconds must be at least 1".to_string(),
                ));
            }
            config.telephony.lockout = policy;
        }
        for trunk in file.trunks {
            if config.trunks.iter().any(|t: &hardware::TrunkConfig| t.name == trunk.name) {
                return Err(invalid(format!("trunk \"{}\" is defined twice", trunk.name)));
            }
            let (line, options) = trunk_from(trunk).map_err(invalid)?;
            config.telephony.trunks.insert(line.name.clone(), options);
            config.trunks.push(line);
        }
        if let Some(profiles) = file.fxo_profiles {
            let profiles_path = if profiles.is_absolute() { profiles } else { data_dir.join(profiles) };
            let gateways = hardware::fxo::FxoProfile::load(&profiles_path)
                .map_err(|error| invalid(format!("fxo_profiles: {error}")))?;
            for (line, options) in gateways.iter().flat_map(|gateway| gateway.trunks()) {
                if config.trunks.iter().any(|t| t.name == line.name) {
                    return Err(invalid(format!("FXO line \"{}\" has the name of a trunk; rename one", line.name)));
                }
                config.telephony.trunks.insert(line.name.clone(), options);
                config.trunks.push(line);
            }
        }
        for (name, options) in &config.telephony.trunks {
            for target in &options.failover {
                if target == name {
                    return Err(invalid(format!("trunk \"{name}\": failover names the trunk itself")));
                }
                if !config.trunks.iter().any(|t| &t.name == target) {
                    return Err(invalid(format!(
                        "trunk \"{name}\": failover trunk \"{target}\" is not defined; add a [[trunks]] entry named so"
                    )));
                }
            }
        }
        Ok(config)
    }
}

/// One `[[trunks]]` entry as the lines' trunk and its options, or why it is invalid.
fn trunk_from(trunk: FileTrunk) -> Result<(hardware::TrunkConfig, TrunkOptions), String> {
    if trunk.name.trim().is_empty() {
        return Err(format!("trunk at {}: name must not be empty", trunk.address));
    }
    let channels = trunk.channels.unwrap_or(30);
    if channels == 0 {
        return Err(format!("trunk \"{}\": channels must be at least 1", trunk.name));
    }
    let transport = match trunk.transport.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("udp") => SipTransport::Udp,
        Some("tcp") => SipTransport::Tcp,
        Some(other) => {
            return Err(format!(
                "trunk \"{}\": transport \"{other}\" is not supported; use \"udp\" or \"tcp\"",
                trunk.name
            ));
        }
    };
    let register = if trunk.register {
        let Some(user) = trunk.username.clone() else {
            return Err(format!(
                "trunk \"{}\": register = true needs username (and password) for the account",
                trunk.name
            ));
        };
        Some(TrunkRegistration { user, expires: Duration::from_secs(trunk.register_expires.unwrap_or(3600)) })
    } else if trunk.register_expires.is_some() {
        return Err(format!(
            "trunk \"{}\": register_expires is set but register is not; add register = true",
            trunk.name
        ));
    } else {
        None
    };
    if trunk.health_check_seconds == Some(0) {
        return Err(format!("trunk \"{}\": health_check_seconds must be at least 1", trunk.name));
    }
    if let Some(pattern) = &trunk.dial_pattern
        && !pattern.contains("{number}")
    {
        return Err(format!(
            "trunk \"{}\": dial_pattern \"{pattern}\" must contain {{number}}",
            trunk.name
        ));
    }
    let options = TrunkOptions {
        transport,
        outbound_proxy: trunk.outbound_proxy,
        register,
        health_check: trunk.health_check_seconds.map(Duration::from_secs),
        failover: trunk.failover,
        dial_pattern: trunk.dial_pattern,
        dids: trunk.dids,
    };
    let line = hardware::TrunkConfig {
        domain: trunk.domain.unwrap_or_else(|| trunk.address.ip().to_string()),
        name: trunk.name,
        address: trunk.address,
        username: trunk.username,
        password: trunk.password,
        channels,
    };
    Ok((line, options))
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
            // The profiles file it names exists only on a box; its own test covers it.
            .filter(|line| !line.starts_with("fxo_profiles"))
            .collect::<Vec<_>>()
            .join("\n");
        let config = ApplianceConfig::parse(Path::new("/d"), Path::new("appliance.toml"), &text)
            .expect("the documented example parses");
        assert_eq!(config.rtp_ports, (20000, 20999));
        assert_eq!(config.trunks.len(), 2);
        assert_eq!(config.trunks[0].channels, 30);
        assert_eq!(config.trunks[0].username.as_deref(), Some("site12"));
        let carrier = &config.telephony.trunks["carrier"];
        assert_eq!(carrier.transport, SipTransport::Udp);
        assert_eq!(
            carrier.register,
            Some(TrunkRegistration { user: "site12".into(), expires: Duration::from_secs(600) })
        );
        assert_eq!(carrier.health_check, Some(Duration::from_secs(30)));
        assert_eq!(carrier.failover, vec!["backup".to_string()]);
        let backup = &config.telephony.trunks["backup"];
        assert_eq!(backup.outbound_proxy, Some("198.51.100.1:5060".parse().unwrap()));
        assert_eq!(backup.dial_pattern.as_deref(), Some("0086{number}"));
        assert_eq!(config.telephony.lockout, LockoutPolicy::default());
        assert_eq!(config.telephony.media_timeout, Duration::from_secs(60));
    }

    fn error_of(text: &str) -> String {
        ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), text).expect_err(text).to_string()
    }

    #[test]
    fn trunk_options_are_checked_with_a_fix_in_the_message() {
        let trunk = "[[trunks]]\nname = \"c\"\naddress = \"127.0.0.1:5060\"\n";
        let message = error_of(&format!("{trunk}failover = [\"nowhere\"]"));
        assert!(message.contains("\"nowhere\" is not defined"), "{message}");
        let message = error_of(&format!("{trunk}failover = [\"c\"]"));
        assert!(message.contains("names the trunk itself"), "{message}");
        let message = error_of(&format!("{trunk}transport = \"sctp\""));
        assert!(message.contains("use \"udp\" or \"tcp\""), "{message}");
        let message = error_of(&format!("{trunk}register = true"));
        assert!(message.contains("needs username"), "{message}");
        let message = error_of(&format!("{trunk}register_expires = 60"));
        assert!(message.contains("add register = true"), "{message}");
        let message = error_of(&format!("{trunk}dial_pattern = \"9\""));
        assert!(message.contains("{number}"), "{message}");
        let message = error_of(&format!("{trunk}health_check_seconds = 0"));
        assert!(message.contains("health_check_seconds"), "{message}");
        let message = error_of("media_timeout_seconds = 1");
        assert!(message.contains("media_timeout_seconds") && message.contains("at least 5"), "{message}");
        let message = error_of("session_idle_minutes = 0");
        assert!(message.contains("session_idle_minutes") && message.contains("at least 1"), "{message}");
        let config = ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), "session_idle_minutes = 30").expect("idle");
        assert_eq!(config.web.session_idle, Duration::from_secs(1800));
        let message = error_of("[lockout]\nmax_failures = 0");
        assert!(message.contains("[lockout]"), "{message}");
        let tcp = ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), &format!("{trunk}transport = \"TCP\""))
            .expect("tcp trunk");
        assert_eq!(tcp.telephony.trunks["c"].transport, SipTransport::Tcp);
    }

    #[test]
    fn fxo_gateways_add_one_line_per_port() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("fxo.toml"),
            "[[gateway]]\nname = \"gw1\"\naddress = \"192.168.1.20\"\nports = 4\ndial_pattern = \"{port}#{number}\"\n",
        )
        .expect("write profiles");
        let config = ApplianceConfig::parse(dir.path(), Path::new("a.toml"), "fxo_profiles = \"fxo.toml\"")
            .expect("profiles load");
        let names: Vec<&str> = config.trunks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["gw1/1", "gw1/2", "gw1/3", "gw1/4"]);
        assert!(config.trunks.iter().all(|t| t.channels == 1));
        assert_eq!(config.telephony.trunks["gw1/3"].dial_pattern.as_deref(), Some("3#{number}"));
        let missing = error_of("fxo_profiles = \"/nonexistent/fxo.toml\"");
        assert!(missing.contains("fxo_profiles"), "{missing}");
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

    #[test]
    fn the_reports_zone_is_china_time_unless_set_and_must_be_whole_hours() {
        let default = ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), "").expect("empty");
        assert_eq!(default.web.report_zone.name(), "Asia/Shanghai");
        let berlin = ApplianceConfig::parse(Path::new("/d"), Path::new("a.toml"), "report_time_zone = \"Europe/Berlin\"");
        assert_eq!(berlin.expect("berlin").web.report_zone.name(), "Europe/Berlin");
        let message = error_of("report_time_zone = \"Asia/Kolkata\"");
        assert!(message.contains("report_time_zone") && message.contains("whole hours"), "{message}");
        assert!(error_of("report_time_zone = \"Mars/Base\"").contains("not known"));
    }
}

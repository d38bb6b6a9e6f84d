//! FXO gateways: analog lines behind a SIP gateway, one call per port.
//!
//! An FXO gateway (Grandstream GXW410x, Yeastar TA, Dinstar DAG, Cisco SPA3102 …) is a SIP
//! peer with N analog ports. The box treats every port as its own one-channel trunk named
//! `{gateway}/{port}` (ports count from 1), so the per-trunk channel limit gives one call per
//! port for free and the appliance chooses a line by choosing a trunk. How one port is
//! addressed differs by vendor; a profile says it with two knobs:
//! - `port_sip_base` / `port_sip_step`: gateways that give each port its own SIP account on
//!   its own UDP port (port `n` at `port_sip_base + (n - 1) * port_sip_step`);
//! - `dial_pattern`: the Request-URI user part, with `{port}` and `{number}` filled in, for
//!   gateways that pick the port from a dial-plan prefix on one SIP port.
//!
//! Profiles are TOML; `docs/fxo-profiles.md` documents the format with a worked example, and a
//! test parses that example. [`line_test`] is the technician's check: dial a number on one
//! line and report what happened.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{
    CallId, DialRequest, LineEvent, Outcome, SipTransport, Telephony, TelephonyConfig,
    TelephonyOptions, TrunkConfig, TrunkOptions,
};

/// One FXO gateway, as written in a profile file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxoProfile {
    /// Short name; lines are `{name}/{port}`.
    pub name: String,
    /// Free text for the technician (model, firmware).
    #[serde(default)]
    pub model: String,
    /// The gateway's IP address.
    pub address: IpAddr,
    /// Its SIP port when every line shares one (default 5060).
    #[serde(default = "default_sip_port")]
    pub sip_port: u16,
    /// First line's own SIP port, when each line has its own account.
    #[serde(default)]
    pub port_sip_base: Option<u16>,
    /// Distance between consecutive lines' SIP ports (default 1).
    #[serde(default = "default_step")]
    pub port_sip_step: u16,
    /// Number of analog ports (lines).
    pub ports: u32,
    /// Request-URI user part; `{port}` and `{number}` are replaced (default `{number}`).
    #[serde(default = "default_pattern")]
    pub dial_pattern: String,
    /// Domain for the Request-URI and To (default: the address).
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    pub transport: Option<String>,
}

fn default_sip_port() -> u16 {
    5060
}
fn default_step() -> u16 {
    1
}
fn default_pattern() -> String {
    "{number}".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    gateway: Vec<FxoProfile>,
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file cannot be read.
    #[error("FXO profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not valid TOML or a field is wrong; the message names the line and field.
    #[error("FXO profile {origin}: {source}")]
    Syntax {
        origin: String,
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("FXO gateway {gateway:?}: {problem}")]
    Invalid { gateway: String, problem: String },
}

impl FxoProfile {
    /// Parses every `[[gateway]]` of a profile text; `origin` names it in errors.
    pub fn parse_all(text: &str, origin: &str) -> Result<Vec<FxoProfile>, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|source| ProfileError::Syntax {
            origin: origin.to_string(),
            source,
        })?;
        for gateway in &file.gateway {
            gateway.validate()?;
        }
        Ok(file.gateway)
    }

    /// Reads and parses a profile file.
    pub fn load(path: &Path) -> Result<Vec<FxoProfile>, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        FxoProfile::parse_all(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |problem: String| ProfileError::Invalid {
            gateway: self.name.clone(),
            problem,
        };
        if self.name.is_empty() || self.name.contains('/') {
            return Err(invalid("name must be non-empty and without '/'".into()));
        }
        if !(1..=64).contains(&self.ports) {
            return Err(invalid(format!(
                "ports = {}; a gateway has 1 to 64 ports",
                self.ports
            )));
        }
        if !self.dial_pattern.contains("{number}") {
            return Err(invalid(format!(
                "dial_pattern {:?} must contain {{number}}",
                self.dial_pattern
            )));
        }
        if let Some(base) = self.port_sip_base {
            let last = u32::from(base) + (self.ports - 1) * u32::from(self.port_sip_step);
            if last > u32::from(u16::MAX) || self.port_sip_step == 0 {
                return Err(invalid(format!(
                    "port_sip_base {base} + step {} for {} ports leaves the UDP port range",
                    self.port_sip_step, self.ports
                )));
            }
        }
        match self.transport.as_deref() {
            None | Some("udp") | Some("tcp") => Ok(()),
            Some(other) => Err(invalid(format!(
                "transport {other:?}: use \"udp\" or \"tcp\""
            ))),
        }
    }

    /// The trunk name of one port.
    pub fn line_name(&self, port: u32) -> String {
        format!("{}/{port}", self.name)
    }

    /// Where the SIP for `port` goes.
    pub fn port_address(&self, port: u32) -> SocketAddr {
        let sip_port = match self.port_sip_base {
            Some(base) => {
                let offset = (port.saturating_sub(1)) * u32::from(self.port_sip_step);
                u16::try_from(u32::from(base) + offset).unwrap_or(base)
            }
            None => self.sip_port,
        };
        SocketAddr::new(self.address, sip_port)
    }

    /// The Request-URI user part for dialing `number` on `port`.
    pub fn dial_string(&self, port: u32, number: &str) -> String {
        self.dial_pattern
            .replace("{port}", &port.to_string())
            .replace("{number}", number)
    }

    /// One single-channel trunk per port, plus its options (transport, dial pattern).
    pub fn trunks(&self) -> Vec<(TrunkConfig, TrunkOptions)> {
        (1..=self.ports)
            .map(|port| {
                let address = self.port_address(port);
                let trunk = TrunkConfig {
                    name: self.line_name(port),
                    address,
                    domain: self
                        .domain
                        .clone()
                        .unwrap_or_else(|| address.ip().to_string()),
                    username: self.username.clone(),
                    password: self.password.clone(),
                    channels: 1,
                };
                let options = TrunkOptions {
                    transport: if self.transport.as_deref() == Some("tcp") {
                        SipTransport::Tcp
                    } else {
                        SipTransport::Udp
                    },
                    dial_pattern: Some(self.dial_pattern.replace("{port}", &port.to_string())),
                    ..TrunkOptions::default()
                };
                (trunk, options)
            })
            .collect()
    }

    /// Adds this gateway's lines to a configuration and its options.
    pub fn add_to(&self, config: &mut TelephonyConfig, options: &mut TelephonyOptions) {
        for (trunk, trunk_options) in self.trunks() {
            options.trunks.insert(trunk.name.clone(), trunk_options);
            config.trunks.push(trunk);
        }
    }
}

/// What a line test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTestReport {
    pub line: String,
    pub number: String,
    pub outcome: Outcome,
    /// From the INVITE to the first 180/183.
    pub ringing_after: Option<Duration>,
    /// From the INVITE to the 200 OK.
    pub answered_after: Option<Duration>,
    /// From the INVITE to the end of the test.
    pub total: Duration,
    /// A sentence for the technician, in Simplified Chinese then English.
    pub summary: String,
}

/// Dials `number` on `line` (a trunk name such as `gw1/3`) and reports the outcome; an
/// answered call is held for two seconds and then hung up. Runs its own short-lived lines on
/// an ephemeral SIP port, so it works while the appliance is running. Bounded: 30 s of
/// ringing at most.
pub async fn line_test(config: &TelephonyConfig, line: &str, number: &str) -> LineTestReport {
    line_test_with(
        config,
        &TelephonyOptions::default(),
        line,
        number,
        Duration::from_secs(30),
    )
    .await
}

/// [`line_test`] with trunk options (FXO dial patterns, transport) and a ring timeout.
pub async fn line_test_with(
    config: &TelephonyConfig,
    options: &TelephonyOptions,
    line: &str,
    number: &str,
    ring_timeout: Duration,
) -> LineTestReport {
    let started = Instant::now();
    let report = |outcome: Outcome,
                  ringing_after: Option<Duration>,
                  answered_after: Option<Duration>,
                  note: &str| {
        let summary = line_test_summary(line, number, &outcome, note);
        LineTestReport {
            line: line.to_string(),
            number: number.to_string(),
            outcome,
            ringing_after,
            answered_after,
            total: started.elapsed(),
            summary,
        }
    };
    if !config.trunks.iter().any(|trunk| trunk.name == line) {
        let known: Vec<&str> = config
            .trunks
            .iter()
            .map(|trunk| trunk.name.as_str())
            .collect();
        return report(
            Outcome::Failed { status: 0 },
            None,
            None,
            &format!("no line named {line:?}; configured: {}", known.join(", ")),
        );
    }
    let (test_config, test_options) = line_test_setup(config, options, line);
    let (telephony, mut events) = match Telephony::start_with(test_config, test_options).await {
        Ok(started) => started,
        Err(error) => {
            return report(
                Outcome::Failed { status: 0 },
                None,
                None,
                &error.to_string(),
            );
        }
    };
    let call = CallId(1);
    let dial_started = Instant::now();
    telephony.dial(DialRequest {
        call,
        trunk: line.to_string(),
        number: number.to_string(),
        caller_id: "linetest".to_string(),
        ring_timeout,
    });
    let (mut ringing_after, mut answered_after) = (None, None);
    let deadline = tokio::time::Instant::now() + ring_timeout + Duration::from_secs(40);
    loop {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) | Err(_) => {
                return report(
                    Outcome::Failed { status: 0 },
                    ringing_after,
                    answered_after,
                    "no result in time",
                );
            }
        };
        match event {
            LineEvent::Ringing { .. } => ringing_after = Some(dial_started.elapsed()),
            LineEvent::Answered { .. } => {
                answered_after = Some(dial_started.elapsed());
                let telephony = telephony.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    telephony.hangup(call);
                });
            }
            LineEvent::Ended { outcome, .. } => {
                let outcome = if answered_after.is_some() {
                    Outcome::Answered
                } else {
                    outcome
                };
                return report(outcome, ringing_after, answered_after, "");
            }
            _ => {}
        }
    }
}

/// The technician's sentence for a line test's outcome; `note` says why a failed one failed.
fn line_test_summary(line: &str, number: &str, outcome: &Outcome, note: &str) -> String {
    match outcome {
        Outcome::Answered | Outcome::Abandoned => {
            format!("线路 {line} 正常：{number} 已接通 / line {line} OK: {number} answered")
        }
        Outcome::Busy => {
            format!("线路 {line} 正常：{number} 忙 / line {line} OK: {number} is busy")
        }
        Outcome::NoAnswer => format!(
            "线路 {line} 正常：{number} 振铃无人接 / line {line} OK: {number} rang, no answer"
        ),
        Outcome::Rejected => {
            format!("线路 {line} 正常：{number} 拒接 / line {line} OK: {number} declined")
        }
        Outcome::Failed { status } => format!(
            "线路 {line} 故障（SIP {status}）{note} / line {line} failed (SIP {status}) {note}"
        ),
    }
}

/// The lines a line test runs: the box's configuration on ephemeral ports with only the line
/// under test, without failover, health checks or registration, so it can run beside the
/// appliance's own lines.
fn line_test_setup(
    config: &TelephonyConfig,
    options: &TelephonyOptions,
    line: &str,
) -> (TelephonyConfig, TelephonyOptions) {
    let mut test_config = config.clone();
    test_config.sip_bind = SocketAddr::new(config.sip_bind.ip(), 0);
    test_config.rtp_ports = (0, 0);
    test_config.extensions = Vec::new();
    test_config.recordings_dir = std::env::temp_dir().join("outpost-line-test");
    let mut test_options = TelephonyOptions {
        trunks: HashMap::new(),
        ..options.clone()
    };
    // Only the line under test, without failover, health checks or registration.
    if let Some(line_options) = options.trunks.get(line) {
        test_options.trunks.insert(
            line.to_string(),
            TrunkOptions {
                failover: Vec::new(),
                health_check: None,
                register: None,
                ..line_options.clone()
            },
        );
    }
    test_config.trunks.retain(|trunk| trunk.name == line);
    (test_config, test_options)
}

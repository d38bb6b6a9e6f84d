//! SDP offer/answer for narrow-band telephony audio (RFC 4566 / RFC 3264).
//!
//! Only what a G.711 B2BUA needs: parse `c=`, `m=audio` and `a=rtpmap`, build an offer listing
//! PCMU, PCMA and telephone-event, pick the codec from an answer, and build an answer to an
//! offer. Anything else in the description is tolerated and ignored.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The audio codecs this stack can carry and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for a static payload type.
    pub fn from_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// The RTP payload type this stack uses for RFC 4733 telephone-event in its offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Why an SDP body is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not text.
    #[error("SDP body is not UTF-8 text")]
    NotText,
    /// A line is not `x=value`.
    #[error("SDP line {0:?} is not `x=value`")]
    Line(String),
    /// `c=` is not `IN IP4 addr` / `IN IP6 addr`.
    #[error("SDP connection line {0:?}: expected `c=IN IP4 192.0.2.1`")]
    Connection(String),
    /// `m=` is not `media port proto formats...`.
    #[error("SDP media line {0:?}: expected `m=audio 4000 RTP/AVP 0 8`")]
    Media(String),
    /// There is no audio stream.
    #[error("SDP has no m=audio line")]
    NoAudio,
    /// The audio stream has no connection address.
    #[error("SDP audio stream has no c= address (neither session- nor media-level)")]
    NoConnection,
    /// The peer offers or answers no G.711 codec.
    #[error("SDP audio offers none of PCMU/PCMA (formats {0:?}); answer 488 Not Acceptable Here")]
    NoCommonCodec(Vec<u8>),
}

/// One `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<u8>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub connection: Option<IpAddr>,
    pub media: Vec<MediaDescription>,
}

/// The negotiated audio path toward a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPath {
    /// Where to send RTP.
    pub remote: SocketAddr,
    /// The codec both ends use.
    pub codec: Codec,
    /// The peer's telephone-event payload type, if it does RFC 4733.
    pub telephone_event: Option<u8>,
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut parts = value.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(address)) => {
            // Multicast forms carry a `/ttl` suffix; strip it.
            let address = address.split('/').next().unwrap_or(address);
            address
                .parse()
                .map_err(|_| SdpError::Connection(value.to_string()))
        }
        _ => Err(SdpError::Connection(value.to_string())),
    }
}

impl SessionDescription {
    /// Parses an SDP body.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut session = SessionDescription {
            connection: None,
            media: Vec::new(),
        };
        for raw_line in text.lines() {
            let line = raw_line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(SdpError::Line(line.to_string()));
            };
            match (kind, session.media.last_mut()) {
                ("c", None) => session.connection = Some(parse_connection(value)?),
                ("c", Some(media)) => media.connection = Some(parse_connection(value)?),
                ("m", _) => {
                    let mut parts = value.split_whitespace();
                    let err = || SdpError::Media(value.to_string());
                    let media = parts.next().ok_or_else(err)?.to_string();
                    let port_text = parts.next().ok_or_else(err)?;
                    // `port/count` is allowed; only the first port matters for one stream.
                    let port = port_text
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .parse()
                        .map_err(|_| err())?;
                    let proto = parts.next().ok_or_else(err)?.to_string();
                    // Non-numeric formats belong to non-RTP protocols; skip them instead of failing.
                    let formats = parts.filter_map(|format| format.parse().ok()).collect();
                    session.media.push(MediaDescription {
                        media,
                        port,
                        proto,
                        formats,
                        connection: None,
                        rtpmaps: Vec::new(),
                    });
                }
                ("a", Some(media)) => {
                    if let Some(map) = value.strip_prefix("rtpmap:")
                        && let Some(rtpmap) = parse_rtpmap(map)
                    {
                        media.rtpmaps.push(rtpmap);
                    }
                }
                _ => {}
            }
        }
        Ok(session)
    }

    /// The first audio stream with a usable port.
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media
            .iter()
            .find(|media| media.media == "audio" && media.port != 0)
    }

    /// The audio path an answer (or offer) describes: where to send and in which codec,
    /// choosing the first of the peer's formats that this stack supports.
    pub fn audio_path(&self, acceptable: &[Codec]) -> Result<AudioPath, SdpError> {
        if !self.media.iter().any(|media| media.media == "audio") {
            return Err(SdpError::NoAudio);
        }
        let audio = self.audio().ok_or(SdpError::NoAudio)?;
        let ip = audio
            .connection
            .or(self.connection)
            .ok_or(SdpError::NoConnection)?;
        let mut chosen = None;
        for format in &audio.formats {
            if let Some(codec) = audio.codec_for(*format)
                && acceptable.contains(&codec)
            {
                chosen = Some(codec);
                break;
            }
        }
        let codec = chosen.ok_or_else(|| SdpError::NoCommonCodec(audio.formats.clone()))?;
        let telephone_event = audio
            .rtpmaps
            .iter()
            .find(|map| {
                map.encoding.eq_ignore_ascii_case("telephone-event")
                    && audio.formats.contains(&map.payload_type)
            })
            .map(|map| map.payload_type);
        Ok(AudioPath {
            remote: SocketAddr::new(ip, audio.port),
            codec,
            telephone_event,
        })
    }
}

impl MediaDescription {
    /// What codec a payload type means in this stream (rtpmap wins over the static table).
    pub fn codec_for(&self, payload_type: u8) -> Option<Codec> {
        if let Some(map) = self
            .rtpmaps
            .iter()
            .find(|map| map.payload_type == payload_type)
        {
            if map.clock_rate != 8000 {
                return None;
            }
            return match map.encoding.to_ascii_uppercase().as_str() {
                "PCMU" => Some(Codec::Pcmu),
                "PCMA" => Some(Codec::Pcma),
                _ => None,
            };
        }
        Codec::from_payload_type(payload_type)
    }
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (payload_type, encoding) = value.split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next()?.to_string();
    let clock_rate = parts.next()?.parse().ok()?;
    Some(RtpMap {
        payload_type: payload_type.trim().parse().ok()?,
        encoding: name,
        clock_rate,
    })
}

/// Builds an audio session description (used for both offers and answers).
///
/// `codecs` are listed in preference order; `telephone_event` adds RFC 4733 events.
pub fn build_audio(
    ip: IpAddr,
    rtp_port: u16,
    codecs: &[Codec],
    telephone_event: Option<u8>,
    session_id: u64,
) -> Vec<u8> {
    let ip_kind = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut formats: Vec<String> = codecs
        .iter()
        .map(|codec| codec.payload_type().to_string())
        .collect();
    if let Some(payload_type) = telephone_event {
        formats.push(payload_type.to_string());
    }
    let mut text = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        text,
        "v=0\r\no=outpost {session_id} {session_id} IN {ip_kind} {ip}\r\ns=outpost\r\n"
    );
    let _ = write!(text, "c=IN {ip_kind} {ip}\r\nt=0 0\r\n");
    let _ = write!(text, "m=audio {rtp_port} RTP/AVP {}\r\n", formats.join(" "));
    for codec in codecs {
        let _ = write!(
            text,
            "a=rtpmap:{} {}/8000\r\n",
            codec.payload_type(),
            codec.encoding_name()
        );
    }
    if let Some(payload_type) = telephone_event {
        let _ = write!(
            text,
            "a=rtpmap:{payload_type} telephone-event/8000\r\na=fmtp:{payload_type} 0-16\r\n"
        );
    }
    let _ = write!(text, "a=ptime:20\r\na=sendrecv\r\n");
    text.into_bytes()
}

/// The standard offer: PCMU, PCMA and telephone-event 101.
pub fn build_offer(ip: IpAddr, rtp_port: u16, session_id: u64) -> Vec<u8> {
    build_audio(
        ip,
        rtp_port,
        &[Codec::Pcmu, Codec::Pcma],
        Some(TELEPHONE_EVENT_PT),
        session_id,
    )
}

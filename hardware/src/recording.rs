//! Two-channel call recording: customer on the left, agent on the right, 8 kHz 16-bit WAV.
//!
//! Packets are decoded from G.711 and placed by RTP timestamp, so lost or late packets leave
//! silence rather than shifting the rest of the call; each direction is anchored to the wall
//! clock at its first packet, which aligns the two channels. A new SSRC or a timestamp jump
//! of more than two seconds from the wall clock re-anchors the stream (a peer restarting its
//! media). Samples are kept in memory and written when the call ends, then hashed.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use crate::Recording;
use crate::g711;

/// Samples per second of the recording.
pub(crate) const SAMPLE_RATE: u32 = 8000;
/// Recordings stop growing after four hours; a longer call is a stuck leg, not a conversation.
const MAX_SAMPLES: i64 = SAMPLE_RATE as i64 * 60 * 60 * 4;
/// How far a stream may drift from the wall clock before it is re-anchored.
const REANCHOR_SAMPLES: i64 = 2 * SAMPLE_RATE as i64;

/// Which side of the call a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Customer = 0,
    Agent = 1,
}

#[derive(Default)]
struct Track {
    anchor: Option<(u32, u32, i64)>,
    samples: Vec<i16>,
}

/// An in-progress recording.
pub(crate) struct Recorder {
    started: Instant,
    tracks: [Track; 2],
}

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("writing recording {path}: {source}")]
    Wav { path: PathBuf, source: hound::Error },
    #[error("reading back recording {path} to hash it: {source}")]
    Hash {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Recorder {
    pub(crate) fn new(now: Instant) -> Recorder {
        Recorder {
            started: now,
            tracks: [Track::default(), Track::default()],
        }
    }

    /// Adds one RTP packet's payload; non-G.711 payloads (telephone-event, comfort noise) are skipped.
    pub(crate) fn push(
        &mut self,
        channel: Channel,
        now: Instant,
        ssrc: u32,
        timestamp: u32,
        payload_type: u8,
        payload: &[u8],
    ) {
        let decode: fn(u8) -> i16 = match payload_type {
            0 => g711::ulaw_to_linear,
            8 => g711::alaw_to_linear,
            _ => return,
        };
        let wall_position =
            (now.duration_since(self.started).as_millis() as i64) * i64::from(SAMPLE_RATE) / 1000;
        let track = &mut self.tracks[channel as usize];
        let mut position = match track.anchor {
            Some((anchor_ssrc, anchor_timestamp, anchor_position)) if anchor_ssrc == ssrc => {
                anchor_position + i64::from(timestamp.wrapping_sub(anchor_timestamp) as i32)
            }
            _ => -1,
        };
        if position < 0 || (position - wall_position).abs() > REANCHOR_SAMPLES {
            track.anchor = Some((ssrc, timestamp, wall_position));
            position = wall_position;
        }
        let end = position + payload.len() as i64;
        if end > MAX_SAMPLES {
            return;
        }
        // Both bounds were checked above, so these conversions cannot truncate.
        let (start, end) = (position as usize, end as usize);
        if track.samples.len() < end {
            track.samples.resize(end, 0);
        }
        for (slot, byte) in track.samples[start..end].iter_mut().zip(payload) {
            *slot = decode(*byte);
        }
    }

    /// Writes the WAV file and returns its description (blocking I/O).
    pub(crate) fn finish(self, path: &Path) -> Result<Recording, RecordError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav_error = |source| RecordError::Wav {
            path: path.to_path_buf(),
            source,
        };
        let mut writer = hound::WavWriter::create(path, spec).map_err(wav_error)?;
        let n_frames = self.tracks[0]
            .samples
            .len()
            .max(self.tracks[1].samples.len());
        for frame_idx in 0..n_frames {
            for track in &self.tracks {
                writer
                    .write_sample(track.samples.get(frame_idx).copied().unwrap_or(0))
                    .map_err(wav_error)?;
            }
        }
        writer.finalize().map_err(wav_error)?;

        let hash_error = |source| RecordError::Hash {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(hash_error)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut n_bytes = 0u64;
        loop {
            let n_read = file.read(&mut buffer).map_err(hash_error)?;
            if n_read == 0 {
                break;
            }
            n_bytes += n_read as u64;
            hasher.update(&buffer[..n_read]);
        }
        Ok(Recording {
            path: path.to_path_buf(),
            bytes: n_bytes,
            duration_ms: n_frames as u64 * 1000 / u64::from(SAMPLE_RATE),
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn places_packets_by_timestamp_and_fills_gaps_with_silence() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        let loud = [0x00u8; 160]; // µ-law 0x00 is the most negative sample
        recorder.push(Channel::Customer, start, 1, 1000, 0, &loud);
        // Packet 2 lost; packet 3 arrives 40 ms later with timestamp +320.
        recorder.push(
            Channel::Customer,
            start + Duration::from_millis(40),
            1,
            1320,
            0,
            &loud,
        );
        // The agent starts 100 ms into the call.
        recorder.push(
            Channel::Agent,
            start + Duration::from_millis(100),
            9,
            77,
            8,
            &[0xAA; 160],
        );
        let customer = &recorder.tracks[0].samples;
        assert_eq!(customer.len(), 480);
        assert!(customer[..160].iter().all(|sample| *sample == -32124));
        assert!(
            customer[160..320].iter().all(|sample| *sample == 0),
            "the lost packet is silence"
        );
        let agent = &recorder.tracks[1].samples;
        assert_eq!(agent.len(), 800 + 160);
        assert!(agent[..800].iter().all(|sample| *sample == 0));

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("call.wav");
        let recording = recorder.finish(&path).expect("written");
        assert_eq!(recording.duration_ms, 120);
        assert_eq!(
            recording.bytes,
            std::fs::metadata(&path).expect("file").len()
        );
        let reader = hound::WavReader::open(&path).expect("valid wav");
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.len(), 960 * 2);
    }

    #[test]
    fn a_timestamp_jump_re_anchors_to_the_wall_clock() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        recorder.push(Channel::Agent, start, 5, 0, 0, &[0u8; 160]);
        recorder.push(
            Channel::Agent,
            start + Duration::from_millis(20),
            5,
            4_000_000,
            0,
            &[0u8; 160],
        );
        assert_eq!(recorder.tracks[1].samples.len(), 320);
    }
}

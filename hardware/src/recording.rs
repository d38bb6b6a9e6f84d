//! Two-channel call recording: customer on the left, agent on the right, 8 kHz A-law WAV
//! (`WAVE_FORMAT_ALAW`, one byte per sample: half the size of 16-bit PCM, and the law the
//! carriers here speak), streamed to disk while the call runs.
//!
//! Packets are decoded from G.711 (a 256-entry table per law: one lookup per sample) and
//! placed by RTP timestamp, so lost or late packets leave silence rather than shifting the
//! rest of the call; each direction is anchored to the wall clock at its first packet, which
//! aligns the two channels. Samples are kept linear until written, so a µ-law leg and an
//! A-law leg mix into one file; an A-law leg comes out byte for byte as it arrived. A new SSRC or a timestamp jump of more than two seconds from the
//! wall clock re-anchors the stream (a peer restarting its media).
//!
//! Memory stays flat whatever the call length: samples wait in a one-second window per
//! channel (so late packets still land in place), and everything older is written to the
//! file through a 64 KiB buffer. [`Recorder::finish`] flushes the rest, fills in the RIFF
//! sizes and hashes the file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
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
/// How long samples wait for late packets before they are written.
const WINDOW_SAMPLES: i64 = SAMPLE_RATE as i64;
/// Size of the WAV header written before the samples: RIFF, an 18-byte `fmt ` chunk, the
/// `fact` chunk a non-PCM format carries, and the `data` chunk's own header.
pub(crate) const HEADER_BYTES: u32 = 58;
/// `WAVE_FORMAT_ALAW`.
const FORMAT_ALAW: u16 = 6;
/// Bytes per frame: one A-law byte per channel.
const FRAME_BYTES: u32 = 2;

static ULAW: LazyLock<[i16; 256]> =
    LazyLock::new(|| std::array::from_fn(|idx| g711::ulaw_to_linear(idx as u8)));
static ALAW: LazyLock<[i16; 256]> =
    LazyLock::new(|| std::array::from_fn(|idx| g711::alaw_to_linear(idx as u8)));

/// Which side of the call a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Customer = 0,
    Agent = 1,
}

#[derive(Default)]
struct Track {
    anchor: Option<(u32, u32, i64)>,
    /// Samples from the recorder's `written` position on.
    pending: VecDeque<i16>,
}

/// An in-progress recording, written as it goes.
pub(crate) struct Recorder {
    started: Instant,
    path: PathBuf,
    file: BufWriter<File>,
    /// Frames already written to the file.
    written: i64,
    tracks: [Track; 2],
}

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// Creating, writing or finalising the WAV file failed (disk full, permissions).
    #[error("writing recording {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The finished file could not be read back for its hash.
    #[error("reading back recording {path} to hash it: {source}")]
    Hash {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn wav_header(n_frames: u32) -> [u8; HEADER_BYTES as usize] {
    let data_bytes = n_frames.saturating_mul(FRAME_BYTES);
    let mut header = [0u8; HEADER_BYTES as usize];
    header[0..4].copy_from_slice(b"RIFF");
    header[4..8].copy_from_slice(&(data_bytes.saturating_add(HEADER_BYTES - 8)).to_le_bytes());
    header[8..12].copy_from_slice(b"WAVE");
    header[12..16].copy_from_slice(b"fmt ");
    header[16..20].copy_from_slice(&18u32.to_le_bytes());
    header[20..22].copy_from_slice(&FORMAT_ALAW.to_le_bytes());
    header[22..24].copy_from_slice(&2u16.to_le_bytes()); // channels
    header[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    header[28..32].copy_from_slice(&(SAMPLE_RATE * FRAME_BYTES).to_le_bytes()); // byte rate
    header[32..34].copy_from_slice(&(FRAME_BYTES as u16).to_le_bytes()); // block align
    header[34..36].copy_from_slice(&8u16.to_le_bytes()); // bits per sample
    header[36..38].copy_from_slice(&0u16.to_le_bytes()); // no format extension
    header[38..42].copy_from_slice(b"fact");
    header[42..46].copy_from_slice(&4u32.to_le_bytes());
    header[46..50].copy_from_slice(&n_frames.to_le_bytes());
    header[50..54].copy_from_slice(b"data");
    header[54..58].copy_from_slice(&data_bytes.to_le_bytes());
    header
}

impl Recorder {
    /// Creates the file at `path` (a placeholder header first) and starts the clock.
    pub(crate) fn create(path: &Path, now: Instant) -> Result<Recorder, RecordError> {
        let write_error = |source| RecordError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut file =
            BufWriter::with_capacity(64 * 1024, File::create(path).map_err(write_error)?);
        file.write_all(&wav_header(0)).map_err(write_error)?;
        Ok(Recorder {
            started: now,
            path: path.to_path_buf(),
            file,
            written: 0,
            tracks: [Track::default(), Track::default()],
        })
    }

    /// Adds one RTP packet's payload; non-G.711 payloads (telephone-event, comfort noise) are
    /// skipped. A write error is returned so the caller can give up on the recording.
    pub(crate) fn push(
        &mut self,
        channel: Channel,
        now: Instant,
        ssrc: u32,
        timestamp: u32,
        payload_type: u8,
        payload: &[u8],
    ) -> Result<(), RecordError> {
        let table: &[i16; 256] = match payload_type {
            0 => &ULAW,
            8 => &ALAW,
            _ => return Ok(()),
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
            return Ok(());
        }
        // Samples before what is already on disk arrived too late to place; drop that part.
        let skip = (self.written - position).max(0);
        if skip >= payload.len() as i64 {
            return Ok(());
        }
        let start = (position + skip - self.written) as usize;
        let end = (end - self.written) as usize;
        if track.pending.len() < end {
            track.pending.resize(end, 0);
        }
        for (slot, byte) in track
            .pending
            .range_mut(start..end)
            .zip(&payload[skip as usize..])
        {
            *slot = table[usize::from(*byte)];
        }
        let newest = self.written
            + self.tracks[0]
                .pending
                .len()
                .max(self.tracks[1].pending.len()) as i64;
        self.write_until(newest - WINDOW_SAMPLES)
    }

    /// Writes every frame before `position` to the file.
    fn write_until(&mut self, position: i64) -> Result<(), RecordError> {
        if position <= self.written {
            return Ok(());
        }
        let n_frames = (position - self.written) as usize;
        let mut bytes = Vec::with_capacity(n_frames * FRAME_BYTES as usize);
        for _ in 0..n_frames {
            for track in &mut self.tracks {
                let sample = track.pending.pop_front().unwrap_or(0);
                bytes.push(g711::linear_to_alaw(sample));
            }
        }
        self.written = position;
        self.file
            .write_all(&bytes)
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes what is left, fills in the header and returns the description (blocking I/O).
    pub(crate) fn finish(mut self) -> Result<Recording, RecordError> {
        let end = self.written
            + self.tracks[0]
                .pending
                .len()
                .max(self.tracks[1].pending.len()) as i64;
        self.write_until(end)?;
        let path = self.path.clone();
        let write_error = |source| RecordError::Write {
            path: path.clone(),
            source,
        };
        let n_frames = u32::try_from(self.written).unwrap_or(u32::MAX);
        let mut file = self
            .file
            .into_inner()
            .map_err(|error| write_error(error.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(write_error)?;
        file.write_all(&wav_header(n_frames)).map_err(write_error)?;
        file.sync_data().map_err(write_error)?;
        drop(file);

        let hash_error = |source| RecordError::Hash {
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(hash_error)?;
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
            path: path.clone(),
            bytes: n_bytes,
            duration_ms: u64::from(n_frames) * 1000 / u64::from(SAMPLE_RATE),
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Gives the recording up and removes its file (the call was never bridged after all).
    pub(crate) fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The frames of a recording, decoded, after checking its header says what it holds.
    fn samples(path: &Path) -> Vec<(i16, i16)> {
        let bytes = std::fs::read(path).expect("recording");
        let header = &bytes[..HEADER_BYTES as usize];
        let field = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        assert_eq!(&header[..4], b"RIFF");
        assert_eq!(field(4) as usize, bytes.len() - 8, "RIFF size");
        assert_eq!(u16::from_le_bytes([header[20], header[21]]), FORMAT_ALAW);
        assert_eq!(u16::from_le_bytes([header[22], header[23]]), 2, "channels");
        assert_eq!(field(24), SAMPLE_RATE);
        assert_eq!(&header[50..54], b"data");
        let data = &bytes[HEADER_BYTES as usize..];
        assert_eq!(field(54) as usize, data.len(), "data size");
        assert_eq!(field(46) as usize, data.len() / 2, "fact: frames");
        data.chunks_exact(2)
            .map(|pair| (g711::alaw_to_linear(pair[0]), g711::alaw_to_linear(pair[1])))
            .collect()
    }

    #[test]
    fn places_packets_by_timestamp_and_fills_gaps_with_silence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("call.wav");
        let start = Instant::now();
        let mut recorder = Recorder::create(&path, start).expect("created");
        let loud = [0x00u8; 160]; // µ-law 0x00 is the most negative sample
        recorder
            .push(Channel::Customer, start, 1, 1000, 0, &loud)
            .expect("push");
        // Packet 2 lost; packet 3 arrives 40 ms later with timestamp +320.
        recorder
            .push(
                Channel::Customer,
                start + Duration::from_millis(40),
                1,
                1320,
                0,
                &loud,
            )
            .expect("push");
        // The agent starts 100 ms into the call.
        recorder
            .push(
                Channel::Agent,
                start + Duration::from_millis(100),
                9,
                77,
                8,
                &[0xAA; 160],
            )
            .expect("push");
        let recording = recorder.finish().expect("written");
        assert_eq!(recording.duration_ms, 120);
        assert_eq!(
            recording.bytes,
            std::fs::metadata(&path).expect("file").len()
        );
        let frames = samples(&path);
        assert_eq!(frames.len(), 960);
        // µ-law's loudest sample is stored as A-law's loudest.
        let loudest = g711::alaw_to_linear(g711::linear_to_alaw(-32124));
        // A-law has no zero: silence is its smallest step.
        let silence = g711::alaw_to_linear(g711::linear_to_alaw(0));
        assert!(frames[..160].iter().all(|(customer, _)| *customer == loudest));
        assert!(
            frames[160..320].iter().all(|(customer, _)| *customer == silence),
            "the lost packet is silence"
        );
        assert!(frames[320..480].iter().all(|(customer, _)| *customer == loudest));
        assert!(frames[..800].iter().all(|(_, agent)| *agent == silence));
        assert!(
            frames[800..]
                .iter()
                .all(|(_, agent)| *agent == g711::alaw_to_linear(0xAA))
        );
    }

    #[test]
    fn a_long_call_is_streamed_not_held_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("long.wav");
        let start = Instant::now();
        let mut recorder = Recorder::create(&path, start).expect("created");
        // One minute of 20 ms packets on both channels.
        for idx in 0..3000u32 {
            let now = start + Duration::from_millis(u64::from(idx) * 20);
            recorder
                .push(Channel::Customer, now, 1, idx * 160, 0, &[0x80; 160])
                .expect("push");
            recorder
                .push(Channel::Agent, now, 2, 7 + idx * 160, 8, &[0x55; 160])
                .expect("push");
            assert!(
                recorder.tracks[0].pending.len() as i64 <= WINDOW_SAMPLES + 160,
                "at most the late-packet window is in memory"
            );
        }
        let recording = recorder.finish().expect("written");
        assert_eq!(recording.duration_ms, 60_000);
        assert_eq!(recording.bytes, 58 + 3000 * 160 * 2, "one byte per sample");
        assert_eq!(samples(&path).len(), 3000 * 160);
    }

    #[test]
    fn a_timestamp_jump_re_anchors_to_the_wall_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jump.wav");
        let start = Instant::now();
        let mut recorder = Recorder::create(&path, start).expect("created");
        recorder
            .push(Channel::Agent, start, 5, 0, 0, &[0u8; 160])
            .expect("push");
        recorder
            .push(
                Channel::Agent,
                start + Duration::from_millis(20),
                5,
                4_000_000,
                0,
                &[0u8; 160],
            )
            .expect("push");
        assert_eq!(recorder.finish().expect("written").duration_ms, 40);
    }

    #[test]
    fn tables_match_the_formulas() {
        for byte in 0..=255u8 {
            assert_eq!(ULAW[usize::from(byte)], g711::ulaw_to_linear(byte));
            assert_eq!(ALAW[usize::from(byte)], g711::alaw_to_linear(byte));
        }
    }
}

//! Hold audio: what an answered customer hears while waiting for an agent.
//!
//! The configured file is a G.711 µ-law (or A-law, or 16-bit PCM) WAV at 8 kHz mono; it is
//! decoded once at start into linear samples and re-encoded per call in the customer's codec.
//! Without a usable file the customer hears a soft 425 Hz tone, one second on, two off, so a
//! waiting line never sounds dead.

use std::path::Path;
use std::sync::Arc;

use tracing::warn;

use crate::g711;

/// Hold audio decoded once, shared by every call that plays it: a task's hold music (等待音乐)
/// from the voice library, given to [`crate::Telephony::hold_with`].
#[derive(Debug, Clone)]
pub struct HoldAudio(pub(crate) Arc<Vec<i16>>);

/// Why a file cannot be hold audio; the message says what to convert it to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HoldAudioError(String);

impl HoldAudio {
    /// Decodes a WAV file's bytes: G.711 µ-law (7) or A-law (6) at 8 bits, or 16-bit PCM (1),
    /// mono 8000 Hz, at least 20 ms long.
    pub fn from_wav(bytes: &[u8]) -> Result<HoldAudio, HoldAudioError> {
        let samples = decode_wav(bytes).map_err(HoldAudioError)?;
        if samples.len() < 160 {
            return Err(HoldAudioError("the audio is shorter than 20 ms".into()));
        }
        Ok(HoldAudio(Arc::new(samples)))
    }

    /// Reads and decodes a WAV file; the error names the file.
    pub fn load(path: &Path) -> Result<HoldAudio, HoldAudioError> {
        let bytes = std::fs::read(path).map_err(|error| HoldAudioError(format!("{}: {error}", path.display())))?;
        HoldAudio::from_wav(&bytes).map_err(|HoldAudioError(reason)| HoldAudioError(format!("{}: {reason}", path.display())))
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.0.len() as f64 / 8000.0
    }
}

/// A WAV file of G.711 µ-law samples (format 7, 8 kHz mono): the format the voice library
/// keeps and the box plays without converting. `encoded` is µ-law already (see
/// [`crate::g711::linear_to_ulaw`]).
pub fn ulaw_wav(encoded: &[u8]) -> Vec<u8> {
    let data_len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
    let mut wav = Vec::with_capacity(46 + encoded.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(4 + 26 + 8 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&18u32.to_le_bytes());
    for value in [7u16, 1] {
        wav.extend_from_slice(&value.to_le_bytes());
    }
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    for value in [1u16, 8, 0] {
        wav.extend_from_slice(&value.to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(&encoded[..data_len as usize]);
    wav
}

/// Decoded hold audio, at least one packet long.
pub(crate) fn load(path: Option<&Path>) -> Vec<i16> {
    if let Some(path) = path {
        match std::fs::read(path) {
            Ok(bytes) => match decode_wav(&bytes) {
                Ok(samples) if samples.len() >= 160 => return samples,
                Ok(_) => {
                    warn!(path = %path.display(), "hold audio is shorter than 20 ms; using the built-in tone")
                }
                Err(reason) => {
                    warn!(path = %path.display(), %reason, "hold audio unusable; using the built-in tone")
                }
            },
            Err(error) => {
                warn!(path = %path.display(), %error, "cannot read hold audio; using the built-in tone")
            }
        }
    }
    tone()
}

fn tone() -> Vec<i16> {
    let mut samples = vec![0i16; 3 * 8000];
    for (idx, sample) in samples.iter_mut().take(8000).enumerate() {
        let phase = idx as f64 * 425.0 * std::f64::consts::TAU / 8000.0;
        *sample = (phase.sin() * 3000.0) as i16;
    }
    samples
}

/// Reads the RIFF chunks by hand: hound cannot read the G.711 WAV formats (6 and 7).
fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut offset = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while offset + 8 <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = u32::from_le_bytes([
            bytes[offset + 4],
            bytes[offset + 5],
            bytes[offset + 6],
            bytes[offset + 7],
        ]) as usize;
        let body_start = offset + 8;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        if id == b"fmt " && body.len() >= 16 {
            format = Some((
                u16::from_le_bytes([body[0], body[1]]),
                u16::from_le_bytes([body[2], body[3]]),
                u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
                u16::from_le_bytes([body[14], body[15]]),
            ));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.ok_or("data chunk before fmt chunk")?;
            if channels != 1 || rate != 8000 {
                return Err(format!(
                    "{channels} channel(s) at {rate} Hz; hold audio must be mono 8000 Hz"
                ));
            }
            return match (tag, bits) {
                (7, 8) => Ok(body
                    .iter()
                    .map(|byte| g711::ulaw_to_linear(*byte))
                    .collect()),
                (6, 8) => Ok(body
                    .iter()
                    .map(|byte| g711::alaw_to_linear(*byte))
                    .collect()),
                (1, 16) => Ok(body
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                    .collect()),
                _ => Err(format!(
                    "WAV format {tag} with {bits} bits; use G.711 µ-law (7), A-law (6) or 16-bit PCM (1)"
                )),
            };
        }
        // Chunks are padded to even sizes.
        offset = body_start.saturating_add(size).saturating_add(size % 2);
    }
    Err("no data chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_ulaw_wav_and_falls_back_to_the_tone() {
        let wav = ulaw_wav(&[0x00u8; 320]);
        let samples = decode_wav(&wav).expect("µ-law wav");
        assert_eq!(samples.len(), 320);
        assert!(samples.iter().all(|sample| *sample == -32124));

        assert!(decode_wav(b"RIFF....WAVEjunk").is_err());
        let audio = HoldAudio::from_wav(&wav).expect("µ-law hold audio");
        assert!((audio.seconds() - 0.04).abs() < 1e-9);
        let short = HoldAudio::from_wav(&wav[..wav.len() - 200]).expect_err("too short");
        assert!(short.to_string().contains("20 ms"), "{short}");
        let missing = HoldAudio::load(Path::new("/nonexistent/hold.wav")).expect_err("no file");
        assert!(missing.to_string().contains("/nonexistent/hold.wav"), "{missing}");
        let fallback = load(Some(Path::new("/nonexistent/hold.wav")));
        assert_eq!(fallback.len(), 24000);
        assert!(fallback.iter().any(|sample| *sample > 1000));
    }
}

//! G.711 µ-law and A-law conversion to and from 16-bit linear PCM (ITU-T G.711).
//!
//! Used to decode both call directions for recording and to encode hold audio. The relay
//! forwards payloads untouched when both legs speak the same law, and re-encodes them with
//! a 256-entry table ([`ulaw_to_alaw`], [`alaw_to_ulaw`]) when they do not: an agent phone
//! bridged during early media may have chosen µ-law before the carrier answered in A-law.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Decodes one µ-law byte.
pub fn ulaw_to_linear(encoded: u8) -> i16 {
    let inverted = !encoded;
    let mut magnitude = ((i32::from(inverted & 0x0F)) << 3) + BIAS;
    magnitude <<= (inverted & 0x70) >> 4;
    let sample = if inverted & 0x80 != 0 {
        BIAS - magnitude
    } else {
        magnitude - BIAS
    };
    // The largest magnitude is (15 << 3 + 132) << 7 - 132 = 32124, inside i16.
    sample as i16
}

/// Encodes one sample as µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && value & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (value >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one A-law byte.
pub fn alaw_to_linear(encoded: u8) -> i16 {
    let value = encoded ^ 0x55;
    let mut magnitude = i32::from(value & 0x0F) << 4;
    let segment = (value & 0x70) >> 4;
    match segment {
        0 => magnitude += 8,
        1 => magnitude += 0x108,
        _ => {
            magnitude += 0x108;
            magnitude <<= segment - 1;
        }
    }
    // The largest magnitude is (0xF0 + 0x108) << 6 = 32256, inside i16.
    (if value & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }) as i16
}

/// Encodes one sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let segment = SEGMENT_ENDS
        .iter()
        .position(|end| value <= *end)
        .unwrap_or(8);
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let mut encoded = (segment as i32) << 4;
    encoded |= if segment < 2 {
        (value >> 1) & 0x0F
    } else {
        (value >> segment) & 0x0F
    };
    (encoded as u8) ^ mask
}

static ULAW_TO_ALAW: std::sync::LazyLock<[u8; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|byte| linear_to_alaw(ulaw_to_linear(byte as u8))));
static ALAW_TO_ULAW: std::sync::LazyLock<[u8; 256]> =
    std::sync::LazyLock::new(|| std::array::from_fn(|byte| linear_to_ulaw(alaw_to_linear(byte as u8))));

/// Re-encodes µ-law bytes as A-law, in place.
pub fn ulaw_to_alaw(payload: &mut [u8]) {
    let table = &*ULAW_TO_ALAW;
    for byte in payload {
        *byte = table[usize::from(*byte)];
    }
}

/// Re-encodes A-law bytes as µ-law, in place.
pub fn alaw_to_ulaw(payload: &mut [u8]) {
    let table = &*ALAW_TO_ULAW;
    for byte in payload {
        *byte = table[usize::from(*byte)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_extremes_decode_as_specified() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
    }

    #[test]
    fn encode_then_decode_stays_within_quantisation_error() {
        for sample in (-32000i32..32000).step_by(97) {
            let sample = sample as i16;
            let tolerance = (i32::from(sample).abs() / 16).max(16);
            let via_ulaw = i32::from(ulaw_to_linear(linear_to_ulaw(sample)));
            let via_alaw = i32::from(alaw_to_linear(linear_to_alaw(sample)));
            assert!(
                (via_ulaw - i32::from(sample)).abs() <= tolerance,
                "µ-law {sample} -> {via_ulaw}"
            );
            assert!(
                (via_alaw - i32::from(sample)).abs() <= tolerance,
                "A-law {sample} -> {via_alaw}"
            );
        }
        for byte in 0..=255u8 {
            assert!(
                linear_to_ulaw(ulaw_to_linear(byte)) == byte || ulaw_to_linear(byte) == 0,
                "µ-law {byte:#x}"
            );
            assert_eq!(linear_to_alaw(alaw_to_linear(byte)), byte);
        }
    }

    #[test]
    fn transcoding_between_laws_keeps_the_sample() {
        for byte in 0..=255u8 {
            let mut payload = [byte];
            ulaw_to_alaw(&mut payload);
            let (before, after) = (i32::from(ulaw_to_linear(byte)), i32::from(alaw_to_linear(payload[0])));
            let tolerance = (before.abs() / 16).max(16);
            assert!((before - after).abs() <= tolerance, "µ {byte:#x}: {before} -> A {after}");
            let mut payload = [byte];
            alaw_to_ulaw(&mut payload);
            let (before, after) = (i32::from(alaw_to_linear(byte)), i32::from(ulaw_to_linear(payload[0])));
            let tolerance = (before.abs() / 16).max(16);
            assert!((before - after).abs() <= tolerance, "A {byte:#x}: {before} -> µ {after}");
        }
    }
}

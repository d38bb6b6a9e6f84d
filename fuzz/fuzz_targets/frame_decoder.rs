//! Fuzz target: the sync link's frame decoder on arbitrary bytes split arbitrarily.
//!
//! The first byte of the input picks the split size, the rest is what a peer sent. The
//! decoder must never panic, must not hand back a frame that re-encodes differently, and
//! after an oversized prefix must stay poisoned (the stream has lost its framing).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_protocol::framing::{FrameDecoder, FrameError, encode_frame};
use sync_protocol::BlobMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let step = usize::from(split).max(1);
    let mut decoder = FrameDecoder::new();
    for piece in bytes.chunks(step) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    // A decoded frame is a real frame: it encodes, and decodes to itself.
                    let encoded = encode_frame(&frame).expect("a decoded frame re-encodes");
                    let mut again = FrameDecoder::new();
                    again.push(&encoded);
                    assert_eq!(again.next_frame(), Ok(Some(frame)));
                }
                Ok(None) => break,
                Err(FrameError::Oversized { .. }) => {
                    assert!(matches!(decoder.next_frame(), Err(FrameError::Oversized { .. })));
                    return;
                }
                // The bad frame was consumed; the link would close here, the decoder can go on.
                Err(_) => continue,
            }
        }
    }
    let _ = decoder.finish();
    // The blob streams' messages go through the same framing.
    let mut blobs = FrameDecoder::new();
    blobs.push(bytes);
    while let Ok(Some(_)) = blobs.next_message::<BlobMessage>() {}
});

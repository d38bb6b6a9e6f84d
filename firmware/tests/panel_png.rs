//! Renders two example screens to `docs/panel.png` and fails when the rendering no longer
//! matches the committed image, so a layout change cannot go unnoticed.
//!
//! After an intended change, regenerate the image with
//! `UPDATE_PANEL=1 cargo test -p firmware --test panel_png` and commit it.

use std::path::PathBuf;

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;

use firmware::{AgentCounts, HEIGHT, HqLink, PanelFrame, PanelStatus, WIDTH, draw};

/// Each panel pixel becomes a SCALE x SCALE block so the image is readable in the docs.
const SCALE: u32 = 4;
/// Rows of background between the two example screens, in panel pixels.
const GAP: u32 = 8;
/// Grey levels of an unlit and a lit OLED pixel.
const OFF_LEVEL: u8 = 0x18;
const ON_LEVEL: u8 = 0xE8;
const GAP_LEVEL: u8 = 0x60;

fn busy_online() -> PanelStatus<'static> {
    PanelStatus {
        site_name: "SH-PUDONG",
        hq_link: HqLink::Online,
        lines_in_use: 17,
        lines_total: 30,
        agents: AgentCounts {
            available: 8,
            one_click_only: 3,
            on_break: 2,
            away: 1,
        },
        calls_queued: 2,
        unsynced_backlog: 14,
        alarms: 0,
    }
}

fn offline_with_alarms() -> PanelStatus<'static> {
    PanelStatus {
        site_name: "广州天河",
        hq_link: HqLink::Offline {
            since_minutes: 5 * 60 + 12,
        },
        lines_in_use: 4,
        lines_total: 120,
        agents: AgentCounts {
            available: 1,
            one_click_only: 0,
            on_break: 4,
            away: 12,
        },
        calls_queued: 0,
        unsynced_backlog: 23_456,
        alarms: 2,
    }
}

fn render(status: &PanelStatus) -> PanelFrame {
    let mut frame = PanelFrame::new();
    let Ok(()) = draw(status, &mut frame);
    frame
}

/// The example screens stacked vertically, scaled up, as 8-bit grey pixels.
fn compose(frames: &[PanelFrame]) -> (u32, u32, Vec<u8>) {
    let width = WIDTH * SCALE;
    let panel_rows = frames.len() as u32 * HEIGHT + (frames.len() as u32 - 1) * GAP;
    let height = panel_rows * SCALE;
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for image_y in 0..height {
        let panel_row = image_y / SCALE;
        let frame_index = (panel_row / (HEIGHT + GAP)) as usize;
        let row_in_frame = panel_row % (HEIGHT + GAP);
        for image_x in 0..width {
            let level = if row_in_frame >= HEIGHT {
                GAP_LEVEL
            } else {
                let point = Point::new((image_x / SCALE) as i32, row_in_frame as i32);
                match frames[frame_index].pixel(point) {
                    BinaryColor::On => ON_LEVEL,
                    BinaryColor::Off => OFF_LEVEL,
                }
            };
            pixels.push(level);
        }
    }
    (width, height, pixels)
}

fn encode(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .expect("PNG header for an in-memory image");
    writer
        .write_image_data(pixels)
        .expect("PNG data for an in-memory image");
    writer.finish().expect("PNG end for an in-memory image");
    bytes
}

/// Decodes a PNG into its size and 8-bit grey pixels.
/// Errors are plain strings: they only ever end up in a panic message.
fn decode(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(|error| error.to_string())?;
    let mut pixels = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader
        .next_frame(&mut pixels)
        .map_err(|error| error.to_string())?;
    if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Eight {
        return Err(format!(
            "expected 8-bit greyscale, found {:?} {:?}",
            info.color_type, info.bit_depth
        ));
    }
    pixels.truncate(info.buffer_size());
    Ok((info.width, info.height, pixels))
}

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/panel.png")
}

#[test]
fn rendering_matches_committed_docs_panel_png() {
    let (width, height, pixels) =
        compose(&[render(&busy_online()), render(&offline_with_alarms())]);
    let path = committed_path();
    if std::env::var_os("UPDATE_PANEL").is_some_and(|value| value == "1") {
        std::fs::write(&path, encode(width, height, &pixels))
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {}: {error}; create it with UPDATE_PANEL=1",
            path.display()
        )
    });
    let (committed_width, committed_height, committed_pixels) = decode(&committed)
        .unwrap_or_else(|error| panic!("{} is not a usable PNG: {error}", path.display()));
    assert_eq!(
        (committed_width, committed_height),
        (width, height),
        "{} has another size than the rendering; regenerate it with UPDATE_PANEL=1",
        path.display()
    );
    let n_differing = committed_pixels
        .iter()
        .zip(&pixels)
        .filter(|(old, new)| old != new)
        .count();
    assert_eq!(
        n_differing,
        0,
        "the panel rendering changed ({n_differing} image pixels differ from {}); if intended, \
         regenerate it with `UPDATE_PANEL=1 cargo test -p firmware --test panel_png` and commit it",
        path.display()
    );
}

#[test]
fn png_round_trip_is_lossless() {
    // Guards the comparison above: a broken encoder or decoder would make it meaningless.
    let (width, height, pixels) = compose(&[render(&busy_online())]);
    let decoded = decode(&encode(width, height, &pixels)).expect("decode our own PNG");
    assert_eq!(decoded, (width, height, pixels));
}

//! Unit tests for the text helpers behind the screen: number and duration formatting,
//! ASCII-only truncation and the lines bar.

use std::string::{String, ToString};

use super::*;

fn compact(value: u32) -> String {
    Compact(value).to_string()
}

fn duration(minutes: u32) -> String {
    Duration(minutes).to_string()
}

fn truncated(text: &str, max_columns: usize) -> String {
    let mut line = LineBuf::new();
    line.push_truncated(AsciiOnly(text), max_columns);
    line.as_str().to_string()
}

#[test]
fn counts_fit_four_characters() {
    assert_eq!(compact(0), "0");
    assert_eq!(compact(9_999), "9999");
    assert_eq!(compact(10_000), "10k");
    assert_eq!(compact(999_999), "999k");
    assert_eq!(compact(1_000_000), "1M+");
    assert_eq!(compact(u32::MAX), "1M+");
}

#[test]
fn offline_durations_step_up_units() {
    assert_eq!(duration(0), "0m");
    assert_eq!(duration(59), "59m");
    assert_eq!(duration(60), "1h00m");
    assert_eq!(duration(5 * 60 + 12), "5h12m");
    assert_eq!(duration(24 * 60 - 1), "23h59m");
    assert_eq!(duration(3 * 24 * 60 + 4 * 60 + 59), "3d4h");
    assert_eq!(duration(100 * 24 * 60), ">99d");
    assert_eq!(duration(u32::MAX), ">99d");
}

#[test]
fn site_names_become_ascii_and_are_cut_with_a_mark() {
    assert_eq!(truncated("SH-01", 11), "SH-01");
    assert_eq!(truncated("SH-PUDONG-0001", 11), "SH-PUDONG-~");
    // The panel font has no CJK glyphs: each such character shows as one `?`.
    assert_eq!(truncated("上海 01", 11), "?? 01");
    assert_eq!(truncated("tab\there", 11), "tab?here");
    assert_eq!(truncated("anything", 0), "");
}

#[test]
fn line_buffer_truncates_at_the_panel_width() {
    let mut line = LineBuf::new();
    let _ = write!(line, "{}", "x".repeat(40));
    assert_eq!(line.len(), COLUMNS);
}

#[test]
fn lines_bar_is_proportional_and_never_hides_a_busy_line() {
    assert_eq!(filled_width(0, 30, 28), 0);
    assert_eq!(filled_width(15, 30, 28), 14);
    assert_eq!(filled_width(30, 30, 28), 28);
    assert_eq!(filled_width(1, 240, 28), 1);
    assert_eq!(filled_width(50, 30, 28), 28);
    assert_eq!(filled_width(5, 0, 28), 0);
    assert_eq!(filled_width(u32::MAX, u32::MAX, 28), 28);
}

#[test]
fn frame_buffer_uses_controller_page_order() {
    let mut frame = PanelFrame::new();
    let pixels = [
        Pixel(Point::new(3, 0), BinaryColor::On),
        Pixel(Point::new(3, 9), BinaryColor::On),
    ];
    let _ = frame.draw_iter(pixels);
    assert_eq!(frame.as_bytes()[3], 0b0000_0001);
    assert_eq!(frame.as_bytes()[128 + 3], 0b0000_0010);
    assert_eq!(frame.pixel(Point::new(3, 9)), BinaryColor::On);
    assert_eq!(frame.pixel(Point::new(4, 9)), BinaryColor::Off);
    // Off-panel drawing is ignored, not a panic.
    let _ = frame.draw_iter([Pixel(Point::new(-1, 70), BinaryColor::On)]);
    assert_eq!(frame.pixel(Point::new(-1, 70)), BinaryColor::Off);
}

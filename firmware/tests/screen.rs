//! Pixel tests of the status screen against ASCII-art patterns, in the style of
//! embedded-graphics' own tests (`MockDisplay::assert_pattern`: `#` lit, `.` dark).
//!
//! `MockDisplay` is 64x64 while the panel is 128x64, so each test looks at one window of
//! the screen: [`window`] clips the drawing to the window and moves it to the mock's origin.

use embedded_graphics::mock_display::MockDisplay;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

use firmware::{AgentCounts, HEIGHT, HqLink, PanelFrame, PanelStatus, WIDTH, draw};

fn status() -> PanelStatus<'static> {
    PanelStatus {
        site_name: "SH-01",
        hq_link: HqLink::Online,
        lines_in_use: 15,
        lines_total: 30,
        agents: AgentCounts {
            available: 7,
            one_click_only: 2,
            on_break: 1,
            away: 0,
        },
        calls_queued: 3,
        unsynced_backlog: 0,
        alarms: 0,
    }
}

/// The part of the screen inside `area`, drawn into a fresh `MockDisplay` at its origin.
fn window(status: &PanelStatus, area: Rectangle) -> MockDisplay<BinaryColor> {
    let mut display = MockDisplay::new();
    // The screen is cleared before text is drawn over it, which MockDisplay calls overdraw.
    display.set_allow_overdraw(true);
    {
        let mut clipped = display.clipped(&Rectangle::new(Point::zero(), area.size));
        let mut target = clipped.translated(Point::zero() - area.top_left);
        draw(status, &mut target).expect("MockDisplay does not fail");
    }
    display
}

#[test]
fn header_shows_hq_offline_duration_right_aligned_on_the_bar() {
    let mut offline = status();
    offline.hq_link = HqLink::Offline { since_minutes: 37 };
    let right_half_of_header = Rectangle::new(Point::new(64, 0), Size::new(64, 11));
    window(&offline, right_half_of_header).assert_pattern(&[
        "################################################################",
        "################################################################",
        "###.###.##...################..####..########.....#.....########",
        "###.###.#.###.##############.##.##.##.###########.#####.########",
        "###.###.#.###.########...###.#####.#############.#####.##..#.###",
        "###.....#.###.#######.###.#....##....##########..#####.##.#.#.##",
        "###.###.#.###.#######.###.##.#####.##############.###.###.#.#.##",
        "###.###.#.#.#.#######.###.##.#####.##########.###.##.####.#.#.##",
        "###.###.##...#########...###.#####.###########...###.####.###.##",
        "#############.##################################################",
        "################################################################",
    ]);
}

#[test]
fn header_shows_site_name_dark_on_the_lit_bar() {
    let left_half_of_header = Rectangle::new(Point::new(0, 0), Size::new(64, 11));
    window(&status(), left_half_of_header).assert_pattern(&[
        "################################################################",
        "################################################################",
        "##...##.###.#########.#####.####################################",
        "#.###.#.###.########.#.###..####################################",
        "#.#####.###.#######.###.#.#.####################################",
        "##...##.....#.....#.###.###.####################################",
        "#####.#.###.#######.###.###.####################################",
        "#.###.#.###.########.#.####.####################################",
        "##...##.###.#########.###.....##################################",
        "################################################################",
        "################################################################",
    ]);
}

#[test]
fn lines_bar_is_half_filled_for_15_of_30_lines() {
    let right_half_of_lines_row = Rectangle::new(Point::new(64, 12), Size::new(64, 10));
    window(&status(), right_half_of_lines_row).assert_pattern(&[
        "................................................................",
        ".................................###############################",
        "#................................#.............................#",
        ".#...............................#.#############...............#",
        ".#...............................#.#############...............#",
        ".#...............................#.#############...............#",
        "#................................#.............................#",
        ".................................###############################",
        "................................................................",
        "................................................................",
    ]);
}

#[test]
fn alarm_cell_is_inverted_only_while_alarms_are_raised() {
    let alarm_cell = Rectangle::new(Point::new(64, 41), Size::new(64, 11));
    let mut alarmed = status();
    alarmed.alarms = 2;
    window(&alarmed, alarm_cell).assert_pattern(&[
        "..##############################################################",
        "..##############################################################",
        "..###.####..##############################################...###",
        "..##.#.####.#############################################.###.##",
        "..#.###.###.####...##.#..##..#.##############################.##",
        "..#.###.###.#######.#..##.#.#.#.###########################..###",
        "..#.....###.####....#.#####.#.#.##########################.#####",
        "..#.###.###.###.###.#.#####.#.#.#########################.######",
        "..#.###.##...###....#.#####.###.#########################.....##",
        "..##############################################################",
        "................................................................",
    ]);
    // The top row is the descender of "Away" in the row above.
    window(&status(), alarm_cell).assert_pattern(&[
        "......................###.......................................",
        "................................................................",
        ".....#....##...............................................#....",
        "....#.#....#..............................................#.#...",
        "...#...#...#....###..#.##..##.#..........................#...#..",
        "...#...#...#.......#.##..#.#.#.#.........................#...#..",
        "...#####...#....####.#.....#.#.#.........................#...#..",
        "...#...#...#...#...#.#.....#.#.#..........................#.#...",
        "...#...#..###...####.#.....#...#...........................#....",
        "................................................................",
        "................................................................",
    ]);
}

#[test]
fn frame_buffer_holds_exactly_what_mock_display_draws() {
    let mut alarmed = status();
    alarmed.alarms = 2;
    alarmed.hq_link = HqLink::Offline { since_minutes: 61 };
    let mut frame = PanelFrame::new();
    let Ok(()) = draw(&alarmed, &mut frame);
    for left in [0, 64] {
        let half = Rectangle::new(Point::new(left, 0), Size::new(WIDTH / 2, HEIGHT));
        let expected = window(&alarmed, half);
        let mut actual = MockDisplay::new();
        for point in Rectangle::new(Point::zero(), half.size).points() {
            actual.set_pixel(point, Some(frame.pixel(point + half.top_left)));
        }
        actual.assert_eq(&expected);
    }
}

#[test]
fn every_screen_pixel_is_painted_so_stale_content_is_erased() {
    // Draw a busy screen, then an idle one over it: the result must equal the idle screen
    // drawn on a blank frame, or the panel would keep ghosts of old numbers.
    let mut busy = status();
    busy.site_name = "A-VERY-LONG-SITE-NAME";
    busy.alarms = 9;
    busy.unsynced_backlog = 123_456;
    let mut reused = PanelFrame::new();
    let Ok(()) = draw(&busy, &mut reused);
    let Ok(()) = draw(&status(), &mut reused);
    let mut fresh = PanelFrame::new();
    let Ok(()) = draw(&status(), &mut fresh);
    assert_eq!(reused, fresh);
}

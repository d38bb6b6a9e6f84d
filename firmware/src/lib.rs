//! The appliance's front panel: one status screen for a 128x64 monochrome display.
//!
//! The appliance fills a [`PanelStatus`] (site, HQ link, lines, agents by state, queue,
//! unsynced backlog, alarms) and calls [`draw`] with any embedded-graphics
//! [`DrawTarget`] of [`BinaryColor`]: a real SSD1306-class driver on the box, a
//! [`PanelFrame`] (a 1 KiB frame buffer in the controller's page layout) to push over I2C/SPI
//! or to render to an image, or embedded-graphics' `MockDisplay` in tests.
//!
//! Screen layout (FONT_6X10, 21 columns, 10-pixel rows):
//! - row 0, inverted bar: site name on the left, HQ link on the right
//!   (`HQ online` or `HQ off 5h12m`);
//! - row 1: `Lines 12/30` and a bar showing the share of lines in use;
//! - rows 2-4: a grid of labelled counts: `Avail` / `1-Clk` agents, `Break` / `Away` agents,
//!   `Queue` / `Alarm`; the alarm cell is drawn inverted while alarms are raised;
//! - row 5: `Unsynced N`, records not yet acknowledged by HQ.
//!
//! The crate is `no_std` and allocation-free: text is formatted into fixed stack buffers.
//! It only draws; it reads no clock and no hardware.

#![no_std]

// Unit tests use std's formatting and collections; the library itself never does.
#[cfg(test)]
extern crate std;

use core::fmt::{self, Write as _};

use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

/// Panel width in pixels.
pub const WIDTH: u32 = 128;
/// Panel height in pixels.
pub const HEIGHT: u32 = 64;

// The panel font is one of embedded-graphics' built-in mono fonts, which carry ASCII (and
// at most ISO 8859) glyphs only: there is no CJK glyph set small enough for a 128x64 panel
// in the crate, and a bitmap CJK font would cost far more flash than the whole screen logic.
// So everything drawn here is ASCII; site names are expected to be the site's ASCII code
// (e.g. `SH-PUDONG-01`), and any other character is shown as `?` (see `AsciiOnly`).
const FONT: MonoFont<'static> = FONT_6X10;
const CHAR_W: i32 = 6;
const ROW_H: i32 = 10;
/// Characters per row: 21 * 6 = 126 pixels.
const COLUMNS: usize = 21;
/// The header bar is one pixel taller than a row so the inverted text has a top margin.
const HEADER_H: i32 = 11;
/// Top of the first body row; a one-pixel gap separates it from the header bar.
const BODY_TOP: i32 = HEADER_H + 1;
/// Left margin of all text: 21 columns leave two spare pixels, one each side.
const LEFT_X: i32 = 1;
/// Grid cells are 10 characters wide; the right column starts after a one-character gap.
const CELL_CHARS: usize = 10;
const RIGHT_CELL_X: i32 = LEFT_X + (CELL_CHARS as i32 + 1) * CHAR_W;
/// The lines bar starts after the widest lines text (`Lines 9999/9999`, 15 characters).
const LINES_BAR_X: i32 = LEFT_X + 16 * CHAR_W;

/// What the HQ link looks like from the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HqLink {
    /// The sync link to HQ is up.
    Online,
    /// The link has been down for this many whole minutes.
    Offline {
        /// Minutes since the link was last up.
        since_minutes: u32,
    },
}

/// Agents signed in at the site, by state (the agent desk's states, feature A3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentCounts {
    /// 可回接: takes predictive calls.
    pub available: u32,
    /// 不可回接: works one-click calls only.
    pub one_click_only: u32,
    /// 小休: on a break.
    pub on_break: u32,
    /// 离开: away from the desk.
    pub away: u32,
}

/// Everything the front panel shows, as of one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelStatus<'a> {
    /// The site's name; shown in ASCII only (see the crate docs), cut to fit the header.
    pub site_name: &'a str,
    /// The sync link to HQ.
    pub hq_link: HqLink,
    /// Trunk channels carrying a call right now.
    pub lines_in_use: u32,
    /// Trunk channels configured.
    pub lines_total: u32,
    /// Signed-in agents by state.
    pub agents: AgentCounts,
    /// Answered calls waiting for an agent.
    pub calls_queued: u32,
    /// Records (call attempts, results, recordings) not yet acknowledged by HQ.
    pub unsynced_backlog: u32,
    /// Alarms currently raised (trunk down, disk nearly full, ...).
    pub alarms: u32,
}

/// Draws the status screen over the whole of `display` (which it clears first).
///
/// The screen is laid out for [`WIDTH`] x [`HEIGHT`]; a larger target shows it in its
/// top-left corner, a smaller one clips it (as embedded-graphics targets do).
pub fn draw<D: DrawTarget<Color = BinaryColor>>(
    status: &PanelStatus,
    display: &mut D,
) -> Result<(), D::Error> {
    display.clear(BinaryColor::Off)?;
    draw_header(status, display)?;
    draw_lines_row(status, display, BODY_TOP)?;

    let agents = &status.agents;
    let grid_top = BODY_TOP + ROW_H;
    draw_cell(display, LEFT_X, grid_top, "Avail", agents.available, false)?;
    draw_cell(
        display,
        RIGHT_CELL_X,
        grid_top,
        "1-Clk",
        agents.one_click_only,
        false,
    )?;
    draw_cell(
        display,
        LEFT_X,
        grid_top + ROW_H,
        "Break",
        agents.on_break,
        false,
    )?;
    draw_cell(
        display,
        RIGHT_CELL_X,
        grid_top + ROW_H,
        "Away",
        agents.away,
        false,
    )?;
    draw_cell(
        display,
        LEFT_X,
        grid_top + 2 * ROW_H,
        "Queue",
        status.calls_queued,
        false,
    )?;
    // A raised alarm is the one thing a technician walking past must not miss.
    let alarm_raised = status.alarms > 0;
    draw_cell(
        display,
        RIGHT_CELL_X,
        grid_top + 2 * ROW_H,
        "Alarm",
        status.alarms,
        alarm_raised,
    )?;

    let mut backlog_text = LineBuf::new();
    // LineBuf never reports an error (it truncates), so the result carries no information.
    let _ = write!(
        backlog_text,
        "Unsynced {}",
        Compact(status.unsynced_backlog)
    );
    draw_text(
        display,
        backlog_text.as_str(),
        LEFT_X,
        grid_top + 3 * ROW_H,
        BinaryColor::On,
    )?;
    Ok(())
}

fn draw_header<D: DrawTarget<Color = BinaryColor>>(
    status: &PanelStatus,
    display: &mut D,
) -> Result<(), D::Error> {
    Rectangle::new(Point::zero(), Size::new(WIDTH, HEADER_H as u32))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(display)?;

    let mut link_text = LineBuf::new();
    let _ = match status.hq_link {
        HqLink::Online => link_text.write_str("HQ online"),
        HqLink::Offline { since_minutes } => {
            write!(link_text, "HQ off {}", Duration(since_minutes))
        }
    };
    // The site name gets what the link text leaves, minus one column of separation.
    let site_columns = COLUMNS - link_text.len() - 1;
    let mut site_text = LineBuf::new();
    site_text.push_truncated(AsciiOnly(status.site_name), site_columns);

    draw_text(display, site_text.as_str(), LEFT_X, 1, BinaryColor::Off)?;
    let link_x = WIDTH as i32 - 1 - text_width(link_text.as_str());
    draw_text(display, link_text.as_str(), link_x, 1, BinaryColor::Off)
}

fn draw_lines_row<D: DrawTarget<Color = BinaryColor>>(
    status: &PanelStatus,
    display: &mut D,
    top: i32,
) -> Result<(), D::Error> {
    let mut lines_text = LineBuf::new();
    let _ = write!(
        lines_text,
        "Lines {}/{}",
        Compact(status.lines_in_use),
        Compact(status.lines_total)
    );
    draw_text(display, lines_text.as_str(), LEFT_X, top, BinaryColor::On)?;

    // The bar: a one-pixel frame, filled in proportion to the lines in use.
    let bar_width = WIDTH as i32 - LINES_BAR_X;
    let bar_height = ROW_H - 3;
    let bar_top = top + 1;
    Rectangle::new(
        Point::new(LINES_BAR_X, bar_top),
        Size::new(bar_width as u32, bar_height as u32),
    )
    .into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1))
    .draw(display)?;
    let inner_width = (bar_width - 4) as u32;
    let filled = filled_width(status.lines_in_use, status.lines_total, inner_width);
    if filled > 0 {
        Rectangle::new(
            Point::new(LINES_BAR_X + 2, bar_top + 2),
            Size::new(filled, (bar_height - 4) as u32),
        )
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(display)?;
    }
    Ok(())
}

/// Width in pixels of the filled part of a bar `inner_width` wide showing `used / total`.
/// More in use than configured (a config change mid-call) shows as full; no lines as empty.
fn filled_width(used: u32, total: u32, inner_width: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    let used = used.min(total);
    // u64 so that large counts cannot overflow the product.
    let filled = u64::from(used) * u64::from(inner_width) / u64::from(total);
    // At least one pixel for any line in use, so "1 of 240" is visibly not idle.
    let filled = if used > 0 { filled.max(1) } else { filled };
    filled as u32
}

/// A grid cell: the label left-aligned, the value right-aligned, [`CELL_CHARS`] wide.
fn draw_cell<D: DrawTarget<Color = BinaryColor>>(
    display: &mut D,
    x: i32,
    top: i32,
    label: &str,
    value: u32,
    inverted: bool,
) -> Result<(), D::Error> {
    let cell_width = CELL_CHARS as i32 * CHAR_W;
    let text_color = if inverted {
        // One pixel of margin on each side so inverted text does not touch the cell edge.
        Rectangle::new(
            Point::new(x - 1, top - 1),
            Size::new((cell_width + 2) as u32, ROW_H as u32),
        )
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(display)?;
        BinaryColor::Off
    } else {
        BinaryColor::On
    };
    draw_text(display, label, x, top, text_color)?;
    let mut value_text = LineBuf::new();
    let _ = write!(value_text, "{}", Compact(value));
    let value_x = x + cell_width - text_width(value_text.as_str());
    draw_text(display, value_text.as_str(), value_x, top, text_color)
}

fn draw_text<D: DrawTarget<Color = BinaryColor>>(
    display: &mut D,
    text: &str,
    x: i32,
    top: i32,
    color: BinaryColor,
) -> Result<(), D::Error> {
    let style = MonoTextStyle::new(&FONT, color);
    Text::with_baseline(text, Point::new(x, top), style, Baseline::Top).draw(display)?;
    Ok(())
}

fn text_width(text: &str) -> i32 {
    // Every string drawn is ASCII (LineBuf guarantees it), so bytes are characters.
    text.len() as i32 * CHAR_W
}

/// A count in at most four characters: `9999`, `12k`, `999k`, `1M+`.
///
/// The grid cells have room for four digits; larger numbers are rounded down rather than
/// pushed into the neighbouring cell.
struct Compact(u32);

impl fmt::Display for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n @ 0..=9_999 => write!(f, "{n}"),
            n @ 10_000..=999_999 => write!(f, "{}k", n / 1000),
            _ => f.write_str("1M+"),
        }
    }
}

/// How long the HQ link has been down, in at most six characters: `37m`, `5h12m`, `3d4h`,
/// `>99d`.
struct Duration(u32);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minutes = self.0;
        if minutes < 60 {
            write!(f, "{minutes}m")
        } else if minutes < 24 * 60 {
            write!(f, "{}h{:02}m", minutes / 60, minutes % 60)
        } else if minutes < 100 * 24 * 60 {
            write!(f, "{}d{}h", minutes / (24 * 60), minutes % (24 * 60) / 60)
        } else {
            f.write_str(">99d")
        }
    }
}

/// Yields the characters of a string as the panel font can draw them: printable ASCII as is,
/// anything else (CJK site names, control characters) as `?`.
struct AsciiOnly<'a>(&'a str);

impl AsciiOnly<'_> {
    fn chars(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.chars().map(|character| {
            if character == ' ' || character.is_ascii_graphic() {
                character as u8
            } else {
                b'?'
            }
        })
    }
}

/// One row of panel text: a fixed buffer of [`COLUMNS`] ASCII bytes.
///
/// Writing past the end truncates instead of failing, so a surprising value shortens a row
/// rather than aborting the whole screen.
struct LineBuf {
    bytes: [u8; COLUMNS],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        Self {
            bytes: [b' '; COLUMNS],
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (see `push`), and ASCII is valid UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    fn push(&mut self, byte: u8) {
        if self.len < COLUMNS {
            self.bytes[self.len] = if byte.is_ascii() { byte } else { b'?' };
            self.len += 1;
        }
    }

    /// Appends `text`, at most `max_columns` characters of it; a cut text ends in `~` so the
    /// reader knows there is more.
    fn push_truncated(&mut self, text: AsciiOnly<'_>, max_columns: usize) {
        let max_columns = max_columns.min(COLUMNS - self.len);
        let total = text.chars().count();
        if total <= max_columns {
            text.chars().for_each(|byte| self.push(byte));
        } else if max_columns > 0 {
            text.chars()
                .take(max_columns - 1)
                .for_each(|byte| self.push(byte));
            self.push(b'~');
        }
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        AsciiOnly(text).chars().for_each(|byte| self.push(byte));
        Ok(())
    }
}

/// A 128x64 one-bit frame buffer in the page layout of SSD1306 / SH1106 controllers.
///
/// Byte `page * 128 + x` holds the eight vertical pixels `y = page * 8 .. page * 8 + 8` of
/// column `x`, least significant bit on top, so [`PanelFrame::as_bytes`] can be written to the
/// controller's display RAM as is. Drawing outside the panel is ignored.
#[derive(Clone, PartialEq, Eq)]
pub struct PanelFrame {
    bytes: [u8; (WIDTH * HEIGHT / 8) as usize],
}

impl PanelFrame {
    /// A blank (all pixels off) frame.
    pub const fn new() -> Self {
        Self {
            bytes: [0; (WIDTH * HEIGHT / 8) as usize],
        }
    }

    /// The frame in controller page order.
    pub fn as_bytes(&self) -> &[u8; (WIDTH * HEIGHT / 8) as usize] {
        &self.bytes
    }

    /// The colour at `point`; points outside the panel read as off.
    pub fn pixel(&self, point: Point) -> BinaryColor {
        match Self::index(point) {
            Some((index, bit)) => BinaryColor::from(self.bytes[index] & bit != 0),
            None => BinaryColor::Off,
        }
    }

    fn index(point: Point) -> Option<(usize, u8)> {
        let x = u32::try_from(point.x).ok()?;
        let y = u32::try_from(point.y).ok()?;
        if x >= WIDTH || y >= HEIGHT {
            return None;
        }
        let index = (y / 8 * WIDTH + x) as usize;
        Some((index, 1 << (y % 8)))
    }
}

impl Default for PanelFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PanelFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line per pixel row, like embedded-graphics' MockDisplay patterns.
        for y in 0..HEIGHT as i32 {
            for x in 0..WIDTH as i32 {
                let on = self.pixel(Point::new(x, y)).is_on();
                f.write_char(if on { '#' } else { '.' })?;
            }
            f.write_char('\n')?;
        }
        Ok(())
    }
}

impl OriginDimensions for PanelFrame {
    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }
}

impl DrawTarget for PanelFrame {
    type Color = BinaryColor;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            if let Some((index, bit)) = Self::index(point) {
                if color.is_on() {
                    self.bytes[index] |= bit;
                } else {
                    self.bytes[index] &= !bit;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

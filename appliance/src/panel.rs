//! The front panel, fed from the box's live status.
//!
//! - Each second [`run`] gathers what the panel shows (site, HQ link and since when it is
//!   down, lines in use, agents by state, the queue, the unsynced backlog, alarms) into a
//!   [`firmware::PanelStatus`] and draws `firmware`'s screen.
//! - Where `appliance.toml` names a panel (`[panel] i2c = "/dev/i2c-1"`), the screen goes
//!   to the SSD1306 controller on that bus (`ssd1306` over `linux-embedded-hal`); a panel
//!   that cannot be opened or stops answering is logged and dropped, and the box goes on.
//! - Always, the same frame is kept as a PNG ([`PanelImage`]) that the site's status page
//!   shows: the panel for a box without one, and a check of what the panel shows for a box
//!   with one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_graphics::prelude::*;
use firmware::{AgentCounts, HqLink, PanelFrame, PanelStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::desk::{AgentState, Desk};
use crate::driver::inbox::DriverHandle;
use crate::store::{Store, now_unix};
use crate::sync::LinkView;

/// How often the panel is redrawn.
const REFRESH: Duration = Duration::from_secs(1);
/// Each panel pixel is a SCALE x SCALE block in the PNG, so the status page shows it legibly.
const SCALE: u32 = 3;
/// Grey levels of an unlit and a lit OLED pixel in the PNG.
const OFF_LEVEL: u8 = 0x18;
const ON_LEVEL: u8 = 0xE8;

/// Where the panel is attached, and what it calls the site (`[panel]` in `appliance.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelOptions {
    /// The I2C bus of an SSD1306 128x64 panel; `None`: no panel, the PNG only.
    pub i2c: Option<PathBuf>,
    /// The controller's I2C address.
    pub address: u8,
    /// The site's name on the panel (ASCII); by default `SITE <id>` once enrolled.
    pub name: Option<String>,
}

impl Default for PanelOptions {
    fn default() -> PanelOptions {
        PanelOptions { i2c: None, address: 0x3c, name: None }
    }
}

/// The latest rendering of the panel, as a PNG.
#[derive(Debug, Default)]
pub struct PanelImage {
    png: Mutex<Vec<u8>>,
}

impl PanelImage {
    /// The PNG of the last frame drawn; empty before the first.
    pub fn png(&self) -> Vec<u8> {
        self.png.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set(&self, png: Vec<u8>) {
        *self.png.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = png;
    }
}

/// What the panel reads its status from.
pub struct PanelSources {
    pub store: Arc<Store>,
    pub desk: Arc<Desk>,
    pub driver: DriverHandle,
    pub link: watch::Receiver<LinkView>,
    /// The site's name as the panel shows it.
    pub site_name: String,
}

/// Redraws the panel each second until `shutdown`.
pub async fn run(sources: PanelSources, options: PanelOptions, image: Arc<PanelImage>, shutdown: CancellationToken) {
    let mut display = options.i2c.as_ref().and_then(|bus| match i2c::Panel::open(bus, options.address) {
        Ok(panel) => {
            tracing::info!(bus = %bus.display(), address = options.address, "front panel attached");
            Some(panel)
        }
        Err(error) => {
            tracing::warn!(bus = %bus.display(), %error, "front panel not attached; the status page shows it");
            None
        }
    });
    loop {
        let status = gather(&sources).await;
        let frame = render(&status.as_status(&sources.site_name));
        image.set(encode_png(&frame));
        if let Some(panel) = display.as_mut()
            && let Err(error) = panel.show(&status.as_status(&sources.site_name))
        {
            tracing::warn!(%error, "the front panel stopped answering; it is no longer drawn");
            display = None;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// The panel's figures, owned (the status borrows the site name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gathered {
    hq_link: HqLink,
    lines_in_use: u32,
    lines_total: u32,
    agents: AgentCounts,
    calls_queued: u32,
    unsynced_backlog: u32,
    alarms: u32,
}

impl Gathered {
    fn as_status<'a>(&self, site_name: &'a str) -> PanelStatus<'a> {
        PanelStatus {
            site_name,
            hq_link: self.hq_link,
            lines_in_use: self.lines_in_use,
            lines_total: self.lines_total,
            agents: self.agents,
            calls_queued: self.calls_queued,
            unsynced_backlog: self.unsynced_backlog,
            alarms: self.alarms,
        }
    }
}

async fn gather(sources: &PanelSources) -> Gathered {
    let lines = sources.driver.status().await;
    let now = now_unix();
    let hq_link = match &*sources.link.borrow() {
        LinkView::Online { .. } => HqLink::Online,
        LinkView::Offline { since, .. } => HqLink::Offline { since_minutes: ((now - since).max(0) / 60) as u32 },
        LinkView::Connecting | LinkView::NotEnrolled => HqLink::Offline { since_minutes: 0 },
    };
    let counts = sources.desk.counts();
    let count = |state| counts.get(&state).copied().unwrap_or(0) as u32;
    let store = sources.store.clone();
    let (backlog, alarms) = tokio::task::spawn_blocking(move || {
        let backlog = store.outbox_len().unwrap_or(0);
        let alarms = store.site_live_now().map(|live| live.alarms.len()).unwrap_or(0);
        (backlog, alarms)
    })
    .await
    .unwrap_or((0, 0));
    Gathered {
        hq_link,
        lines_in_use: lines.trunks.iter().map(|trunk| trunk.active_calls).sum(),
        lines_total: lines.trunks.iter().map(|trunk| trunk.channels).sum(),
        agents: AgentCounts {
            available: count(AgentState::Available),
            one_click_only: count(AgentState::OneClickOnly),
            on_break: count(AgentState::Break),
            away: count(AgentState::Away),
        },
        calls_queued: lines.queued,
        unsynced_backlog: u32::try_from(backlog).unwrap_or(u32::MAX),
        alarms: alarms as u32,
    }
}

fn render(status: &PanelStatus) -> PanelFrame {
    let mut frame = PanelFrame::new();
    let Ok(()) = firmware::draw(status, &mut frame);
    frame
}

/// The frame as an 8-bit grey PNG, each pixel scaled up by [`SCALE`].
pub fn encode_png(frame: &PanelFrame) -> Vec<u8> {
    let (width, height) = (firmware::WIDTH * SCALE, firmware::HEIGHT * SCALE);
    let mut pixels = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            let on = frame.pixel(Point::new((x / SCALE) as i32, (y / SCALE) as i32)).is_on();
            pixels.push(if on { ON_LEVEL } else { OFF_LEVEL });
        }
    }
    let mut encoded = Vec::new();
    let mut encoder = png::Encoder::new(&mut encoded, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    // Encoding into memory fails only on a size the constants above rule out.
    let written = encoder.write_header().and_then(|mut writer| writer.write_image_data(&pixels));
    if let Err(error) = written {
        tracing::warn!(%error, "the panel image could not be encoded");
        return Vec::new();
    }
    encoded
}

/// The SSD1306 on an I2C bus.
mod i2c {
    use std::path::Path;

    use linux_embedded_hal::I2cdev;
    use ssd1306::mode::BufferedGraphicsMode;
    use ssd1306::prelude::*;
    use ssd1306::{I2CDisplayInterface, Ssd1306};

    type Display = Ssd1306<I2CInterface<I2cdev>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

    /// An initialised panel.
    pub(super) struct Panel {
        display: Display,
    }

    impl Panel {
        pub(super) fn open(bus: &Path, address: u8) -> Result<Panel, String> {
            let device = I2cdev::new(bus).map_err(|error| format!("cannot open {}: {error}", bus.display()))?;
            let interface = I2CDisplayInterface::new_custom_address(device, address);
            let mut display =
                Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0).into_buffered_graphics_mode();
            display.init().map_err(|error| format!("no SSD1306 answers at {address:#x}: {error:?}"))?;
            Ok(Panel { display })
        }

        pub(super) fn show(&mut self, status: &firmware::PanelStatus) -> Result<(), String> {
            firmware::draw(status, &mut self.display).map_err(|error| format!("{error:?}"))?;
            self.display.flush().map_err(|error| format!("{error:?}"))
        }
    }
}

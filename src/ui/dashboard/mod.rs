//! The live terminal dashboard (ratatui): on its own thread, looking at a
//! fixed rate (10 frames a second) for the snapshots the engine hands over
//! and for keys, redrawing when either changed the picture; it never
//! touches the hot path. The terminal is restored on every way out: normal end, error,
//! `q`, Ctrl-C (a key in raw mode) and panic (ratatui's panic hook). Log
//! lines (`-v`) are held meanwhile and printed after the terminal is
//! restored ([`crate::ui::log`]).

mod compact;
mod latency;
pub mod layout;
pub mod state;
pub mod view;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_util::sync::CancellationToken;

pub use state::DashboardState;

use crate::control::Control;
use crate::metrics::RunData;

/// Time between two frames (10 per second): how soon a key or a snapshot shows.
pub const FRAME: Duration = Duration::from_millis(100);

/// Restores the terminal when dropped, whatever the way out.
struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop the run gracefully.
    Stop,
    /// Pause or resume sending.
    TogglePause,
    /// Rate +10%.
    Faster,
    /// Rate -10%.
    Slower,
    /// Next latency metric in the chart.
    NextMetric,
    /// Show or hide the help.
    ToggleHelp,
}

/// The action bound to a key, if any.
pub fn action_for(code: KeyCode, mods: KeyModifiers) -> Option<Action> {
    match code {
        KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => Some(Action::Stop),
        KeyCode::Char('q') | KeyCode::Esc => Some(Action::Stop),
        KeyCode::Char('p') | KeyCode::Char(' ') => Some(Action::TogglePause),
        KeyCode::Char('+') | KeyCode::Char('=') => Some(Action::Faster),
        KeyCode::Char('-') | KeyCode::Char('_') => Some(Action::Slower),
        KeyCode::Tab => Some(Action::NextMetric),
        KeyCode::Char('?') | KeyCode::Char('h') => Some(Action::ToggleHelp),
        _ => None,
    }
}

/// Applies `a` to the run and the view.
pub fn apply(a: Action, state: &mut DashboardState, control: &Control, cancel: &CancellationToken) {
    match a {
        // A second stop while the run is closing quits at once, like a
        // second Ctrl-C outside the dashboard.
        Action::Stop if cancel.is_cancelled() => {
            ratatui::restore();
            crate::ui::log::release();
            std::process::exit(130);
        }
        Action::Stop => cancel.cancel(),
        Action::TogglePause => control.toggle_pause(),
        Action::Faster => control.scale(1.1),
        Action::Slower => control.scale(1.0 / 1.1),
        Action::NextMetric => state.next_metric(),
        Action::ToggleHelp => state.show_help = !state.show_help,
    }
    // Show the new controls at once, before the next delta.
    state.now.rate_factor = control.factor();
    state.now.paused = control.paused();
}

/// Starts the dashboard thread; it ends when `rx` closes (the run is over).
pub fn spawn(
    state: DashboardState,
    rx: UnboundedReceiver<Arc<RunData>>,
    control: Arc<Control>,
    cancel: CancellationToken,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || run(state, rx, &control, &cancel))
}

fn run(
    mut state: DashboardState,
    mut rx: UnboundedReceiver<Arc<RunData>>,
    control: &Control,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    // Dropped after `_restore`: the held log lines print on the restored terminal.
    let _logs = crate::ui::log::hold();
    let mut terminal = ratatui::try_init()?;
    let _restore = RestoreGuard;
    // Every frame looks for snapshots and keys; the screen is redrawn when
    // one of them (or the terminal size) changed what it shows.
    let mut dirty = true;
    loop {
        let next_frame = Instant::now() + FRAME;
        loop {
            match rx.try_recv() {
                Ok(s) => {
                    state.push(&s);
                    // A rate set while the run goes (a search's step).
                    state.phase_rate = state.now.phase.and_then(|i| control.phase_rate(i));
                    state.phase_connections =
                        state.now.phase.and_then(|i| control.phase_connections(i));
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if dirty {
            terminal.draw(|f| view::draw(f, &state))?;
            dirty = false;
        }
        loop {
            let left = next_frame.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                break;
            }
            match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => {
                    if let Some(a) = action_for(k.code, k.modifiers) {
                        apply(a, &mut state, control, cancel);
                        dirty = true;
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

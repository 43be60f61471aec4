//! What shows a run while it goes: the live dashboard, progress lines on
//! stderr, or JSON lines on stdout.

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::LoadArgs;
use crate::control::Control;
use crate::runner::exit;
use crate::scenario::Scenario;
use crate::ui;

/// What shows a run while it goes: the dashboard, progress lines on
/// stderr, or JSON lines on stdout.
pub(crate) enum View {
    Dashboard(std::thread::JoinHandle<std::io::Result<()>>),
    Progress(tokio::task::JoinHandle<()>),
    Lines(tokio::task::JoinHandle<()>),
}

impl View {
    /// The dashboard when stdout is a terminal (and not `--no-tui` or
    /// `--quiet`), progress lines otherwise.
    pub(super) fn start(
        a: &LoadArgs,
        scenario: &Scenario,
        rx: mpsc::UnboundedReceiver<Arc<crate::metrics::RunData>>,
        control: &Arc<Control>,
        cancel: &CancellationToken,
    ) -> Result<View, u8> {
        if a.no_tui || a.quiet || !std::io::stdout().is_terminal() {
            let scenario = scenario.clone();
            let control = control.clone();
            let quiet = a.quiet;
            return Ok(View::Progress(tokio::task::spawn_blocking(move || {
                ui::progress::print_lines(scenario, rx, quiet, control)
            })));
        }
        let target = ui::plan::target_title(scenario);
        let fd_limit = crate::engine::preflight::raise_fd_limit();
        let state = ui::dashboard::DashboardState::new(scenario.clone(), target, fd_limit);
        match ui::dashboard::spawn(state, rx, control.clone(), cancel.clone()) {
            Ok(handle) => Ok(View::Dashboard(handle)),
            Err(e) => {
                ui::error(&format!("cannot start the dashboard: {e}"));
                Err(exit::RUN_FAILED)
            }
        }
    }

    /// Waits for the view to end (the snapshot channel is closed by then).
    pub(super) async fn finish(self) {
        match self {
            View::Progress(p) | View::Lines(p) => {
                let _ = p.await;
            }
            View::Dashboard(d) => match tokio::task::spawn_blocking(move || d.join()).await {
                Ok(Ok(Err(e))) => ui::error(&format!("dashboard: {e}")),
                Ok(Err(_)) => ui::error(&"the dashboard panicked; the terminal was restored"),
                _ => {}
            },
        }
    }
}

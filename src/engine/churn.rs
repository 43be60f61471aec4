//! Churn (`connections.lifetime`): a connection whose lifetime is up closes
//! as a client would (replies on their way still read and timed, then the
//! configured close frame) and a replacement opens at once.

use super::connection::{Conn, End};
use crate::metrics::ErrorKind;

impl Conn<'_> {
    /// Closes this connection (counted as `closed`, not an error) and opens
    /// its replacement in place; `Err` with how the load loop ends when the
    /// old one was lost meanwhile or the new one could not open.
    pub(super) async fn churn(&mut self, stage: usize) -> Result<(), End> {
        let shared = self.shared;
        if let End::Lost = self.collect_in_flight(stage).await {
            return Err(End::Lost);
        }
        let settings = shared.protocol.close.clone();
        let closed = tokio::select! {
            _ = shared.cancel.cancelled() => true,
            c = self.close(&settings) => c,
        };
        if !closed {
            self.count_error(stage, ErrorKind::CloseTimeout);
        }
        shared.setup_count(self.id, stage, |c| c.closed += 1);
        shared.recorder.gauges().closed();
        if self.reopen().await {
            Ok(())
        } else {
            Err(End::Gone)
        }
    }
}

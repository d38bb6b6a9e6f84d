//! The driver's store writes that nothing waits for, applied in order on a thread of their own.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// A store write the driver does not wait for.
type WriteJob = Box<dyn FnOnce(&Store) + Send>;

/// Writes the driver does not wait for (the answer and the bridge of a call, a popup shown),
/// applied in order on a thread of their own: a call is never held up by a disk flush, which
/// matters when a hundred calls are answered at once. One thread applies them all, so an
/// attempt's writes keep their order; [`Writer::flush`] waits for the queue before anything
/// that reads what was written (the end of a call, a saved record).
pub(super) struct Writer {
    sender: std::sync::mpsc::Sender<WriteJob>,
}

impl Writer {
    pub(super) fn spawn(store: Arc<Store>) -> Writer {
        let (sender, receiver) = std::sync::mpsc::channel::<WriteJob>();
        let started = std::thread::Builder::new().name("store-writer".into()).spawn(move || {
            while let Ok(job) = receiver.recv() {
                job(&store);
            }
        });
        if let Err(error) = started {
            // Without the thread every write is lost; say so loudly, the box cannot record.
            tracing::error!(%error, "cannot start the store writer thread; calls will not be recorded");
        }
        Writer { sender }
    }

    pub(super) fn write(&self, job: impl FnOnce(&Store) + Send + 'static) {
        if self.sender.send(Box::new(job)).is_err() {
            tracing::error!("the store writer has stopped; a call's record is lost");
        }
    }

    /// Blocks until every write queued so far is applied.
    pub(super) fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.write(move |_| {
            let _ = done.send(());
        });
        let _ = wait.recv_timeout(Duration::from_secs(10));
    }
}

//! Stopping a run: the handle any thread stops it with, and how the run hears of it.
//!
//! Rules:
//! 1. A stop is a level (running, graceful, now) that only goes up; asking for a graceful
//!    stop twice means now.
//! 2. The run's own tasks (the accept loop, the drain) wait on a `Notify`; each connection
//!    task holds one [`StopWatch`] for its whole life instead: its waker is registered once
//!    and a stop wakes every registered one. A connection waits for a stop twice a request
//!    (for the reply, for the next request), and a `Notified` per wait cost a registration
//!    in `Notify`'s list and its removal each time (about 700 instructions a request).

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use tokio::sync::Notify;

/// How far a stop has gone (rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Stop accepting; in-flight requests finish.
    Graceful = 1,
    /// Close everything.
    Now = 2,
}

/// One connection's registered waker (None until its first wait).
type Slot = Arc<Mutex<Option<Waker>>>;

#[derive(Debug, Default)]
struct Watchers {
    slots: Vec<Option<Slot>>,
    /// Indexes of `slots` that are free again.
    free: Vec<usize>,
}

#[derive(Debug, Default)]
struct StopState {
    /// 0 running, then a [`Stage`].
    level: AtomicUsize,
    notify: Notify,
    watchers: Mutex<Watchers>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops a running [`crate::serve`] from any thread.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    state: Arc<StopState>,
}

impl StopHandle {
    /// A handle for one run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop accepting, let in-flight requests finish (with `Connection: close`) for up to
    /// `shutdown_timeout`, close idle connections, return. A second call stops at once.
    pub fn stop_graceful(&self) {
        let before = self.state.level.fetch_max(1, Ordering::AcqRel);
        if before >= 1 {
            self.state.level.store(2, Ordering::Release);
        }
        self.wake_all();
    }

    /// Stop at once: close every connection and return.
    pub fn stop_now(&self) {
        self.state.level.store(2, Ordering::Release);
        self.wake_all();
    }

    /// True once any stop was asked.
    pub fn is_stopping(&self) -> bool {
        self.reached(Stage::Graceful)
    }

    pub(crate) fn reached(&self, stage: Stage) -> bool {
        self.state.level.load(Ordering::Acquire) >= stage as usize
    }

    fn wake_all(&self) {
        self.state.notify.notify_waiters();
        let watchers = lock(&self.state.watchers);
        for slot in watchers.slots.iter().flatten() {
            if let Some(waker) = lock(slot).as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    /// Until the stop reaches `stage` (the run's own tasks; rule 2).
    pub(crate) async fn stopped(&self, stage: Stage) {
        loop {
            let notified = self.state.notify.notified();
            if self.reached(stage) {
                return;
            }
            notified.await;
        }
    }

    /// A registration for one connection task (rule 2); it ends when dropped.
    pub(crate) fn watch(&self) -> StopWatch {
        let slot = Slot::default();
        let mut watchers = lock(&self.state.watchers);
        let index = watchers.free.pop().unwrap_or_else(|| {
            watchers.slots.push(None);
            watchers.slots.len() - 1
        });
        if let Some(place) = watchers.slots.get_mut(index) {
            *place = Some(Arc::clone(&slot));
        }
        StopWatch {
            handle: self.clone(),
            slot,
            index,
            kept: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        lock(&self.state.watchers).slots.iter().flatten().count()
    }
}

/// A connection task's registration for stop wake-ups (rule 2).
#[derive(Debug)]
pub(crate) struct StopWatch {
    handle: StopHandle,
    slot: Slot,
    index: usize,
    /// The data and vtable pointers of the waker in `slot`, written with it by the owning
    /// task only: a wait by the same task (the usual case) registers nothing and takes no
    /// lock.
    kept: [AtomicUsize; 2],
}

/// What `Waker::will_wake` compares, as numbers: a task's wakers all have the same.
pub(crate) fn waker_id(waker: &Waker) -> [usize; 2] {
    [
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    ]
}

impl StopWatch {
    /// Until the stop reaches `stage`: the calling task's waker is kept (replaced only
    /// when it is another task's), and a stop wakes it.
    pub(crate) async fn stopped(&self, stage: Stage) {
        poll_fn(|cx| {
            if self.handle.reached(stage) {
                return Poll::Ready(());
            }
            let waker = cx.waker();
            let id = waker_id(waker);
            if self
                .kept
                .iter()
                .zip(id)
                .all(|(kept, id)| kept.load(Ordering::Relaxed) == id)
            {
                // Registered before the check above: a stop since then finds it.
                return Poll::Pending;
            }
            {
                let mut slot = lock(&self.slot);
                *slot = Some(waker.clone());
                for (kept, id) in self.kept.iter().zip(id) {
                    kept.store(id, Ordering::Relaxed);
                }
            }
            // Read again after registering: a stop that came between the two reads either
            // is seen here or found the waker.
            if self.handle.reached(stage) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        let mut watchers = lock(&self.handle.state.watchers);
        if let Some(place) = watchers.slots.get_mut(self.index) {
            *place = None;
            watchers.free.push(self.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_watching_task_wakes_at_its_stage_and_not_before() {
        runtime().block_on(async {
            let handle = StopHandle::new();
            let watch = handle.watch();
            let seen = handle.clone();
            let waiter = tokio::spawn(async move {
                watch.stopped(Stage::Graceful).await;
                let graceful_seen = !seen.reached(Stage::Now);
                watch.stopped(Stage::Now).await;
                graceful_seen
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished(), "no stop asked yet");
            handle.stop_graceful();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished(), "graceful is not now");
            handle.stop_graceful();
            let graceful_seen = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("the second stop must wake the watcher")
                .unwrap();
            assert!(graceful_seen);
        });
    }

    #[test]
    fn a_watch_made_after_the_stop_sees_it_at_once() {
        runtime().block_on(async {
            let handle = StopHandle::new();
            handle.stop_now();
            let watch = handle.watch();
            tokio::time::timeout(Duration::from_secs(5), watch.stopped(Stage::Now))
                .await
                .expect("already stopped");
        });
    }

    #[test]
    fn dropped_watches_free_their_slot_for_the_next() {
        let handle = StopHandle::new();
        let first = handle.watch();
        let second = handle.watch();
        assert_eq!(handle.watched(), 2);
        drop(first);
        assert_eq!(handle.watched(), 1);
        let third = handle.watch();
        assert_eq!(handle.watched(), 2);
        assert_eq!(
            lock(&handle.state.watchers).slots.len(),
            2,
            "the slot is reused"
        );
        drop((second, third));
        assert_eq!(handle.watched(), 0);
    }

    #[test]
    fn many_waits_of_one_task_keep_one_waker() {
        runtime().block_on(async {
            let handle = StopHandle::new();
            let watch = handle.watch();
            for _ in 0..3 {
                // A wait that ends by timing out, as a connection's waits end by a reply.
                let _ =
                    tokio::time::timeout(Duration::from_millis(1), watch.stopped(Stage::Graceful))
                        .await;
            }
            assert!(lock(&watch.slot).is_some());
            assert_eq!(handle.watched(), 1);
        });
    }
}

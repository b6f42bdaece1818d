//! A connection's read timer (`ReadTimer`): a tokio `Sleep` polled only when needed.
//!
//! Polling a `Sleep` registers the polling task's waker again every time: two
//! compare-and-swaps, a waker clone and a drop, four locked instructions (docs/benchmarks.md,
//! Session 12), and a connection polls its timer once a request while it waits to read.
//! Only the connection's own task waits on its timer, so once its waker is registered
//! since the last reset, a poll need only look whether the timer fired.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{sleep_until, Instant, Sleep};

use crate::stop::waker_id;

/// A deadline that wakes the task waiting on it (module header).
#[derive(Debug)]
pub(crate) struct ReadTimer {
    sleep: Pin<Box<Sleep>>,
    /// The waker (`waker_id`) the sleep holds since the last reset, if any.
    registered: Option<[usize; 2]>,
}

impl ReadTimer {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            sleep: Box::pin(sleep_until(deadline)),
            registered: None,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// Move the deadline (the waker is registered again at the next wait).
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.registered = None;
    }

    /// Until the deadline.
    pub(crate) fn wait(&mut self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            let id = waker_id(cx.waker());
            if self.registered == Some(id) && !self.sleep.is_elapsed() {
                // This task's waker is in the timer: firing wakes it (and a fire since the
                // check above finds it too), and the next poll sees it elapsed.
                return Poll::Pending;
            }
            // Out of cooperative budget, the sleep answers Pending without registering.
            let registers = tokio::task::coop::has_budget_remaining();
            let polled = self.sleep.as_mut().poll(cx);
            self.registered = (polled.is_pending() && registers).then_some(id);
            polled
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{timeout, Instant};

    use super::ReadTimer;

    /// A wait that skips the sleep's poll (the task's waker is already in it, from an earlier
    /// wait) is still woken when the deadline passes: nothing but the timer would wake it.
    #[tokio::test]
    async fn a_wait_after_the_task_registered_is_woken_by_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(60);
        let mut timer = ReadTimer::new(deadline);
        assert!(timeout(Duration::from_millis(5), timer.wait())
            .await
            .is_err());
        assert!(timer.registered.is_some(), "the first wait registered");
        timeout(Duration::from_secs(5), timer.wait())
            .await
            .expect("the timer woke the wait");
        assert!(Instant::now() >= deadline);
    }

    /// A reset forgets the registration: the wait after it ends at the new, earlier
    /// deadline, not the old one.
    #[tokio::test]
    async fn a_reset_timer_wakes_at_its_new_deadline() {
        let mut timer = ReadTimer::new(Instant::now() + Duration::from_secs(30));
        assert!(timeout(Duration::from_millis(5), timer.wait())
            .await
            .is_err());
        let sooner = Instant::now() + Duration::from_millis(40);
        timer.reset(sooner);
        assert!(timer.registered.is_none());
        timeout(Duration::from_secs(5), timer.wait())
            .await
            .expect("the wait ended at the new deadline");
        assert!(Instant::now() >= sooner);
    }
}

//! Event delivery: one bounded queue and one thread per sink.
//!
//! The capture loop [`Sinks::send`]s each event to every sink's [`Queue`] and never waits: a
//! sink that is slow or down fills its own queue, and a full queue drops its oldest event and
//! counts it. A sink's thread delivers the event at the front and removes it only once
//! delivered (at least once, in order); a failed delivery is retried after the sink's
//! [`Sink::retry_delay`] (capped exponential backoff unless the sink paces itself).
//!
//! An alerting sink may have a [`policy::Policy`] (minimum severity, mutes, rate limits):
//! [`Sinks::send`] asks it before queueing, and counts what it held back.
//!
//! Sinks that publish state rather than events (MQTT's retained device states) read the
//! latest snapshot of the node from a [`StatusBoard`] the capture loop posts to, in
//! [`Sink::idle`], which their thread calls between events.

pub mod email;
pub mod jsonl;
pub mod mqtt;
pub mod policy;
pub mod tls;
pub mod webhook;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::detect::Event;
use crate::engine::Status;
use policy::Policy;

/// Somewhere events go.
pub trait Sink: Send {
    /// Delivers one event; an error means "not delivered, try again later". Returns only once
    /// the event is where it goes (written, or acknowledged by a broker).
    fn deliver(&mut self, event: &Event) -> Result<(), String>;

    /// How long to wait before trying again after `failures` failed deliveries in a row.
    fn retry_delay(&self, failures: u32) -> Duration {
        let ms = 100u64.saturating_mul(1 << failures.saturating_sub(1).min(20));
        Duration::from_millis(ms).min(MAX_BACKOFF)
    }

    /// Called when no event came for [`IDLE_EVERY`], and at least every [`IDLE_MAX`] while
    /// events keep coming: work besides events (publishing state).
    fn idle(&mut self) {}

    /// Called once at exit, after the queue drained or the time for it ran out; must return
    /// by `deadline`.
    fn close(&mut self, _deadline: Instant) {}
}

/// A sink is idle when no event came for this long.
pub const IDLE_EVERY: Duration = Duration::from_millis(250);
/// A sink's [`Sink::idle`] runs at least this often, even while events keep coming.
pub const IDLE_MAX: Duration = Duration::from_secs(1);

/// The latest snapshot of the node, posted by the capture loop and read by sinks that publish
/// state (MQTT: a [`Status`]) and by the status page's server (a `status::Snapshot`). Posting
/// replaces the previous snapshot: nobody waits, nothing piles up.
pub struct StatusBoard<T = Status> {
    latest: Mutex<Posted<T>>,
}

struct Posted<T> {
    version: u64,
    at: Option<Instant>,
    status: Option<Arc<T>>,
}

impl<T> Default for StatusBoard<T> {
    fn default() -> Self {
        StatusBoard {
            latest: Mutex::new(Posted {
                version: 0,
                at: None,
                status: None,
            }),
        }
    }
}

impl<T> StatusBoard<T> {
    fn lock(&self) -> MutexGuard<'_, Posted<T>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn post(&self, status: T) {
        self.post_arc(Arc::new(status));
    }

    pub fn post_arc(&self, status: Arc<T>) {
        let mut l = self.lock();
        l.version += 1;
        l.at = Some(Instant::now());
        l.status = Some(status);
    }

    /// The latest snapshot if it is newer than version `seen`, with its version.
    pub fn newer_than(&self, seen: u64) -> Option<(u64, Arc<T>)> {
        let l = self.lock();
        match &l.status {
            Some(s) if l.version > seen => Some((l.version, Arc::clone(s))),
            _ => None,
        }
    }

    /// The latest snapshot and when it was posted.
    pub fn latest(&self) -> Option<(Instant, Arc<T>)> {
        let l = self.lock();
        Some((l.at?, Arc::clone(l.status.as_ref()?)))
    }
}

/// A bounded queue of events, drop-oldest when full.
pub struct Queue {
    items: Mutex<VecDeque<(u64, Event)>>,
    ready: Condvar,
    capacity: usize,
    next_seq: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    held: AtomicU64,
    closed: AtomicBool,
    /// When a closed queue's sink must have finished closing.
    close_by: Mutex<Option<Instant>>,
    name: String,
}

/// A queue's counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub queued: usize,
    pub delivered: u64,
    pub dropped: u64,
    /// Events the sink's alert policy held back (severity, mutes, rate limits).
    #[serde(default)]
    pub held: u64,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue::named("queue", capacity)
    }

    /// A queue whose drops are logged under `name`.
    pub fn named(name: &str, capacity: usize) -> Queue {
        Queue {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            next_seq: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            held: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            close_by: Mutex::new(None),
            name: name.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, Event)>> {
        // a sink thread that panicked leaves the queue as it was: keep using it
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an event; when full, the oldest waiting event is dropped and counted (and logged:
    /// the 1st, 2nd, 4th, 8th... drop).
    pub fn push(&self, e: Event) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut q = self.lock();
        let mut dropped = 0;
        if q.len() >= self.capacity {
            q.pop_front();
            dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        }
        q.push_back((seq, e));
        drop(q);
        self.ready.notify_one();
        if dropped.is_power_of_two() {
            log::warn!(
                "sink {}: its queue of {} events is full: the oldest was dropped ({dropped} dropped so far)",
                self.name,
                self.capacity
            );
        }
    }

    /// The event at the front (a copy), waiting up to `timeout` for one.
    fn front(&self, timeout: Duration) -> Option<(u64, Event)> {
        let q = self.lock();
        let (q, _) = self
            .ready
            .wait_timeout_while(q, timeout, |q| {
                q.is_empty() && !self.closed.load(Ordering::Relaxed)
            })
            .unwrap_or_else(|p| p.into_inner());
        q.front().cloned()
    }

    /// Removes the front event if it is still the one delivered (`seq`).
    fn done(&self, seq: u64) {
        let mut q = self.lock();
        if q.front().is_some_and(|(s, _)| *s == seq) {
            q.pop_front();
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.lock().len(),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
        }
    }

    fn close(&self, close_by: Instant) {
        *self.close_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(close_by);
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_all();
    }

    fn close_by(&self) -> Instant {
        self.close_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// One running sink: its queue and its thread.
struct Running {
    name: String,
    policy: Option<Policy>,
    queue: Arc<Queue>,
    thread: JoinHandle<()>,
}

/// Every sink of the daemon.
#[derive(Default)]
pub struct Sinks {
    running: Vec<Running>,
}

/// Longest wait between two attempts to deliver to a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Time a sink gets to close (say goodbye to a broker) after its queue closed.
const CLOSE_GRACE: Duration = Duration::from_millis(400);

/// A sink's thread: deliver the front event until the queue closes, then close the sink.
fn run(label: &str, q: &Queue, sink: &mut dyn Sink) {
    let mut failures = 0u32;
    let mut last_idle = Instant::now();
    loop {
        let Some((seq, e)) = q.front(IDLE_EVERY) else {
            if q.is_closed() {
                break;
            }
            sink.idle();
            last_idle = Instant::now();
            continue;
        };
        // events go first (a state never runs ahead of the event that changed it), but not
        // for ever
        if last_idle.elapsed() >= IDLE_MAX {
            sink.idle();
            last_idle = Instant::now();
        }
        match sink.deliver(&e) {
            Ok(()) => {
                q.done(seq);
                if failures > 0 {
                    log::info!("sink {label}: delivering again after {failures} failed attempts");
                }
                failures = 0;
            }
            Err(why) => {
                failures += 1;
                let wait = sink.retry_delay(failures);
                // the first failure of a run is worth a warning; the rest repeat it
                if failures == 1 {
                    log::warn!("sink {label}: {why}; events wait in its queue, retrying");
                } else {
                    log::debug!("sink {label}: {why}; retrying in {wait:?}");
                }
                if q.is_closed() {
                    break;
                }
                let until = Instant::now() + wait;
                while Instant::now() < until && !q.is_closed() {
                    std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
                }
            }
        }
    }
    sink.close(q.close_by());
}

impl Sinks {
    /// Starts `sink` on its own thread behind a queue of `capacity` events.
    pub fn start(&mut self, name: &str, sink: Box<dyn Sink>, capacity: usize) {
        self.start_with(name, sink, capacity, None);
    }

    /// Starts `sink` as [`Sinks::start`] does; `policy` says which events it is given.
    pub fn start_with(
        &mut self,
        name: &str,
        mut sink: Box<dyn Sink>,
        capacity: usize,
        policy: Option<Policy>,
    ) {
        let queue = Arc::new(Queue::named(name, capacity));
        let q = Arc::clone(&queue);
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || run(&label, &q, sink.as_mut()))
            .expect("spawning a thread");
        self.running.push(Running {
            name: name.to_string(),
            policy,
            queue,
            thread,
        });
    }

    /// Queues an event for every sink whose policy lets it through; never waits.
    pub fn send(&mut self, e: &Event) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for r in &mut self.running {
            if let Some(p) = &mut r.policy {
                if let Err(why) = p.judge(e, now) {
                    let held = r.queue.held.fetch_add(1, Ordering::Relaxed) + 1;
                    if held.is_power_of_two() {
                        log::info!(
                            "sink {}: an event about {} held back ({why:?}; {held} so far)",
                            r.name,
                            e.device.mac
                        );
                    }
                    continue;
                }
            }
            r.queue.push(e.clone());
        }
    }

    /// Changes the policy of the sink named `name`, if it runs with one.
    pub fn configure(&mut self, name: &str, f: impl FnOnce(&mut Policy)) {
        if let Some(p) = self
            .running
            .iter_mut()
            .find(|r| r.name == name)
            .and_then(|r| r.policy.as_mut())
        {
            f(p);
        }
    }

    /// Each sink's name and counters.
    pub fn stats(&self) -> Vec<(String, QueueStats)> {
        self.running
            .iter()
            .map(|r| (r.name.clone(), r.queue.stats()))
            .collect()
    }

    /// Gives the sinks until `deadline` to deliver what waits, then closes them (a little
    /// longer: [`CLOSE_GRACE`]); returns the events left undelivered.
    pub fn shutdown(self, deadline: Instant) -> usize {
        while Instant::now() < deadline && self.running.iter().any(|r| r.queue.stats().queued > 0) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let close_by = Instant::now().max(deadline) + CLOSE_GRACE;
        for r in &self.running {
            r.queue.close(close_by);
        }
        let mut left = 0;
        for r in self.running {
            let st = r.queue.stats();
            left += st.queued;
            log::info!(
                "sink {}: {} events delivered, {} dropped (queue full), {} held back (alert \
                 policy), {} not delivered at exit",
                r.name,
                st.delivered,
                st.dropped,
                st.held,
                st.queued
            );
            while !r.thread.is_finished() && Instant::now() < close_by {
                std::thread::sleep(Duration::from_millis(5));
            }
            if r.thread.is_finished() {
                let _ = r.thread.join();
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DeviceRef, EventKind, Severity, ThresholdSource};

    fn event(n: u64) -> Event {
        Event {
            kind: EventKind::NewDevice,
            phase: None,
            incident: Some(n),
            device: DeviceRef {
                mac: "02:00:00:00:00:01".into(),
                ipv4: vec![],
                ipv6: vec![],
                name: String::new(),
                vendor_class: String::new(),
                randomized: false,
            },
            window_start: String::new(),
            window_end: String::new(),
            window_start_epoch: n,
            score: 0.0,
            threshold: 1.0,
            threshold_source: ThresholdSource::Population,
            severity: Severity::Low,
            behaviour: None,
            explanation: vec![],
            detail: None,
            role: None,
            counterpart: None,
        }
    }

    /// Fails its first `fail` deliveries, then records what it delivered.
    struct Flaky {
        fail: u32,
        got: Arc<Mutex<Vec<u64>>>,
    }

    impl Sink for Flaky {
        fn deliver(&mut self, e: &Event) -> Result<(), String> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err("down".into());
            }
            self.got.lock().unwrap().push(e.window_start_epoch);
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let q = Queue::new(3);
        for n in 0..5 {
            q.push(event(n));
        }
        let st = q.stats();
        assert_eq!((st.queued, st.dropped), (3, 2));
        let (seq, e) = q.front(Duration::ZERO).unwrap();
        assert_eq!((seq, e.window_start_epoch), (2, 2));
    }

    #[test]
    fn a_failing_sink_gets_every_event_in_order() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut sinks = Sinks::default();
        let flaky = Flaky {
            fail: 2,
            got: Arc::clone(&got),
        };
        sinks.start("flaky", Box::new(flaky), 100);
        for n in 0..10 {
            sinks.send(&event(n));
        }
        let left = sinks.shutdown(Instant::now() + Duration::from_secs(5));
        assert_eq!(left, 0);
        assert_eq!(*got.lock().unwrap(), (0..10).collect::<Vec<u64>>());
    }
}

//! The connection to the broker: rumqttc's synchronous client, driven on its own thread, and
//! publishes that return only when the broker acknowledged them.
//!
//! rumqttc's `Connection` must be iterated continuously, and it would reconnect at once, with
//! no pause, after every error; with a clean session, the requests it still holds at a
//! disconnect are dropped when the broker answers that it kept no session. So the driver
//! thread ([`drive`]) makes a fresh `Client`/`Connection` pair for every session, iterates it
//! until it fails, then waits (capped exponential backoff with jitter) before the next one;
//! nothing of a dead session survives into the next. [`Link::publish`] hands one QoS 1
//! publish to the current session and waits for its PUBACK: the caller's own queue stays the
//! source of truth, and an event leaves it only once acknowledged (at least once, in order).
//!
//! PUBACKs are matched by packet id: rumqttc reports each publish it writes
//! (`Outgoing::Publish(pkid)`) in the order the requests entered its channel, and the
//! publishes of a session enter that channel under our lock, so the n-th report is the n-th
//! request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS};

/// What the driver needs to open sessions.
pub struct LinkOptions {
    pub options: MqttOptions,
    /// Shown in logs: the broker's URL.
    pub broker: String,
    /// Subscribed to (QoS 1) at the start of every session.
    pub subscribe: Option<String>,
    /// Longest wait between two attempts to connect.
    pub retry_max: Duration,
}

/// Sessions start no sooner than this after the last one failed.
const RETRY_MIN: Duration = Duration::from_millis(500);
/// A session that lasted this long was a good one: the backoff starts over.
const STABLE: Duration = Duration::from_secs(10);
/// Requests waiting in rumqttc's channel (we have at most a few in flight).
const CHANNEL: usize = 64;
/// Largest packet either way (a discovery config is a few kB).
const MAX_PACKET: usize = 256 * 1024;

#[derive(Default)]
struct State {
    /// The session's client, while connected.
    client: Option<Client>,
    /// Sessions opened so far; a publish belongs to the session it was made in.
    epoch: u64,
    next_id: u64,
    /// Publishes handed to rumqttc that it has not reported writing yet, oldest first.
    unsent: VecDeque<u64>,
    /// Packet id -> publish, written and not acknowledged.
    inflight: HashMap<u16, u64>,
    acked: HashSet<u64>,
    /// Set when a message arrives on the subscribed topic; taken by [`Link::take_message`].
    message: Option<Vec<u8>>,
    /// Why the last session ended or the last attempt failed.
    last_error: Option<String>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection to one broker.
pub struct Link {
    shared: Arc<Shared>,
    driver: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts the driver thread; it connects, and reconnects, on its own.
    pub fn start(opts: LinkOptions) -> Link {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let driver = std::thread::Builder::new()
            .name("mqtt-connection".into())
            .spawn(move || drive(&s, &opts))
            .expect("spawning a thread");
        Link {
            shared,
            driver: Some(driver),
        }
    }

    /// The current session, waiting up to `timeout` for one; `Err` says why there is none.
    pub fn session(&self, timeout: Duration) -> Result<u64, String> {
        let st = self.shared.lock();
        let (st, _) = self
            .shared
            .changed
            .wait_timeout_while(st, timeout, |st| st.client.is_none() && !st.stop)
            .unwrap_or_else(|p| p.into_inner());
        match &st.client {
            Some(_) => Ok(st.epoch),
            None => Err(format!(
                "not connected ({})",
                st.last_error.as_deref().unwrap_or("connecting")
            )),
        }
    }

    /// Whether a session is open now.
    pub fn connected(&self) -> bool {
        self.shared.lock().client.is_some()
    }

    /// Publishes `payload` on `topic` with QoS 1 in the current session, and returns once the
    /// broker acknowledged it; an error when there is no session, the session ends first, or
    /// no PUBACK came within `timeout` (the caller publishes again: at least once).
    pub fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut st = self.shared.lock();
        let epoch = st.epoch;
        let Some(client) = &st.client else {
            return Err(format!(
                "not connected ({})",
                st.last_error.as_deref().unwrap_or("connecting")
            ));
        };
        client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .map_err(|e| format!("cannot publish on {topic}: {e}"))?;
        let id = st.next_id;
        st.next_id += 1;
        st.unsent.push_back(id);
        // late acknowledgements of earlier, timed-out publishes are of no use any more
        st.acked.retain(|a| *a > id);
        let (mut st, _) = self
            .shared
            .changed
            .wait_timeout_while(st, timeout, |st| {
                !st.acked.contains(&id) && st.epoch == epoch && st.client.is_some()
            })
            .unwrap_or_else(|p| p.into_inner());
        if st.acked.remove(&id) {
            return Ok(());
        }
        if st.epoch != epoch || st.client.is_none() {
            return Err(format!(
                "the connection ended before the broker acknowledged {topic} ({})",
                st.last_error.as_deref().unwrap_or("?")
            ));
        }
        Err(format!("no acknowledgement of {topic} within {timeout:?}"))
    }

    /// The last message that arrived on the subscribed topic since the last call.
    pub fn take_message(&self) -> Option<Vec<u8>> {
        self.shared.lock().message.take()
    }

    /// Ends the session cleanly (DISCONNECT: the broker drops the last will) and stops the
    /// driver, waiting for it until `deadline`.
    pub fn close(&mut self, deadline: Instant) {
        {
            let mut st = self.shared.lock();
            st.stop = true;
            if let Some(c) = &st.client {
                let _ = c.try_disconnect();
            }
        }
        self.shared.changed.notify_all();
        if let Some(driver) = self.driver.take() {
            while !driver.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if driver.is_finished() {
                let _ = driver.join();
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

/// The driver thread: one session after another until asked to stop.
fn drive(shared: &Shared, opts: &LinkOptions) {
    let mut backoff = RETRY_MIN;
    let mut jitter = Jitter::seeded();
    let mut failures = 0u32;
    let mut down_since: Option<Instant> = None;
    loop {
        if shared.lock().stop {
            return;
        }
        let (client, mut connection) = Client::new(opts.options.clone(), CHANNEL);
        let mut opened: Option<Instant> = None;
        let ended = loop {
            let event = match connection.recv() {
                Ok(e) => e,
                Err(_) => break "rumqttc stopped".to_string(),
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(t) = &opts.subscribe {
                        let _ = client.try_subscribe(t.as_str(), QoS::AtLeastOnce);
                    }
                    let mut st = shared.lock();
                    st.epoch += 1;
                    st.client = Some(client.clone());
                    st.unsent.clear();
                    st.inflight.clear();
                    st.acked.clear();
                    drop(st);
                    shared.changed.notify_all();
                    opened = Some(Instant::now());
                    match down_since.take() {
                        Some(t) => log::info!(
                            "mqtt: connected to {} again after {:.1} s ({failures} failed attempts)",
                            opts.broker,
                            t.elapsed().as_secs_f64()
                        ),
                        None => log::info!(
                            "mqtt: connected to {} as {}",
                            opts.broker,
                            opts.options.client_id()
                        ),
                    }
                    failures = 0;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                    let mut st = shared.lock();
                    if let Some(id) = st.unsent.pop_front() {
                        st.inflight.insert(pkid, id);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    let mut st = shared.lock();
                    if let Some(id) = st.inflight.remove(&ack.pkid) {
                        st.acked.insert(id);
                        drop(st);
                        shared.changed.notify_all();
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if opts.subscribe.as_deref() == Some(p.topic.as_str()) {
                        shared.lock().message = Some(p.payload.to_vec());
                        shared.changed.notify_all();
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break "disconnected".to_string(),
                Ok(_) => {}
                Err(e) => break describe(&e),
            }
        };
        drop(connection);
        let stop = {
            let mut st = shared.lock();
            st.client = None;
            st.last_error = Some(ended.clone());
            st.stop
        };
        shared.changed.notify_all();
        if stop {
            return;
        }
        failures += 1;
        match opened {
            Some(t) => {
                log::warn!(
                    "mqtt: connection to {} lost ({ended}); reconnecting",
                    opts.broker
                );
                down_since = Some(Instant::now());
                if t.elapsed() >= STABLE {
                    backoff = RETRY_MIN;
                }
            }
            None if failures == 1 && down_since.is_none() => {
                log::warn!(
                    "mqtt: cannot connect to {} ({ended}); retrying with backoff up to {:?}",
                    opts.broker,
                    opts.retry_max
                );
                down_since = Some(Instant::now());
            }
            None => log::debug!("mqtt: cannot connect to {} ({ended})", opts.broker),
        }
        // capped exponential backoff, each wait drawn from its upper half
        let wait = backoff / 2 + backoff.mul_f64(jitter.next() / 2.0);
        backoff = (backoff * 2).min(opts.retry_max.max(RETRY_MIN));
        let st = shared.lock();
        let _ = shared
            .changed
            .wait_timeout_while(st, wait, |st| !st.stop)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// A connection error as a person reads it.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        ConnectionError::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// xorshift64*, seeded from the clock and the process id: jitter needs no better.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Jitter(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// rumqttc's options for one broker.
pub fn options(
    client_id: &str,
    host: &str,
    port: u16,
    keepalive: Duration,
    will: (String, &'static str),
) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(keepalive)
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(rumqttc::LastWill::new(
            will.0,
            will.1,
            QoS::AtLeastOnce,
            true,
        ));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_its_range() {
        let mut j = Jitter::seeded();
        let draws: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }
}

//! The pure dependency state machine: a state and an event in, a state out.
//!
//! Nothing here performs I/O or reads a clock; the registry feeds it probe
//! results, traffic outcomes and timestamps, which keeps every rule testable.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Fault;

/// Where a dependency stands, as shown by `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No probe has finished yet.
    Initializing,
    /// The last probes succeeded.
    Connected,
    /// Probes or traffic failed; routes that need it answer 503.
    Unavailable,
    /// Not configured; never probed.
    Disabled,
}

impl Status {
    /// The lowercase name used in health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::Connected => "connected",
            Status::Unavailable => "unavailable",
            Status::Disabled => "disabled",
        }
    }
}

/// Something that happened to a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A background probe succeeded.
    ProbeSucceeded,
    /// A background probe failed or timed out.
    ProbeFailed(Fault),
    /// Real traffic failed with a connection-class error: the dependency is
    /// certainly unreachable, so no threshold applies.
    TrafficFailed(Fault),
    /// Real traffic timed out, or failed in a way that may or may not be the
    /// dependency's (a protocol error): suspicious, but one request's slow
    /// or refused statement is not an outage, so it changes nothing by
    /// itself and only asks for an immediate probe, which decides. One
    /// organization's heavy query must not make the database look down for
    /// every other organization.
    TrafficSuspect,
    /// Real traffic succeeded.
    TrafficSucceeded,
}

/// How many agreeing probes it takes to change a settled state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failures that turn `connected` into `unavailable`.
    pub failures: u32,
    /// Consecutive successes that turn `unavailable` into `connected`.
    pub successes: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failures: 2,
            successes: 2,
        }
    }
}

/// The kept state of one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepState {
    /// The current status.
    pub status: Status,
    /// When the status last changed.
    pub since: DateTime<Utc>,
    /// When a probe or a query last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When a probe or a query last failed.
    pub last_failure: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Successes since the last failure.
    pub consecutive_successes: u32,
    /// The most recent fault, kept until the dependency is connected again.
    pub last_error: Option<Fault>,
    /// Whether it was ever connected since the process started.
    pub initialized: bool,
}

/// The outcome of applying one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state after the event.
    pub state: DepState,
    /// Whether `status` changed.
    pub changed: bool,
    /// Whether the monitor should probe again now instead of waiting for
    /// its next tick (to confirm a first failure, or a success seen while down).
    pub reprobe_now: bool,
}

impl DepState {
    /// The state of a dependency that will be probed.
    pub fn initializing(now: DateTime<Utc>) -> Self {
        DepState::with_status(Status::Initializing, now)
    }

    /// The state of a dependency that is not configured.
    pub fn disabled(now: DateTime<Utc>) -> Self {
        DepState::with_status(Status::Disabled, now)
    }

    fn with_status(status: Status, now: DateTime<Utc>) -> Self {
        DepState {
            status,
            since: now,
            last_success: None,
            last_failure: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_error: None,
            initialized: false,
        }
    }

    /// Applies `event`, which happened at `now`.
    pub fn apply(&self, event: Event, now: DateTime<Utc>, thresholds: Thresholds) -> Transition {
        let mut next = self.clone();
        let mut reprobe_now = false;
        if self.status == Status::Disabled {
            return Transition {
                state: next,
                changed: false,
                reprobe_now,
            };
        }
        let target = match event {
            Event::ProbeSucceeded | Event::TrafficSucceeded => {
                next.consecutive_successes = next.consecutive_successes.saturating_add(1);
                next.consecutive_failures = 0;
                next.last_success = Some(now);
                match self.status {
                    Status::Initializing => Status::Connected,
                    Status::Unavailable if event == Event::TrafficSucceeded => {
                        // Traffic got through while we thought it was down:
                        // let a probe confirm rather than trusting one query.
                        reprobe_now = true;
                        Status::Unavailable
                    }
                    Status::Unavailable if next.consecutive_successes >= thresholds.successes => {
                        Status::Connected
                    }
                    Status::Unavailable => {
                        reprobe_now = true;
                        Status::Unavailable
                    }
                    other => other,
                }
            }
            Event::ProbeFailed(fault) | Event::TrafficFailed(fault) => {
                next.record_failure(Some(fault), now);
                let certain = matches!(event, Event::TrafficFailed(_))
                    || fault.transience == crate::error::Transience::Permanent;
                self.after_failure(&next, certain, thresholds, &mut reprobe_now)
            }
            Event::TrafficSuspect => {
                reprobe_now = self.status == Status::Connected;
                self.status
            }
        };
        let changed = target != self.status;
        if changed {
            next.status = target;
            next.since = now;
        }
        if next.status == Status::Connected {
            next.initialized = true;
            next.last_error = None;
        }
        Transition {
            state: next,
            changed,
            reprobe_now,
        }
    }

    fn record_failure(&mut self, fault: Option<Fault>, now: DateTime<Utc>) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.consecutive_successes = 0;
        self.last_failure = Some(now);
        if fault.is_some() {
            self.last_error = fault;
        }
    }

    fn after_failure(
        &self,
        next: &DepState,
        certain: bool,
        thresholds: Thresholds,
        reprobe_now: &mut bool,
    ) -> Status {
        match self.status {
            // Nothing is known yet: do not make callers wait for a threshold.
            Status::Initializing => Status::Unavailable,
            Status::Connected if certain || next.consecutive_failures >= thresholds.failures => {
                Status::Unavailable
            }
            Status::Connected => {
                *reprobe_now = true;
                Status::Connected
            }
            other => other,
        }
    }
}

/// How often the monitor probes a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Interval between probes while connected.
    pub interval_up: Duration,
    /// First retry delay while unavailable or initializing.
    pub retry_min: Duration,
    /// Longest retry delay while unavailable; kept below `interval_up` so an
    /// outage is left as soon as possible.
    pub retry_max: Duration,
    /// How long one probe may take before it counts as failed.
    pub timeout: Duration,
    /// Agreeing probes needed to change a settled state.
    pub thresholds: Thresholds,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            interval_up: Duration::from_millis(500),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_millis(400),
            timeout: Duration::from_millis(1000),
            thresholds: Thresholds::default(),
        }
    }
}

impl ProbePolicy {
    /// The delay before the next probe.
    ///
    /// `jitter` is a number in `[0, 1)` supplied by the caller; it spreads
    /// retries by up to ±20 % so that many processes do not probe in step.
    pub fn next_delay(&self, state: &DepState, reprobe_now: bool, jitter: f64) -> Duration {
        if reprobe_now {
            return self.retry_min;
        }
        let base = match state.status {
            Status::Connected => return self.interval_up,
            Status::Disabled => return self.interval_up,
            Status::Initializing => self.retry_min,
            // Someone has to fix a permanent fault (a password, a migration):
            // probing fast would only add noise until they do.
            Status::Unavailable
                if state.last_error.map(|f| f.transience)
                    == Some(crate::error::Transience::Permanent) =>
            {
                return self.interval_up;
            }
            Status::Unavailable => {
                // Exponential backoff from retry_min, capped at retry_max.
                let exponent = state.consecutive_failures.saturating_sub(1).min(16);
                self.retry_min
                    .saturating_mul(1u32 << exponent)
                    .min(self.retry_max)
            }
        };
        #[allow(clippy::float_arithmetic)] // jitter is a ratio, not money
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Transience;

    const REFUSED: Fault = Fault::temporary("CONNECTION_REFUSED");
    const BAD_PASSWORD: Fault = Fault::permanent("AUTHENTICATION_FAILED");

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn run(events: &[Event]) -> DepState {
        let mut state = DepState::initializing(t(0));
        for (i, event) in events.iter().enumerate() {
            state = state
                .apply(*event, t(i as i64 + 1), Thresholds::default())
                .state;
        }
        state
    }

    #[test]
    fn first_probe_decides_without_threshold() {
        assert_eq!(run(&[Event::ProbeSucceeded]).status, Status::Connected);
        let down = run(&[Event::ProbeFailed(REFUSED)]);
        assert_eq!(down.status, Status::Unavailable);
        assert!(!down.initialized);
        assert_eq!(down.last_error, Some(REFUSED));
    }

    #[test]
    fn one_failed_probe_while_connected_is_confirmed_before_flipping() {
        let connected = run(&[Event::ProbeSucceeded]);
        let once = connected.apply(Event::ProbeFailed(REFUSED), t(10), Thresholds::default());
        assert_eq!(once.state.status, Status::Connected);
        assert!(
            once.reprobe_now,
            "a first failure must be confirmed quickly"
        );
        assert!(!once.changed);
        let twice = once
            .state
            .apply(Event::ProbeFailed(REFUSED), t(11), Thresholds::default());
        assert_eq!(twice.state.status, Status::Unavailable);
        assert!(twice.changed);
        assert_eq!(twice.state.since, t(11));
        assert_eq!(twice.state.consecutive_failures, 2);
    }

    #[test]
    fn traffic_connection_error_marks_unavailable_at_once() {
        let connected = run(&[Event::ProbeSucceeded]);
        let next = connected.apply(Event::TrafficFailed(REFUSED), t(5), Thresholds::default());
        assert_eq!(next.state.status, Status::Unavailable);
        assert!(next.changed);
    }

    #[test]
    fn permanent_probe_fault_marks_unavailable_at_once() {
        let connected = run(&[Event::ProbeSucceeded]);
        let next = connected.apply(
            Event::ProbeFailed(BAD_PASSWORD),
            t(5),
            Thresholds::default(),
        );
        assert_eq!(next.state.status, Status::Unavailable);
        assert_eq!(
            next.state.last_error.map(|f| f.transience),
            Some(Transience::Permanent)
        );
    }

    #[test]
    fn recovery_needs_consecutive_successes() {
        let down = run(&[Event::ProbeSucceeded, Event::TrafficFailed(REFUSED)]);
        let one = down.apply(Event::ProbeSucceeded, t(20), Thresholds::default());
        assert_eq!(one.state.status, Status::Unavailable);
        assert!(one.reprobe_now);
        // A failure in between resets the count: flapping does not recover.
        let flap = one
            .state
            .apply(Event::ProbeFailed(REFUSED), t(21), Thresholds::default());
        let again = flap
            .state
            .apply(Event::ProbeSucceeded, t(22), Thresholds::default());
        assert_eq!(again.state.status, Status::Unavailable);
        let two = again
            .state
            .apply(Event::ProbeSucceeded, t(23), Thresholds::default());
        assert_eq!(two.state.status, Status::Connected);
        assert!(two.changed);
        assert_eq!(two.state.last_error, None);
        assert_eq!(two.state.last_success, Some(t(23)));
    }

    #[test]
    fn traffic_success_while_down_asks_for_a_probe_but_does_not_recover() {
        let down = run(&[Event::ProbeFailed(REFUSED)]);
        let next = down.apply(Event::TrafficSucceeded, t(9), Thresholds::default());
        assert_eq!(next.state.status, Status::Unavailable);
        assert!(next.reprobe_now);
    }

    #[test]
    fn suspect_traffic_asks_for_a_probe_and_changes_nothing() {
        let connected = run(&[Event::ProbeSucceeded]);
        let mut state = connected.clone();
        for i in 0..10 {
            let next = state.apply(Event::TrafficSuspect, t(3 + i), Thresholds::default());
            assert_eq!(next.state.status, Status::Connected);
            assert_eq!(next.state.consecutive_failures, 0);
            assert!(next.reprobe_now);
            assert!(!next.changed);
            state = next.state;
        }
        // Only the probe it asked for moves the state.
        let probed = state.apply(Event::ProbeFailed(REFUSED), t(20), Thresholds::default());
        assert_eq!(probed.state.status, Status::Connected);
        assert!(probed.reprobe_now);
    }

    #[test]
    fn disabled_ignores_everything() {
        let disabled = DepState::disabled(t(0));
        for event in [
            Event::ProbeSucceeded,
            Event::ProbeFailed(REFUSED),
            Event::TrafficFailed(REFUSED),
        ] {
            let next = disabled.apply(event, t(1), Thresholds::default());
            assert_eq!(next.state, disabled);
            assert!(!next.changed);
        }
    }

    #[test]
    fn probes_are_faster_while_down_and_back_off_with_a_cap() {
        let policy = ProbePolicy::default();
        let up = run(&[Event::ProbeSucceeded]);
        assert_eq!(policy.next_delay(&up, false, 0.5), policy.interval_up);
        let mut down = run(&[Event::ProbeFailed(REFUSED)]);
        let first = policy.next_delay(&down, false, 0.5);
        assert_eq!(first, policy.retry_min);
        for i in 0..10 {
            down = down
                .apply(
                    Event::ProbeFailed(REFUSED),
                    t(100 + i),
                    Thresholds::default(),
                )
                .state;
        }
        let later = policy.next_delay(&down, false, 0.5);
        assert_eq!(later, policy.retry_max);
        assert!(later < policy.interval_up);
        // Jitter stays within ±20 %.
        let low = policy.next_delay(&down, false, 0.0);
        let high = policy.next_delay(&down, false, 0.999);
        assert!(low >= policy.retry_max.mul_f64(0.79) && high <= policy.retry_max.mul_f64(1.21));
        assert!(low < high);
    }
}

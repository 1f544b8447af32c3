//! The dependency registry: what the service depends on, how each is probed,
//! and the kept state every guard and health request reads.
//!
//! Each dependency gets a background monitor task that probes it with its own
//! timeout, quickly while it is down and at a steady interval while it is up.
//! Real traffic reports into the same state machine through
//! [`Dependency::report`]. For a dependency that learns from traffic (the
//! third-party APIs, whose providers limit calls per client), a call of
//! real traffic that succeeded counts as a probe: while traffic succeeds,
//! the monitor does not probe at all.

mod http_probe;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::error::Fault;
use crate::health::{DepState, Event, ProbePolicy, Status, Transition};
use crate::metrics::Metrics;

pub use http_probe::{PLAID_VERSION, PlaidProbe, StripeProbe};

/// The name of the database dependency.
pub const DATABASE: &str = "database";
/// The name of the standby that reports read from (`DATABASE_REPORTS_URL`).
pub const REPORTS_DATABASE: &str = "reportsDatabase";
/// The name of the Redis dependency.
pub const REDIS: &str = "redis";
/// The name of the Stripe dependency.
pub const STRIPE: &str = "stripe";
/// The name of the Plaid dependency.
pub const PLAID: &str = "plaid";

/// Checks whether a dependency can be used right now.
///
/// Implementations answer quickly and never retry: the monitor owns timing,
/// timeouts and retries.
pub trait Probe: Send + Sync + 'static {
    /// Runs one check.
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>>;
}

/// What a route answers while a dependency it needs is down, or when it
/// is not configured at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable {
    /// The contract's machine code, e.g. `DATABASE_UNAVAILABLE`.
    pub code: &'static str,
    /// The sentence shown to the client.
    pub message: &'static str,
    /// The `Retry-After` of the answer, in seconds.
    pub retry_after: u32,
}

/// The `Retry-After` of a dependency that is not configured: only an
/// operator's change and a restart help, so clients need not come back
/// every second (Stripe retries on its own schedule whatever this says).
pub const NOT_CONFIGURED_RETRY_AFTER: u32 = 300;

/// Describes one dependency before the registry is built.
pub struct DependencySpec {
    name: &'static str,
    probe: Option<Arc<dyn Probe>>,
    critical: bool,
    unavailable: Unavailable,
    not_configured: Unavailable,
    policy: ProbePolicy,
    learns_from_traffic: bool,
}

impl DependencySpec {
    /// A dependency probed by `probe`.
    pub fn new(name: &'static str, probe: Arc<dyn Probe>) -> Self {
        DependencySpec {
            name,
            probe: Some(probe),
            critical: false,
            unavailable: Unavailable {
                code: "DEPENDENCY_UNAVAILABLE",
                message: "A service this request needs is unavailable. Please retry shortly.",
                retry_after: 1,
            },
            not_configured: Unavailable {
                code: "DEPENDENCY_NOT_CONFIGURED",
                message: "A service this request needs is not configured on this server.",
                retry_after: NOT_CONFIGURED_RETRY_AFTER,
            },
            policy: ProbePolicy::default(),
            learns_from_traffic: false,
        }
    }

    /// A call of real traffic that succeeded counts as a probe while the
    /// dependency is connected: the next probe waits a whole
    /// `interval_up` from it. For providers that limit calls per client.
    pub fn learns_from_traffic(mut self) -> Self {
        self.learns_from_traffic = true;
        self
    }

    /// A dependency that is not configured: always `disabled`, never probed.
    pub fn disabled(name: &'static str) -> Self {
        DependencySpec {
            probe: None,
            ..DependencySpec::new(name, Arc::new(NeverProbed))
        }
    }

    /// Marks it critical: while it is down, health reports `unhealthy` (503).
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Sets the 503 answer of routes that need it.
    pub fn unavailable(mut self, code: &'static str, message: &'static str) -> Self {
        self.unavailable = Unavailable {
            code,
            message,
            retry_after: 1,
        };
        self
    }

    /// Sets the 503 answer of routes that need it while it is not
    /// configured (`disabled`): a sentence naming what to set, since
    /// retrying will not help.
    pub fn not_configured(mut self, code: &'static str, message: &'static str) -> Self {
        self.not_configured = Unavailable {
            code,
            message,
            retry_after: NOT_CONFIGURED_RETRY_AFTER,
        };
        self
    }

    /// Sets the probing policy.
    pub fn policy(mut self, policy: ProbePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The dependency's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

struct NeverProbed;

impl Probe for NeverProbed {
    fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
        Box::pin(async { Err(Fault::permanent("DISABLED")) })
    }
}

/// One dependency and its kept state.
pub struct Dependency {
    name: &'static str,
    probe: Option<Arc<dyn Probe>>,
    critical: bool,
    unavailable: Unavailable,
    not_configured: Unavailable,
    policy: ProbePolicy,
    state: Mutex<DepState>,
    // Read on every guarded request; kept apart from the mutex so the hot
    // path is one atomic load.
    available: AtomicBool,
    wake: Notify,
    // Wakes every operation waiting on this dependency when it goes down.
    went_down: Notify,
    metrics: Metrics,
    learns_from_traffic: bool,
    // Since `started`, in ms, when real traffic last succeeded (0: never).
    traffic_succeeded_ms: AtomicU64,
    started: Instant,
}

impl Dependency {
    /// The dependency's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it is critical to the host.
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// Whether it is configured at all.
    pub fn is_enabled(&self) -> bool {
        self.probe.is_some()
    }

    /// Whether it is connected now. One atomic load.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// What routes answer while it is down, or, when it is not configured,
    /// that it is not.
    pub fn unavailable(&self) -> Unavailable {
        if self.is_enabled() {
            self.unavailable
        } else {
            self.not_configured
        }
    }

    /// A copy of the kept state.
    pub fn state(&self) -> DepState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Feeds an event into the state machine.
    pub fn report(&self, event: Event) -> Transition {
        let now = Utc::now();
        let transition = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let transition = state.apply(event, now, self.policy.thresholds);
            *state = transition.state.clone();
            self.available.store(
                transition.state.status == Status::Connected,
                Ordering::Release,
            );
            transition
        };
        if transition.changed {
            let status = transition.state.status;
            self.metrics.set_dependency_status(self.name, status, true);
            match (status, transition.state.last_error) {
                (Status::Unavailable, Some(fault)) => tracing::warn!(
                    dependency = self.name,
                    code = fault.code,
                    transience = fault.transience.as_str(),
                    "dependency unavailable"
                ),
                _ => tracing::info!(
                    dependency = self.name,
                    status = status.as_str(),
                    "dependency status changed"
                ),
            }
        }
        if transition.reprobe_now || (transition.changed && !self.is_available()) {
            self.wake.notify_one();
        }
        if transition.changed && !self.is_available() {
            self.went_down.notify_waiters();
        }
        transition
    }

    /// Resolves once the dependency is not available: at once if it is not
    /// now, else when it goes down. Operations race their work against it,
    /// so that those already waiting (for a pooled connection, say) are
    /// answered as soon as an outage is known, not at their own timeout.
    pub async fn until_unavailable(&self) {
        loop {
            let notified = self.went_down.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a change in between is seen.
            notified.as_mut().enable();
            if !self.is_available() {
                return;
            }
            notified.await;
        }
    }

    /// Reports a successful use by real traffic. Cheap while connected: only
    /// a success seen during an outage reaches the state machine.
    pub fn report_success(&self) {
        if self.learns_from_traffic {
            let at = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.traffic_succeeded_ms
                .store(at.max(1), Ordering::Relaxed);
        }
        if !self.is_available() && self.is_enabled() {
            self.report(Event::TrafficSucceeded);
        }
    }

    /// How much longer a recent success of real traffic stands in for a
    /// probe: `None` when a probe is due (no such success within
    /// `interval_up`, the dependency not connected, or it does not learn
    /// from traffic).
    fn traffic_covers(&self) -> Option<Duration> {
        if !self.learns_from_traffic || !self.is_available() {
            return None;
        }
        let at = self.traffic_succeeded_ms.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        let since = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(at));
        self.policy
            .interval_up
            .checked_sub(since)
            .filter(|left| !left.is_zero())
    }

    async fn monitor(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, first: FirstRound) {
        let Some(probe) = self.probe.clone() else {
            return;
        };
        let mut first = Some(first);
        loop {
            let started = Instant::now();
            let outcome = tokio::time::timeout(self.policy.timeout, probe.check()).await;
            self.metrics.observe_probe(self.name, started.elapsed());
            let event = match outcome {
                Ok(Ok(())) => Event::ProbeSucceeded,
                Ok(Err(fault)) => Event::ProbeFailed(fault),
                Err(_) => Event::ProbeFailed(Fault::TIMEOUT),
            };
            let transition = self.report(event);
            if let Some(first) = first.take() {
                first.done();
            }
            let jitter: f64 = rand::rng().random();
            let delay = self
                .policy
                .next_delay(&transition.state, transition.reprobe_now, jitter);
            let woken = tokio::select! {
                () = tokio::time::sleep(delay) => false,
                () = self.wake.notified() => true,
                _ = shutdown.changed() => return,
            };
            if *shutdown.borrow() {
                return;
            }
            // Traffic that succeeded since the last probe said as much as
            // this probe would: wait on from it. Not when this probe was
            // asked for (traffic met a fault, or a failure is re-checked).
            let asked = woken || transition.reprobe_now;
            while let Some(left) = self.traffic_covers().filter(|_| !asked) {
                tokio::select! {
                    () = tokio::time::sleep(left) => {}
                    () = self.wake.notified() => break,
                    _ = shutdown.changed() => return,
                }
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Counts down the dependencies whose first probe has not finished.
struct FirstRound(Arc<watch::Sender<usize>>);

impl FirstRound {
    fn done(self) {
        self.0
            .send_modify(|pending| *pending = pending.saturating_sub(1));
    }
}

/// All dependencies of one instance.
pub struct Registry {
    deps: Vec<Arc<Dependency>>,
    pending_first_round: Arc<watch::Sender<usize>>,
}

impl Registry {
    /// Builds the registry. Names must be unique.
    pub fn new(specs: Vec<DependencySpec>, metrics: &Metrics) -> crate::Result<Self> {
        let now = Utc::now();
        let mut deps: Vec<Arc<Dependency>> = Vec::with_capacity(specs.len());
        for spec in specs {
            if deps.iter().any(|d| d.name == spec.name) {
                return Err(crate::Error::Setup(format!(
                    "the dependency {:?} is registered twice",
                    spec.name
                )));
            }
            let state = if spec.probe.is_some() {
                DepState::initializing(now)
            } else {
                DepState::disabled(now)
            };
            metrics.set_dependency_status(spec.name, state.status, false);
            deps.push(Arc::new(Dependency {
                name: spec.name,
                probe: spec.probe,
                critical: spec.critical,
                unavailable: spec.unavailable,
                not_configured: spec.not_configured,
                policy: spec.policy,
                state: Mutex::new(state),
                available: AtomicBool::new(false),
                wake: Notify::new(),
                went_down: Notify::new(),
                metrics: metrics.clone(),
                learns_from_traffic: spec.learns_from_traffic,
                traffic_succeeded_ms: AtomicU64::new(0),
                started: Instant::now(),
            }));
        }
        let probed = deps.iter().filter(|d| d.is_enabled()).count();
        Ok(Registry {
            deps,
            pending_first_round: Arc::new(watch::Sender::new(probed)),
        })
    }

    /// The dependency called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Dependency>> {
        self.deps.iter().find(|d| d.name == name)
    }

    /// Every dependency, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Dependency>> {
        self.deps.iter()
    }

    /// Starts one monitor task per enabled dependency; they stop when
    /// `shutdown` turns true.
    pub fn spawn_monitors(&self, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        self.deps
            .iter()
            .filter(|d| d.is_enabled())
            .map(|d| {
                let first = FirstRound(self.pending_first_round.clone());
                tokio::spawn(Arc::clone(d).monitor(shutdown.clone(), first))
            })
            .collect()
    }

    /// Resolves once every enabled dependency has finished its first probe.
    pub async fn first_round(&self) {
        let mut rx = self.pending_first_round.subscribe();
        // The sender lives as long as self, so this cannot fail.
        let _ = rx.wait_for(|pending| *pending == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn webhook_providers_are_dependencies() {
        assert_eq!(crate::metrics::WEBHOOK_PROVIDERS, [STRIPE, PLAID]);
    }

    /// A probe whose answer the test sets.
    struct Switch {
        up: AtomicBool,
        calls: AtomicUsize,
    }

    impl Probe for Switch {
        fn check(&self) -> BoxFuture<'_, Result<(), Fault>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let up = self.up.load(Ordering::SeqCst);
            Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err(Fault::temporary("CONNECTION_REFUSED"))
                }
            })
        }
    }

    fn fast() -> ProbePolicy {
        ProbePolicy {
            interval_up: Duration::from_millis(200),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(40),
            ..ProbePolicy::default()
        }
    }

    async fn wait_for(dep: &Dependency, status: Status) {
        for _ in 0..300 {
            if dep.state().status == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never became {status:?}", dep.name());
    }

    /// While real traffic succeeds, a provider is not probed; idle, it is
    /// probed every `interval_up` again.
    #[tokio::test]
    async fn succeeding_traffic_stands_in_for_probes() {
        let switch = Arc::new(Switch {
            up: AtomicBool::new(true),
            calls: AtomicUsize::new(0),
        });
        let registry = Registry::new(
            vec![
                DependencySpec::new(PLAID, switch.clone())
                    .policy(fast())
                    .learns_from_traffic(),
            ],
            &Metrics::new(),
        )
        .unwrap();
        let (stop, stopped) = watch::channel(false);
        let _tasks = registry.spawn_monitors(&stopped);
        registry.first_round().await;
        let plaid = registry.get(PLAID).unwrap();
        assert_eq!(plaid.state().status, Status::Connected);
        let probed = switch.calls.load(Ordering::SeqCst);
        // Traffic every 50 ms for 1 s (five intervals): no probe.
        for _ in 0..20 {
            plaid.report_success();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(switch.calls.load(Ordering::SeqCst), probed);
        // Idle: probed again within an interval (and a little).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(switch.calls.load(Ordering::SeqCst) > probed);
        stop.send(true).unwrap();
    }

    #[tokio::test]
    async fn monitor_follows_the_probe_and_traffic() {
        let switch = Arc::new(Switch {
            up: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let metrics = Metrics::new();
        let registry = Registry::new(
            vec![
                DependencySpec::new(DATABASE, switch.clone()).policy(fast()),
                DependencySpec::disabled(STRIPE),
            ],
            &metrics,
        )
        .unwrap();
        let (stop, stopped) = watch::channel(false);
        let tasks = registry.spawn_monitors(&stopped);
        assert_eq!(tasks.len(), 1, "disabled dependencies are not monitored");
        registry.first_round().await;
        let db = registry.get(DATABASE).unwrap();
        assert_eq!(db.state().status, Status::Unavailable);
        assert_eq!(
            registry.get(STRIPE).unwrap().state().status,
            Status::Disabled
        );

        switch.up.store(true, Ordering::SeqCst);
        wait_for(db, Status::Connected).await;
        assert!(db.is_available());

        // A connection error from traffic flips it at once, and the monitor
        // brings it back by itself once probes pass again.
        db.report(Event::TrafficFailed(Fault::temporary("CONNECTION_RESET")));
        assert!(!db.is_available());
        wait_for(db, Status::Connected).await;
        let text = metrics.render(Duration::ZERO, Default::default());
        assert!(text.contains(
            "accubooks_dependency_state_changes_total{dependency=\"database\",to=\"unavailable\"} 2"
        ), "{text}");

        stop.send(true).unwrap();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .expect("monitors stop on shutdown")
                .unwrap();
        }
    }

    #[test]
    fn names_are_unique() {
        let metrics = Metrics::new();
        let result = Registry::new(
            vec![
                DependencySpec::disabled(PLAID),
                DependencySpec::disabled(PLAID),
            ],
            &metrics,
        );
        assert!(matches!(result, Err(crate::Error::Setup(_))));
    }
}

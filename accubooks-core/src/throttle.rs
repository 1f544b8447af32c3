//! Attempt budgets: per-key rate limits (GCRA) for requests, logins,
//! registrations and signed webhooks, so that one client, one address or one
//! guesser cannot take what others need.

use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

/// A client went over a rate limit: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Too many attempts. Retry in {retry_after} seconds.")]
pub struct Throttled {
    /// Seconds to wait.
    pub retry_after: u64,
}

/// A keyed rate limiter (a `governor` GCRA per key): each key (an e-mail
/// address, a client address) gets a burst of attempts that refills over
/// time. Keys whose budget is full again are forgotten every second, so
/// memory follows the keys seen recently; callers bound each key's length.
pub struct KeyedLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
}

impl KeyedLimiter {
    /// A burst of `burst` attempts per key, refilling one every `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        let burst = std::num::NonZeroU32::new(burst.max(1)).expect("at least 1");
        let quota = governor::Quota::with_period(refill.max(Duration::from_millis(1)))
            .expect("a non-zero period")
            .allow_burst(burst);
        KeyedLimiter {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }

    /// Spends one attempt of `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Throttled> {
        use governor::clock::{Clock, DefaultClock};
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Throttled {
                    retry_after: wait.as_secs().max(1),
                }
            })
    }

    /// Forgets keys whose budget is full again, bounding memory.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
    }

    /// How many keys it holds now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// Counts of failures that fade: each key may fail `burst` times at once,
/// then once per `refill` (a GCRA kept as the instant at which the key's
/// counted failures have all faded). Unlike a [`KeyedLimiter`] it can be
/// read without spending, so a login can ask "has this address failed for
/// this e-mail?" before it decides, and only failures spend it.
pub struct FailureBudget {
    burst: u32,
    refill: Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl FailureBudget {
    /// `burst` failures at once, then one every `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        FailureBudget {
            burst: burst.max(1),
            refill: refill.max(Duration::from_millis(1)),
            entries: std::sync::Mutex::default(),
        }
    }

    /// How long until the counted failures of `key` have all faded.
    fn pending(&self, key: &str) -> Duration {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).map_or(Duration::ZERO, |faded| {
            faded.saturating_duration_since(std::time::Instant::now())
        })
    }

    /// Whether `key` has failed recently (a failure not yet faded).
    pub fn has_failed(&self, key: &str) -> bool {
        !self.pending(key).is_zero()
    }

    /// Refuses when `key` has used its budget: how long until it may fail again.
    pub fn check(&self, key: &str) -> Result<(), Throttled> {
        let after = self.pending(key) + self.refill;
        let allowed = self.refill * self.burst;
        match after.checked_sub(allowed) {
            Some(wait) if !wait.is_zero() => Err(Throttled {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }),
            _ => Ok(()),
        }
    }

    /// Counts one failure of `key`.
    pub fn record(&self, key: &str) {
        let pending = self.pending(key);
        let faded = std::time::Instant::now() + pending + self.refill;
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), faded);
    }

    /// Forgets keys whose failures have faded away, bounding memory.
    pub fn forget_idle(&self) {
        let now = std::time::Instant::now();
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, faded| *faded > now);
    }

    /// How many keys it holds now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed signatures one client address may send to a signed webhook at
/// once (a provider's retries of a misconfigured secret stay well within
/// it)...
pub const WEBHOOK_SIGNATURE_FAILURES: u32 = 20;
/// ...and how often the budget grows by one again (20 a minute).
pub const WEBHOOK_SIGNATURE_REFILL: Duration = Duration::from_secs(3);

/// The attempt budgets of the public routes: auth and signed webhooks.
///
/// Login failures are counted per (e-mail, client address) pair, so a
/// stranger who guesses wrong ten times locks out only their own address,
/// never the account's owner. A looser budget per e-mail address in all
/// slows a guesser spread over many addresses; once it is spent, only an
/// address that has not failed for that e-mail still gets its password
/// checked, so the owner's correct password goes through.
pub struct AuthLimits {
    /// Login attempts per client address (every attempt, right or wrong):
    /// ten at once, then one every six seconds, so one client cannot try
    /// an invented e-mail address after another.
    pub login: KeyedLimiter,
    /// Failed logins per (e-mail, client address): ten at once, then one
    /// every six seconds.
    pub login_failures: FailureBudget,
    /// Failed logins per e-mail address from every client together: a
    /// hundred at once, then one every six seconds.
    pub email_failures: FailureBudget,
    /// Registration, per client address: `REGISTRATIONS_PER_HOUR` at once,
    /// refilling evenly over the hour.
    pub register: KeyedLimiter,
    /// Failed webhook signatures, per client address:
    /// [`WEBHOOK_SIGNATURE_FAILURES`] at once, one more every
    /// [`WEBHOOK_SIGNATURE_REFILL`]. Valid signatures spend nothing.
    pub webhook_signatures: FailureBudget,
}

impl AuthLimits {
    /// The budgets, with `registrations_per_hour` per client address.
    pub fn new(registrations_per_hour: u32) -> Self {
        let per_hour = registrations_per_hour.max(1);
        AuthLimits {
            login: KeyedLimiter::new(10, Duration::from_secs(6)),
            login_failures: FailureBudget::new(10, Duration::from_secs(6)),
            email_failures: FailureBudget::new(100, Duration::from_secs(6)),
            register: KeyedLimiter::new(per_hour, Duration::from_secs(3600) / per_hour),
            webhook_signatures: FailureBudget::new(
                WEBHOOK_SIGNATURE_FAILURES,
                WEBHOOK_SIGNATURE_REFILL,
            ),
        }
    }

    /// Whether `client` may have a webhook signature checked now (it has
    /// not sent too many bad ones); spends nothing. Clients of unknown
    /// address (an embedding host's own calls) are not budgeted.
    pub fn check_webhook(&self, client: Option<IpAddr>) -> Result<(), Throttled> {
        match client {
            Some(ip) => self.webhook_signatures.check(&address_key(ip)),
            None => Ok(()),
        }
    }

    /// Counts a failed webhook signature of `client`.
    pub fn fail_webhook(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            self.webhook_signatures.record(&address_key(ip));
        }
    }

    /// Spends a login attempt before the password is checked: the client
    /// address's budget first (so one client cannot create a key per
    /// invented e-mail address), then refuses a pair that failed too often,
    /// and, while the e-mail's budget is spent, a pair that failed at all.
    /// `email` is normalized and bounded in length by the caller.
    pub fn check_login(&self, client: Option<IpAddr>, email: &str) -> Result<(), Throttled> {
        if let Some(ip) = client {
            self.login.check(&format!("ip:{}", canonical_ip(ip)))?;
        }
        let pair = login_pair(client, email);
        self.login_failures.check(&pair)?;
        if let Err(spent) = self.email_failures.check(email)
            && self.login_failures.has_failed(&pair)
        {
            return Err(spent);
        }
        Ok(())
    }

    /// Counts a failed login (a wrong password or an unknown e-mail).
    pub fn login_failed(&self, client: Option<IpAddr>, email: &str) {
        self.login_failures.record(&login_pair(client, email));
        self.email_failures.record(email);
    }

    /// How many keys the login budgets hold in all.
    pub fn login_keys(&self) -> usize {
        self.login.len() + self.login_failures.len() + self.email_failures.len()
    }

    /// Spends a registration of `client` (unknown clients share one budget).
    pub fn check_register(&self, client: Option<IpAddr>) -> Result<(), Throttled> {
        let key = client.map_or_else(
            || "ip:unknown".to_owned(),
            |ip| format!("ip:{}", canonical_ip(ip)),
        );
        self.register.check(&key)
    }

    /// Forgets idle keys of every budget.
    pub fn forget_idle(&self) {
        self.login.forget_idle();
        self.login_failures.forget_idle();
        self.email_failures.forget_idle();
        self.register.forget_idle();
        self.webhook_signatures.forget_idle();
    }
}

/// The budget key of a client address: an IPv6 client is budgeted by its
/// /64, the block one subscriber usually holds, so that it cannot rotate
/// through its own addresses; an IPv4-mapped address is its IPv4 client.
fn address_key(address: IpAddr) -> String {
    match canonical_ip(address) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
    }
}

/// The key of an (e-mail, client) pair; a caller in the host's own process
/// (Python, an embedding program) is one client.
fn login_pair(client: Option<IpAddr>, email: &str) -> String {
    match client {
        Some(ip) => format!("{}|{email}", canonical_ip(ip)),
        None => format!("host|{email}"),
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:127.0.0.1`, on a
/// server listening on `::`) is the IPv4 client: one key and one trust
/// decision, whichever socket it came through.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The request budgets of every rate-limited route (all but monitoring and
/// signed webhooks): per client address and per token's user, each a burst
/// of its per-minute figure refilled evenly over the minute. A budget of 0
/// is off (behind a gateway that limits already, or for a load test).
pub struct RequestLimits {
    address: Option<KeyedLimiter>,
    user: Option<KeyedLimiter>,
}

impl RequestLimits {
    /// `per_address` and `per_user` requests per minute (0: unlimited).
    pub fn new(per_address: u32, per_user: u32) -> Self {
        let budget = |per_minute: u32| {
            (per_minute > 0)
                .then(|| KeyedLimiter::new(per_minute, Duration::from_secs(60) / per_minute))
        };
        RequestLimits {
            address: budget(per_address),
            user: budget(per_user),
        }
    }

    /// Spends a request of the client at `address`. An IPv6 client is
    /// budgeted by its /64, the block one subscriber usually holds, so that
    /// it cannot rotate through its own addresses.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Throttled> {
        let Some(limiter) = &self.address else {
            return Ok(());
        };
        limiter.check(&address_key(address))
    }

    /// Spends a request made with a token of `user` (every token of one
    /// user shares the budget).
    pub fn check_user(&self, user: Uuid) -> Result<(), Throttled> {
        match &self.user {
            Some(limiter) => limiter.check(&user.simple().to_string()),
            None => Ok(()),
        }
    }

    /// Forgets idle keys of both budgets.
    pub fn forget_idle(&self) {
        for limiter in [&self.address, &self.user].into_iter().flatten() {
            limiter.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_failures_are_limited_per_pair_and_spare_other_addresses() {
        let limits = AuthLimits::new(3);
        let (stranger, owner): (IpAddr, IpAddr) = (
            "192.0.2.7".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        for _ in 0..10 {
            limits.check_login(Some(stranger), "a@b.c").unwrap();
            limits.login_failed(Some(stranger), "a@b.c");
        }
        let err = limits.check_login(Some(stranger), "a@b.c").unwrap_err();
        assert!(err.retry_after >= 1);
        // Failures of one pair lock out neither the owner's address nor
        // another e-mail from the same address (whose address budget is
        // spent by now, so another stranger tries it).
        limits.check_login(Some(owner), "a@b.c").unwrap();
        limits.check_login(None, "other@b.c").unwrap();
        // Successes cost nothing but the address budget.
        for _ in 0..50 {
            limits.check_login(None, "a@b.c").unwrap();
        }
    }

    #[test]
    fn a_spent_email_budget_refuses_only_addresses_that_failed() {
        let limits = AuthLimits::new(3);
        for n in 0..100u8 {
            let ip = IpAddr::from([192, 0, 2, n]);
            limits.check_login(Some(ip), "a@b.c").unwrap();
            limits.login_failed(Some(ip), "a@b.c");
        }
        assert!(
            limits
                .check_login(Some(IpAddr::from([192, 0, 2, 1])), "a@b.c")
                .is_err()
        );
        limits
            .check_login(Some(IpAddr::from([198, 51, 100, 1])), "a@b.c")
            .unwrap();
    }

    #[test]
    fn failures_fade() {
        let budget = FailureBudget::new(2, Duration::from_millis(1));
        budget.record("k");
        budget.record("k");
        assert!(budget.check("k").is_err());
        std::thread::sleep(Duration::from_millis(5));
        assert!(budget.check("k").is_ok());
        budget.forget_idle();
        assert!(budget.is_empty());
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }

    #[test]
    fn the_client_address_is_spent_before_the_email() {
        let limits = AuthLimits::new(3);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for n in 0..10 {
            let email = format!("user{n}@b.c");
            limits.check_login(Some(ip), &email).unwrap();
            limits.login_failed(Some(ip), &email);
        }
        assert!(limits.check_login(Some(ip), "user10@b.c").is_err());
        // The refused attempt never created a key for its invented address:
        // the client's own, and ten pairs and ten e-mails that failed.
        assert_eq!(limits.login.len(), 1);
        assert_eq!(limits.login_keys(), 21);
    }

    #[test]
    fn registrations_are_limited_per_client_address() {
        let limits = AuthLimits::new(3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            limits.check_register(Some(a)).unwrap();
        }
        let err = limits.check_register(Some(a)).unwrap_err();
        assert!(err.retry_after > 60, "{err:?}");
        limits.check_register(Some(b)).unwrap();
    }

    #[test]
    fn requests_are_limited_per_address_and_per_user() {
        let limits = RequestLimits::new(3, 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            limits.check_address(ip("192.0.2.1")).unwrap();
        }
        let err = limits.check_address(ip("192.0.2.1")).unwrap_err();
        assert!((1..=20).contains(&err.retry_after), "{err:?}");
        limits.check_address(ip("192.0.2.2")).unwrap();
        assert!(
            limits.check_address(ip("::ffff:192.0.2.1")).is_err(),
            "an IPv4-mapped address is the IPv4 client"
        );

        for n in 0..3 {
            limits
                .check_address(ip(&format!("2001:db8:1:2::{n}")))
                .unwrap();
        }
        assert!(
            limits.check_address(ip("2001:db8:1:2:ffff::9")).is_err(),
            "one /64 shares a budget"
        );
        limits.check_address(ip("2001:db8:1:3::1")).unwrap();

        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        limits.check_user(alice).unwrap();
        limits.check_user(alice).unwrap();
        assert!(limits.check_user(alice).is_err());
        limits.check_user(bob).unwrap();

        let unlimited = RequestLimits::new(0, 0);
        for _ in 0..1000 {
            unlimited.check_address(ip("192.0.2.1")).unwrap();
            unlimited.check_user(alice).unwrap();
        }
    }

    #[test]
    fn only_failures_spend_a_failure_budget() {
        let budget = FailureBudget::new(3, Duration::from_secs(3600));
        // Checks alone (the successes) spend nothing.
        for _ in 0..100 {
            budget.check("a").unwrap();
        }
        for _ in 0..3 {
            budget.check("a").unwrap();
            budget.record("a");
        }
        let over = budget.check("a").unwrap_err();
        assert!(over.retry_after > 3000, "{over:?}");
        budget.check("b").unwrap();
        budget.forget_idle();
        assert!(
            budget.check("a").is_err(),
            "a refusal is kept until it ends"
        );
    }
}

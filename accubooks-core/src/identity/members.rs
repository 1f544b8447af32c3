//! The current role of each user who called recently.

use std::time::Duration;

use uuid::Uuid;

use super::Role;

/// How long a user's current role is trusted without reading it again. A
/// change made through this instance takes effect at once (it invalidates
/// the entry); one made through another instance sharing the database takes
/// effect here within this time.
pub const MEMBER_CACHE_TTL: Duration = Duration::from_secs(1);

/// The current role of each user who called recently, so that a token's
/// role claim is never trusted on its own: a demoted user's token carries
/// the new role and a removed user's token stops working, at once.
#[derive(Default)]
pub struct MemberCache {
    entries: std::sync::Mutex<std::collections::HashMap<Uuid, Member>>,
}

#[derive(Clone, Copy)]
struct Member {
    organization: Uuid,
    role: Option<Role>,
    read_at: std::time::Instant,
}

impl MemberCache {
    /// The cached role of `user` in `organization`: `Some(None)` for a user
    /// known to be gone, `None` when the cache cannot say.
    pub fn get(&self, user: Uuid, organization: Uuid) -> Option<Option<Role>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&user)
            .filter(|m| m.organization == organization && m.read_at.elapsed() < MEMBER_CACHE_TTL)
            .map(|m| m.role)
    }

    /// Remembers what the database said of `user` (`None`: no such user).
    pub fn put(&self, user: Uuid, organization: Uuid, role: Option<Role>) {
        let member = Member {
            organization,
            role,
            read_at: std::time::Instant::now(),
        };
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, member);
    }

    /// Forgets `user` after a change of its role or its removal.
    pub fn invalidate(&self, user: Uuid) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user);
    }

    /// Drops expired entries, bounding memory to the users seen recently.
    pub fn forget_expired(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, m| m.read_at.elapsed() < MEMBER_CACHE_TTL);
    }
}

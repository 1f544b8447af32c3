//! Rebuilds the crate when a migration is added or removed.

// sqlx::migrate! embeds the SQL files at compile time; without this, adding
// or removing a migration would not rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

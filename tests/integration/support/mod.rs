//! Helpers shared by every test module.

pub mod server;
pub mod services;

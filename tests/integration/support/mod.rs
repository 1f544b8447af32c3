//! Helpers shared by every test module.

pub mod receiver;
pub mod saas;
pub mod server;
pub mod services;

//! labkit: the small crate every cell of the conclab lab can use.
//!
//! It gives learners realistic work to coordinate ([`work`]) and a way to
//! show pictures and HTML while a cell runs ([`show`]).

pub mod show;
pub mod work;

/// labkit's version, as cells see it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

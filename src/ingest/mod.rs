//! Sources: each turns its input into [`crate::delivery::Input`]s and hands them on.

pub mod http_push;
pub mod json;

//! placeholder
pub mod analyze;

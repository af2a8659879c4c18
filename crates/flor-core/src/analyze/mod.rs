//! placeholder
pub(crate) mod gumtree;
pub mod sites;
pub(crate) mod tree;

//! Imports from earlier storage formats.

pub(crate) mod node;

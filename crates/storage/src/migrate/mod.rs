//! Imports from earlier storage formats.

pub mod node;

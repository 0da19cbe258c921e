//! One module per command group; each calls the library and hands results to `output`.

pub(crate) mod backup;
pub(crate) mod bench;
pub(crate) mod chat;
pub(crate) mod demo;
pub(crate) mod estate;
pub(crate) mod keys;
pub(crate) mod migrate;
pub(crate) mod status;

//! Benchmark workloads behind `cloudops-storage bench`, written against the library's public
//! API only: each fills a fresh store in a temporary folder and times the calls an app makes.
//! Timings are measured and reported here, never asserted in tests.

pub(crate) mod chat;
pub(crate) mod durability;
pub(crate) mod estate;
pub(crate) mod estate_dense;
pub(crate) mod floor;
pub(crate) mod import;
pub(crate) mod search;
pub(crate) mod target;

//! The AWS estate: the resource model, ARN parsing, the search query language and the
//! resource store with sync, search and stats, and the AWS CLI importers.

pub(crate) mod arn;
mod files;
pub(crate) mod import;
mod intent;
pub(crate) mod model;
pub(crate) mod query;
mod regions;
mod reseal;
pub(crate) mod schema;
mod search;
mod storage;
mod sync;
mod tags;
mod text;

pub use files::{FileReport, ImportReport, ListingSync};
pub use storage::{
    EstateStorage, ResourceFilter, ResourceHit, StatsBy, SyncReport, SyncScope, UpsertReport,
    LAST_SYNCED_RESOLUTION_MS, TOMBSTONE_RETENTION_MS,
};

pub use model::{AWSResource, IAMPermissions, ResourceConstraints, UserContext, GLOBAL_REGION};

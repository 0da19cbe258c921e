//! The AWS estate: the resource model, ARN parsing, the search query language and the
//! resource store with sync, search and stats, and the AWS CLI importers.

pub mod arn;
mod files;
pub mod import;
mod intent;
pub mod model;
pub mod query;
mod regions;
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

pub use arn::{Arn, ArnError};
pub use model::{AWSResource, IAMPermissions, ResourceConstraints, UserContext, GLOBAL_REGION};
pub use query::{Clause, EstateQuery, Field, Pattern, QueryError, TagPattern, Test};

//! The AWS estate: the resource model, ARN parsing and the search query language.
//!
//! The resource store, sync, importers and stats build on these (issue 4, in progress).

pub mod arn;
pub mod model;
pub mod query;

pub use arn::{Arn, ArnError};
pub use model::{AWSResource, IAMPermissions, ResourceConstraints, UserContext, GLOBAL_REGION};
pub use query::{Clause, EstateQuery, Field, Pattern, QueryError, TagPattern, Test};

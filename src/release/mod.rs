//! The release bot: registry watching, image policies, comment-preserving
//! rewrites, semver tagging and version-bump pull requests.

pub mod bump;
pub mod github;
pub mod policy;
pub mod registry;
pub mod rewrite;
pub mod tagger;

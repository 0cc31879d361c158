//! Where desired state comes from: a git repository (or a plain directory)
//! and the rendering of its files into Kubernetes objects.

pub mod git;
pub mod render;

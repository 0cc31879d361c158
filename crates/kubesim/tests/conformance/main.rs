//! Conformance suite: each behaviour relbot relies on, pinned by a test written
//! from the Kubernetes API conventions so it also passes against
//! kube-apiserver. Every test gets its cluster from `TestCluster`, so setting
//! `RELBOT_TEST_KUBECONFIG` runs the same suite against a real cluster (or a
//! separately started `kubesim serve`).

mod common;
mod crd;
mod crud;
mod delete;
mod discovery;
mod emulator;
mod list_watch;
mod ssa;
mod validation;

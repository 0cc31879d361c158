//! Process-wide TLS setup.
//!
//! reqwest is built without a bundled crypto provider (so the build needs no
//! cmake/C++ toolchain for aws-lc); rustls then needs one installed before the
//! first client is built. kube and octocrab already use `ring`, so do we.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs rustls' `ring` provider as the process default. Idempotent.
pub fn init() {
    INSTALL.call_once(|| {
        // Err only means another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

//! kubesim: a Kubernetes API server emulator (dev-only).

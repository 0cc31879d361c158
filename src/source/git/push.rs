//! Pushing one refspec to a remote: the one place relbot writes to git
//! (`relbot tag --push` and the bump run's `relbot/*` branches). Callers
//! say what the push was for; this says whether it landed.

use super::{AuthAttempt, GitCredentials, GitError, classify_remote_error};

/// Why a push did not land.
#[derive(Debug)]
pub enum PushError {
    /// The push could not be made (authentication, network, no repository
    /// there), in a person's words.
    Remote(GitError),
    /// The server took the push but refused to update `refname` (branch
    /// protection, a hook…); `status` is its reason, secrets redacted.
    Rejected { refname: String, status: String },
}

/// Pushes `refspec` to `remote` (reached at `url`, shown redacted in errors)
/// with the token of `credentials`.
pub fn push_refspec(
    remote: &mut git2::Remote<'_>,
    url: &str,
    refspec: &str,
    credentials: &GitCredentials,
) -> Result<(), PushError> {
    let auth = AuthAttempt::default();
    let rejection = std::cell::RefCell::new(None::<(String, String)>);
    let mut callbacks = credentials.remote_callbacks(&auth);
    callbacks.push_update_reference(|refname, status| {
        if let Some(status) = status {
            *rejection.borrow_mut() = Some((refname.to_string(), credentials.redact(status)));
        }
        Ok(())
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    remote.push(&[refspec], Some(&mut options)).map_err(|e| {
        PushError::Remote(classify_remote_error(
            &e,
            "push to",
            url,
            &auth,
            credentials,
        ))
    })?;
    drop(options);
    match rejection.into_inner() {
        Some((refname, status)) => Err(PushError::Rejected { refname, status }),
        None => Ok(()),
    }
}

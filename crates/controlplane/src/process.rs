//! One control-plane process: its output goes to `<dir>/<name>.log`, it dies
//! with the harness (PR_SET_PDEATHSIG, so a killed test run leaves nothing
//! behind) and it is stopped on drop (SIGTERM, then SIGKILL after 5 s).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Child {
    name: String,
    inner: std::process::Child,
}

impl Child {
    /// The operating system's id of the process.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    pub fn spawn(program: &Path, dir: &Path, name: &str, args: &[&str]) -> Result<Self, String> {
        let log = std::fs::File::create(dir.join(format!("{name}.log")))
            .map_err(|e| format!("{name}.log: {e}"))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            // etcd reads ETCD_* and the apiserver nothing of ours; a clean
            // environment keeps a developer's settings out of the test cluster.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let inner = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        Ok(Child {
            name: name.to_string(),
            inner,
        })
    }

    /// Whether the process has exited (it should not have, while the harness runs).
    pub fn exited(&mut self) -> Option<String> {
        match self.inner.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            _ => None,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.inner.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.inner.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

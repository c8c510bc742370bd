//! Helpers for the processes tests start: none may outlive its test.

use std::net::TcpListener;
use std::process::Command;

use anyhow::{Context as _, Result};

/// The child gets SIGKILL if the test process dies without running `Drop` (a
/// killed test binary, a CI timeout), so no process outlives its test. The
/// signal follows the spawning *thread*; tests spawn from their runtime's
/// thread, which lives as long as the test.
pub fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A loopback port that was free a moment ago, for programs that cannot listen
/// on port 0 and report the port (redis-server), or must keep a port across a
/// restart. Binding and releasing leaves a small race with other tests; the
/// kernel hands out ephemeral ports in turn, so a clash is unlikely.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

//! Where records go: `--record stdout|stderr|fd:N|PATH` (the termination log is `termlog`).
//!
//! Reporting must never stop the command from running: a sink that cannot be opened falls back
//! to stderr with one warning, and write errors are dropped.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::libc;

/// Where `--record` points, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Stdout,
    Stderr,
    Fd(RawFd),
    Path(PathBuf),
}

impl Target {
    pub fn parse(spec: &str) -> Result<Target, String> {
        Ok(match spec {
            "" => return Err("--record: empty target".into()),
            "stdout" | "-" => Target::Stdout,
            "stderr" => Target::Stderr,
            // A descriptor number: digits only, no sign (fd:-1 would be no descriptor at all).
            s if s.starts_with("fd:") => Target::Fd(
                s.get(3..)
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("--record: '{s}' is not fd:N with N a descriptor number"))?,
            ),
            s => Target::Path(PathBuf::from(s)),
        })
    }
}

pub enum Sink {
    Fd(RawFd),
    File(File),
}

impl Sink {
    pub fn open(target: &Target) -> Sink {
        let fallback = |why: String| {
            crate::diag::line(format_args!("records go to stderr: {why}"));
            Sink::Fd(libc::STDERR_FILENO)
        };
        match target {
            Target::Stdout => Sink::Fd(libc::STDOUT_FILENO),
            Target::Stderr => Sink::Fd(libc::STDERR_FILENO),
            Target::Fd(fd) => {
                // SAFETY: only inspected and flagged here; the descriptor stays the caller's.
                let bfd = unsafe { BorrowedFd::borrow_raw(*fd) };
                match fcntl(bfd, FcntlArg::F_GETFD) {
                    // Close-on-exec, so the command does not inherit oominit's record channel;
                    // but never 0-2, which the command shares (fd:1 is stdout, not a private pipe).
                    Ok(flags) => {
                        if *fd > 2 {
                            let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
                            let _ = fcntl(bfd, FcntlArg::F_SETFD(flags));
                        }
                        Sink::Fd(*fd)
                    }
                    Err(e) => fallback(format!("--record fd:{fd}: {e}")),
                }
            }
            Target::Path(p) => match OpenOptions::new().append(true).create(true).mode(0o644).open(p) {
                Ok(f) => Sink::File(f),
                Err(e) => fallback(format!("--record {}: {e}", p.display())),
            },
        }
    }

    /// One line, newline included by the caller, in one write where the kernel allows it, so it
    /// does not interleave mid-line with the command's own output on a shared stderr.
    pub fn write_line(&self, line: &[u8]) {
        let fd = match self {
            Sink::Fd(fd) => *fd,
            Sink::File(f) => f.as_raw_fd(),
        };
        crate::diag::out(fd, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(Target::parse("stdout"), Ok(Target::Stdout));
        assert_eq!(Target::parse("stderr"), Ok(Target::Stderr));
        assert_eq!(Target::parse("fd:3"), Ok(Target::Fd(3)));
        assert_eq!(Target::parse("/run/x.json"), Ok(Target::Path("/run/x.json".into())));
        assert!(Target::parse("fd:x").is_err());
        assert!(Target::parse("").is_err());
    }
}

//! Kubernetes' termination log (`/dev/termination-log`, `--termination-log PATH`): what
//! `kubectl describe pod` shows of a container that ended. oominit writes the exit record there,
//! and, while the cgroup is at its limit, a pre-mortem (a `limit` record) that the exit record
//! replaces: under `memory.oom.group` the first OOM kill takes every process, oominit too, and
//! the pre-mortem is then all that says what filled the container.
//!
//! The application's own message always wins: the file is taken only if it is empty at start,
//! and written again only while it still holds what oominit wrote last.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::libc;

use crate::record::TERMINATION_LOG_MAX;

/// Default: no termination log.
#[derive(Default)]
pub struct TerminationLog {
    file: Option<File>,
    /// What oominit wrote last (empty: nothing yet), in room touched at start.
    ours: Vec<u8>,
}

impl TerminationLog {
    /// Hold the file at `path` open if it exists, is writable and is empty. No O_CREAT: outside
    /// Kubernetes it does not exist and nothing is written.
    pub fn open(path: Option<&Path>) -> TerminationLog {
        let file = path
            .and_then(|p| crate::open::read_write(p).ok())
            .filter(|f| f.metadata().is_ok_and(|m| m.len() == 0));
        let mut ours = Vec::new();
        if let Some(f) = &file {
            ours.resize(TERMINATION_LOG_MAX, 0);
            ours.clear();
            // The file's pages now, while the cgroup has room, its size left at 0: on tmpfs (a
            // pod's /dev/termination-log where the node keeps it in memory, the VM's) a write
            // allocates them, charged to the cgroup. Seen without it (VM, 6.18, runc): the
            // pre-mortem's first write at the limit set off an OOM, and 10 ms later, the victim's
            // memory not yet given back, a second one that killed oominit. On a disk the blocks
            // are reserved; the page cache's page still comes at the first write.
            // SAFETY: fallocate on a descriptor this function owns; no memory is passed.
            let _ = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    libc::FALLOC_FL_KEEP_SIZE,
                    0,
                    TERMINATION_LOG_MAX as libc::off_t,
                )
            };
        }
        TerminationLog { file, ours }
    }

    /// Whether there is a file to write to.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Put `text` in place of what the file holds, if that is nothing or what oominit wrote last;
    /// once the application has written there, never again. Whether it wrote.
    pub fn write(&mut self, text: &[u8]) -> bool {
        let Some(f) = &self.file else { return false };
        if !still_ours(f, &self.ours) {
            self.file = None;
            return false;
        }
        let written = f.write_all_at(text, 0).is_ok() && f.set_len(text.len() as u64).is_ok();
        self.ours.clear();
        if written && text.len() <= TERMINATION_LOG_MAX {
            self.ours.extend_from_slice(text);
        }
        written
    }
}

/// Whether `f` holds nothing, or exactly `ours`. Read on the stack: no allocation.
#[inline(never)]
fn still_ours(f: &File, ours: &[u8]) -> bool {
    let len = match f.metadata() {
        Ok(m) => m.len(),
        Err(_) => return false,
    };
    if len == 0 {
        return true;
    }
    if ours.is_empty() || len != ours.len() as u64 {
        return false;
    }
    let mut buf = [0u8; TERMINATION_LOG_MAX];
    let Some(buf) = buf.get_mut(..ours.len()) else { return false };
    f.read_exact_at(buf, 0).is_ok() && buf == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("oominit-tl-{name}-{}", std::process::id()))
    }

    #[test]
    fn its_page_is_taken_at_start_and_the_file_stays_empty() {
        use std::os::unix::fs::MetadataExt;
        // tmpfs, as a termination log kept in memory: the page a write would allocate.
        let p = std::path::Path::new("/dev/shm").join(format!("oominit-tl-page-{}", std::process::id()));
        std::fs::write(&p, "").unwrap();
        let log = TerminationLog::open(Some(&p));
        assert!(log.is_open());
        let m = std::fs::metadata(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(m.len(), 0, "nothing written: the application's message still wins");
        assert!(m.blocks() > 0, "no page allocated at start");
    }

    #[test]
    fn only_a_file_there_and_empty_at_start_is_taken() {
        let p = scratch("absent");
        assert!(!TerminationLog::open(Some(&p)).is_open(), "absent: not created");
        assert!(!p.exists());
        std::fs::write(&p, "the application's").unwrap();
        assert!(!TerminationLog::open(Some(&p)).write(b"{}"), "not empty at start");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "the application's");
        std::fs::remove_file(&p).unwrap();
        assert!(!TerminationLog::open(None).is_open());
    }

    #[test]
    fn the_exit_record_replaces_the_pre_mortem() {
        let p = scratch("replace");
        std::fs::write(&p, "").unwrap();
        let mut t = TerminationLog::open(Some(&p));
        assert!(t.write(b"{\"event\":\"limit\",\"long\":\"................\"}"));
        assert!(t.write(b"{\"event\":\"exit\"}"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"event\":\"exit\"}", "shorter: truncated");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn the_applications_message_wins_over_a_pre_mortem() {
        let p = scratch("app");
        std::fs::write(&p, "").unwrap();
        let mut t = TerminationLog::open(Some(&p));
        assert!(t.write(b"{\"event\":\"limit\"}"));
        // The application writes its own message over it (same length, other bytes).
        std::fs::write(&p, "panic: oh no!!!!!").unwrap();
        assert!(!t.write(b"{\"event\":\"exit\"}"));
        assert!(!t.write(b"{}"), "and never again");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "panic: oh no!!!!!");
        std::fs::remove_file(&p).unwrap();
    }
}

//! Writing records while the cgroup may be full: every record kind (the live `oom` event, the
//! exit record, and what comes next) goes out through one [`Emitter`].
//!
//! A record is written at the worst moment for memory: right after a kill, before the victim's
//! pages are given back. A fresh page of oominit's then is a charge the full cgroup cannot meet,
//! and the OOM killer picks another task, perhaps the main process. So records are serialized
//! into a buffer touched at start, and a dry run warms the allocator while there is room.
//! Writing into a pipe still allocates a page in the kernel, which can fail with ENOMEM for a few
//! milliseconds after a kill: that write is retried ([`write_all`]).

use serde::Serialize;

use crate::sink::Sink;

/// Room for one record; a longer one still works, it just may allocate.
const LINE_CAPACITY: usize = 16 * 1024;

/// How often, and how far apart, a write that failed with ENOMEM is tried again: ~0.3 s.
const NOMEM_RETRIES: u32 = 30;
const NOMEM_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

pub struct Emitter<'a> {
    sink: &'a Sink,
    line: Vec<u8>,
}

impl<'a> Emitter<'a> {
    /// An emitter with no buffer yet (nothing allocated before the command is forked).
    pub fn new(sink: &'a Sink) -> Emitter<'a> {
        Emitter { sink, line: Vec::new() }
    }

    /// An emitter writing from `line`, a buffer another emitter touched ([`Emitter::take_line`]).
    pub fn with_line(sink: &'a Sink, line: Vec<u8>) -> Emitter<'a> {
        Emitter { sink, line }
    }

    /// The buffer, for an emitter to come ([`Emitter::with_line`]); this one is left without.
    pub fn take_line(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.line)
    }

    /// Touch the buffer now, while the cgroup has room, and serialize `sample` into it without
    /// writing it: that warms the allocator's size classes and faults in the code paths.
    pub fn prepare(&mut self, sample: &impl Serialize) {
        self.line = vec![b' '; LINE_CAPACITY];
        self.serialize(sample);
    }

    /// One record, one line, in one write where the kernel allows it.
    pub fn emit(&mut self, record: &impl Serialize) {
        self.serialize(record);
        self.sink.write_line(&self.line);
    }

    /// As [`emit`](Self::emit), but written only if `room` says so once the record is serialized:
    /// a check made before the serialization leaves a hog on the same CPU the time it takes to
    /// fill what was free. Whether it was written.
    pub fn emit_if(&mut self, record: &impl Serialize, room: impl FnOnce() -> bool) -> bool {
        self.serialize(record);
        let room = room();
        if room {
            self.sink.write_line(&self.line);
        }
        room
    }

    fn serialize(&mut self, record: &impl Serialize) {
        if let Err(e) = serialize(&mut self.line, record) {
            self.line.extend_from_slice(format!("{{\"error\":\"serializing a record: {e}\"}}").as_bytes());
        }
        self.line.push(b'\n');
    }
}

/// `record` as JSON into `buf`, in place of what was there; left empty if it cannot be.
pub fn serialize(buf: &mut Vec<u8>, record: &impl Serialize) -> Result<(), serde_json::Error> {
    buf.clear();
    serde_json::to_writer(&mut *buf, record).inspect_err(|_| buf.clear())
}

/// Write all of `text` to `fd`, dropping errors: a closed stream must not stop PID 1. SIGPIPE is
/// blocked in oominit, so a closed pipe gives EPIPE here instead of killing it. ENOMEM (a pipe
/// page the full cgroup cannot give yet) is retried for a while.
pub fn write_all(fd: i32, mut text: &[u8]) {
    let mut nomem_retries = 0;
    while !text.is_empty() {
        // SAFETY: writing from a live slice.
        match unsafe { nix::libc::write(fd, text.as_ptr().cast(), text.len()) } {
            n if n > 0 => text = text.get(n as usize..).unwrap_or(&[]),
            -1 => match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => {}
                nix::errno::Errno::ENOMEM if nomem_retries < NOMEM_RETRIES => {
                    nomem_retries += 1;
                    std::thread::sleep(NOMEM_PAUSE);
                }
                _ => return,
            },
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_in_the_buffer_touched_at_start() {
        let sink = Sink::Fd(-1);
        let mut e = Emitter::new(&sink);
        e.prepare(&serde_json::json!({"event": "oom", "kills": 0}));
        let at = e.line.as_ptr();
        e.emit(&serde_json::json!({"event": "exit", "argv": vec!["x"; 100]}));
        assert_eq!(e.line.as_ptr(), at, "no new allocation for a record that fits");
        assert!(e.line.ends_with(b"\n") && e.line.iter().filter(|&&b| b == b'\n').count() == 1);
    }

    #[test]
    fn a_buffer_taken_from_one_emitter_serves_the_next() {
        let sink = Sink::Fd(-1);
        let mut first = Emitter::new(&sink);
        first.prepare(&serde_json::json!({"event": "oom"}));
        let at = first.line.as_ptr();
        let mut next = Emitter::with_line(&sink, first.take_line());
        assert!(first.line.is_empty());
        next.emit(&serde_json::json!({"event": "exit"}));
        assert_eq!(next.line.as_ptr(), at, "the buffer touched at start, not a new one");
    }

    #[test]
    fn everything_is_written_through_short_writes() {
        let (r, w) = nix::unistd::pipe().unwrap();
        use std::os::fd::AsRawFd;
        let text = vec![b'x'; 200_000];
        let reader = std::thread::spawn(move || {
            let mut f = std::fs::File::from(r);
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut got).unwrap();
            got.len()
        });
        write_all(w.as_raw_fd(), &text);
        drop(w);
        assert_eq!(reader.join().unwrap(), 200_000);
    }

    #[test]
    fn without_room_a_record_is_serialized_but_not_written() {
        use std::os::fd::AsRawFd;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let sink = Sink::Fd(w.as_raw_fd());
        let mut e = Emitter::new(&sink);
        e.prepare(&serde_json::json!({"event": "oom"}));
        assert!(!e.emit_if(&serde_json::json!({"event": "limit"}), || false));
        assert_eq!(e.line, b"{\"event\":\"limit\"}\n");
        let mut buf = [0u8; 64];
        assert_eq!(nix::unistd::read(&r, &mut buf), Err(nix::errno::Errno::EAGAIN), "nothing written");
        assert!(e.emit_if(&serde_json::json!({"event": "limit"}), || true));
        assert_eq!(nix::unistd::read(&r, &mut buf), Ok(18));
        assert_eq!(&buf[..18], b"{\"event\":\"limit\"}\n");
    }
}

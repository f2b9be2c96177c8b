//! oominit: a PID-1 init for containers that tells the truth about out-of-memory kills.
//!
//! The algorithm, in the order it runs: parse the command line ([`cli`]); block every signal and
//! read them from a signalfd ([`signals`]); become a subreaper when not PID 1; find the memory
//! cgroup and read its OOM counters, the baseline ([`cgroup`], [`oomwatch`]); start the command
//! clean ([`spawn`]); while it execs, lower oominit's own OOM score ([`oomscore`]) and register
//! for OOM notifications; then one event loop that forwards signals, reaps zombies and reports OOM
//! kills as they happen ([`supervise`]); decide what happened and write the exit record
//! ([`record`], [`sink`]); exit with the command's code, or the OOM exit code under `--strict`.

pub mod ballast;
pub mod cgroup;
pub mod cli;
pub mod diag;
pub mod error;
pub mod oomscore;
pub mod oomwatch;
pub mod procfs;
pub mod reap;
pub mod record;
pub mod signals;
pub mod sink;
pub mod spawn;
pub mod supervise;
pub mod timer;
pub mod victims;

use std::ffi::OsString;

use nix::libc;

use crate::cgroup::Cgroup;
use crate::cli::{Action, Config};
use crate::error::{Error, EXIT_FATAL, EXIT_USAGE};
use crate::oomwatch::{Observed, OomWatch};
use crate::reap::Status;
use crate::record::{ExitRecord, MainEnd, MainInfo, OomInfo, Verdict};
use crate::sink::Sink;

/// Everything `main` does; returns the process exit code.
pub fn main_entry(args: Vec<OsString>) -> i32 {
    match cli::parse(args, &|k| std::env::var(k).ok()) {
        Err(e) => {
            diag::line(format_args!("{e} (see 'oominit --help')"));
            EXIT_USAGE
        }
        Ok(Action::Help) => {
            diag::out(libc::STDOUT_FILENO, cli::HELP.as_bytes());
            0
        }
        Ok(Action::Version) => {
            diag::out(libc::STDOUT_FILENO, concat!("oominit ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
            0
        }
        Ok(Action::Run(cfg)) => match run(&cfg) {
            Ok(code) => code,
            Err(e) => {
                diag::line(format_args!("{e}"));
                EXIT_FATAL
            }
        },
    }
}

fn run(cfg: &Config) -> Result<i32, Error> {
    diag::set_level(cfg.verbosity);
    let started = std::time::Instant::now();
    let sigfd = signals::block_and_open()?;
    become_reaper(cfg);
    if let Some(sig) = cfg.pdeath_signal {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) } != 0 {
            diag!(1, "cannot set the parent-death signal: {}", std::io::Error::last_os_error());
        }
    }
    let sink = Sink::open(&cfg.record);
    let mut watch = OomWatch::start(Cgroup::discover(), &sink);

    let (pid, end) = match spawn::spawn(&cfg.command) {
        Ok(pid) => {
            diag!(2, "started '{}' as {pid}", cfg.command[0].to_string_lossy());
            // After the fork, in parallel with the command's exec: the command keeps the
            // oom_score_adj it inherited, and none of this delays its start.
            if cfg.protect {
                oomscore::protect();
            }
            prefault_stack();
            let argv = record::short_argv(cfg.command.iter().map(|a| a.to_string_lossy()));
            watch.arm(Some((pid, argv)));
            let status = supervise::supervise(cfg, &sigfd, pid, &mut watch)?;
            (Some(pid), MainEnd::Ended(status))
        }
        Err(e) => {
            diag::line(format_args!("cannot run '{}': {e}", cfg.command[0].to_string_lossy()));
            // For the figures: a null limit in the record would claim "unlimited".
            watch.arm(None);
            (None, MainEnd::SpawnFailed(e))
        }
    };

    let observed = watch.finish();
    let record = exit_record(cfg, pid, end, observed, started);
    sink.write_line(format!("{}\n", record.to_line()).as_bytes());
    if let Some(path) = &cfg.termination_log {
        if sink::termination_log(path, &record.compact()) {
            diag!(2, "exit record written to {}", path.display());
        }
    }
    Ok(record.exit_code)
}

/// Decide what happened and what oominit exits with.
fn exit_record(
    cfg: &Config,
    pid: Option<i32>,
    end: MainEnd,
    observed: Observed,
    started: std::time::Instant,
) -> ExitRecord {
    let kills = observed.delta.kills();
    let verdict = record::verdict(end, kills);
    let victims = observed.victims;
    let mut exit_code = match end {
        MainEnd::Ended(status) => remapped(cfg, status),
        MainEnd::SpawnFailed(e) => e.exit_code(),
    };
    // --strict: a hidden OOM kill (main exited 0) becomes a failure restart policies can see.
    let strict_applied =
        cfg.strict && verdict == Verdict::LeafOom && end == MainEnd::Ended(Status::Exited(0));
    if strict_applied {
        exit_code = cfg.oom_exit_code;
    }
    ExitRecord {
        event: "exit",
        schema: record::SCHEMA,
        verdict,
        exit_code,
        strict_applied,
        main: MainInfo::new(pid, &cfg.command, end),
        oom: OomInfo {
            kills,
            main_killed: verdict == Verdict::MainOom,
            scope: record::scope(&observed.delta),
            unnamed: kills.saturating_sub(victims.iter().filter(|v| !v.uncertain).count() as u64),
            victims,
            victims_omitted: 0,
            counters: observed.delta,
        },
        memory: observed.memory,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        time: record::now_rfc3339(),
    }
}

/// Touch a stack reserve now, while the cgroup has room. The stack grows a page at a time on
/// first touch, and a first touch while the cgroup is at its limit is a charge it cannot meet:
/// seen in the VM, oominit's own page faults then invoked the OOM killer, which took the main
/// process. Pages a stack has grown into stay mapped, so later deep calls cost nothing.
///
/// 64 KiB, or a quarter of RLIMIT_STACK if that is less: a container may run with a small
/// `ulimit -s`, and one 64 KiB frame there was a SIGSEGV in PID 1 (Rust probes every page of a
/// large frame, so the frame itself must stay small: one page per recursion).
fn prefault_stack() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        0
    };
    touch_stack_pages((64 * 1024).min(limit / 4) / 4096);
}

#[inline(never)]
fn touch_stack_pages(pages: usize) {
    let mut page = [0u8; 3 * 1024];
    page[0] = 1;
    if pages > 1 {
        touch_stack_pages(pages - 1);
    }
    // After the call, so the recursion cannot become a loop reusing one frame.
    std::hint::black_box(&mut page);
}

/// Orphans go to the nearest subreaper, or to PID 1. When oominit is not PID 1 (`docker run
/// --init` puts docker-init there, a shell may run oominit by hand) it must be that subreaper, or
/// the zombies of the command's grandchildren would escape it. No warning: it is simply done.
fn become_reaper(cfg: &Config) {
    if std::process::id() == 1 && !cfg.subreaper {
        return;
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) } != 0 {
        diag!(1, "cannot become a child subreaper: {}", std::io::Error::last_os_error());
    }
}

/// The child's code, 128+N for signal N, and 0 for a code remapped with `-e`.
fn remapped(cfg: &Config, status: Status) -> i32 {
    let code = status.code();
    if cfg.remap_to_zero.contains(&code) {
        0
    } else {
        code
    }
}

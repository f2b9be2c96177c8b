//! oominit: a PID-1 init for containers that tells the truth about out-of-memory kills.
//!
//! The algorithm, in the order it runs: parse the command line ([`cli`]); block every signal and
//! read them from a signalfd ([`signals`]); become a subreaper when not PID 1; find the memory
//! cgroup and read its OOM counters, the baseline ([`cgroup`], [`oom`]); start the command
//! clean ([`spawn`]); while it execs, lower oominit's own OOM score ([`oomscore`]) and register
//! for OOM notifications; then one event loop that forwards signals, reaps zombies and reports OOM
//! kills as they happen ([`supervise`]); decide what happened and write the exit record
//! ([`record`], [`emit`]); exit with the command's code, or the OOM exit code under `--strict`
//! or when oominit stopped the command after another process's OOM kill (`--on-leaf-oom exit`).

pub mod cgroup;
pub mod cli;
pub mod diag;
pub mod emit;
pub mod error;
pub mod heap;
pub mod host;
pub mod oom;
pub mod oomscore;
pub mod open;
pub mod pidfd;
pub mod procfs;
pub mod reap;
pub mod record;
pub mod signals;
pub mod sink;
pub mod spawn;
pub mod summary;
pub mod supervise;
pub mod termlog;
pub mod victims;

use std::ffi::OsString;

use nix::libc;

use crate::cgroup::Cgroup;
use crate::cli::{Action, Config, OnLeafOom};
use crate::emit::Emitter;
use crate::error::{Error, EXIT_FATAL, EXIT_USAGE};
use crate::oom::{headroom, Baseline, Observed, OomWatch};
use crate::reap::Status;
use crate::record::{ExitRecord, Facts, MainEnd, MainInfo, OomInfo, PreOomStop, Stopped, Verdict};
use crate::sink::Sink;
use crate::supervise::MainExit;
use crate::termlog::TerminationLog;

/// Everything `main` does; returns the process exit code.
pub fn main_entry(args: Vec<OsString>) -> i32 {
    match cli::parse(args, &|k| std::env::var_os(k)) {
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
    signals::block()?;
    // The loop's descriptors first: whatever reporting takes later must not starve the init's job.
    let lp = supervise::Loop::open()
        .map_err(|e| diag!(1, "{e}: waiting for signals as tini does, without a cgroup watch"))
        .ok();
    become_reaper(cfg);
    if let Some(sig) = cfg.pdeath_signal {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) } != 0 {
            diag!(1, "cannot set the parent-death signal: {}", std::io::Error::last_os_error());
        }
    }
    let sink = Sink::open(&cfg.record);
    let baseline = Baseline::read(Cgroup::discover());

    let (pid, end, watch, exit) = match spawn::spawn(&cfg.command) {
        Ok(pid) => {
            diag!(2, "started '{}' as {pid}", cfg.command[0].to_string_lossy());
            // After the fork, in parallel with the command's exec: the command keeps the
            // oom_score_adj it inherited, and none of this delays its start.
            if cfg.protect {
                oomscore::protect();
            }
            headroom::lock_image();
            headroom::prefault_stack();
            let argv = record::short_argv(cfg.command.iter().map(|a| a.to_string_lossy()), cfg.argv_shown);
            let termlog = TerminationLog::open(cfg.termination_log.as_deref());
            let mut watch = OomWatch::arm(baseline, Some((pid, argv)), cfg.argv_shown, &sink, termlog);
            if cfg.on_leaf_oom == OnLeafOom::Exit {
                watch.stop_main_on_leaf_oom();
            }
            if let Some(every) = cfg.limit_events {
                watch.warn_at_limit(every);
            }
            if let Some(stop) = cfg.pre_oom() {
                watch.stop_before_oom(stop);
            }
            let exit = supervise::supervise(cfg, lp.as_ref(), pid, &mut watch)?;
            (Some(pid), MainEnd::Ended(exit.status), watch, Some(exit))
        }
        Err(e) => {
            diag::line(format_args!("cannot run '{}': {e}", cfg.command[0].to_string_lossy()));
            // For the figures: a null limit in the record would claim "unlimited".
            let termlog = TerminationLog::open(cfg.termination_log.as_deref());
            (
                None,
                MainEnd::SpawnFailed(e),
                OomWatch::arm(baseline, None, cfg.argv_shown, &sink, termlog),
                None,
            )
        }
    };
    let mut observed = watch.finish();
    let mut termlog = std::mem::take(&mut observed.termlog);
    let buf = std::mem::take(&mut observed.line);
    let record = exit_record(cfg, pid, end, observed, exit, started);
    // Before the record, which is the last line oominit writes.
    if let Some(line) = summary::line(&record).filter(|_| cfg.summary) {
        diag::line(format_args!("{line}"));
    }
    Emitter::with_line(&sink, buf).emit(&record);
    // In place of a pre-mortem oominit wrote there, never of the application's own message.
    // Compacting serializes the record up to a dozen times: only where there is a log to write.
    if termlog.is_open() && termlog.write(record.compact().as_bytes()) {
        diag!(2, "exit record written to the termination log");
    }
    // Left to the process's exit, which follows (see OomWatch::finish).
    std::mem::forget((lp, sink, termlog));
    Ok(record.exit_code)
}

/// Decide what happened and what oominit exits with.
fn exit_record(
    cfg: &Config,
    pid: Option<i32>,
    end: MainEnd,
    observed: Observed,
    exit: Option<MainExit>,
    started: std::time::Instant,
) -> ExitRecord {
    let main_sigkilled_by_oominit = exit.is_some_and(|e| e.sigkilled_by_oominit);
    let stopped = exit.and_then(|e| e.stopped);
    let kills = observed.delta.kills();
    let unnamed = kills.saturating_sub(observed.certain);
    let named =
        u64::try_from(observed.victims.len()).unwrap_or(u64::MAX).saturating_add(observed.victims_omitted);
    let unexplained = kills.saturating_sub(named);
    let main_named = observed.main_named;
    let verdict = record::verdict(&Facts { end, kills, main_named, unexplained, main_sigkilled_by_oominit });
    let mut exit_code = match end {
        MainEnd::Ended(status) => remapped(cfg, status),
        MainEnd::SpawnFailed(e) => e.exit_code(),
    };
    // --strict: a hidden OOM kill (main exited 0) becomes a failure restart policies can see.
    let strict_applied =
        cfg.strict && verdict == Verdict::LeafOom && end == MainEnd::Ended(Status::Exited(0));
    // --on-leaf-oom exit: oominit stopped main for a kill; however main ended, the OOM code.
    if strict_applied || stopped.is_some() {
        exit_code = cfg.oom_exit_code;
    }
    ExitRecord {
        event: "exit",
        schema: record::SCHEMA,
        verdict,
        exit_code,
        strict_applied,
        stopped: stopped.map(Stopped::leaf_oom),
        pre_oom_stop: observed.pre_oom_stop.map(|sent| PreOomStop::new(&sent, kills)),
        main: MainInfo::new(pid, &cfg.command, cfg.argv_shown, end),
        oom: OomInfo {
            kills,
            main_killed: verdict == Verdict::MainOom,
            scope: record::scope(&observed.delta, &observed.at_kill),
            unnamed,
            victims: observed.victims,
            victims_omitted: observed.victims_omitted,
            counters: observed.delta,
            breakdown: observed.at_kill.breakdown,
            breakdown_read: observed.at_kill.breakdown_read,
            host: observed.at_kill.host,
            largest: observed.at_kill.largest,
        },
        memory: observed.memory,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        time: record::now_rfc3339(),
    }
}

/// Orphans go to the nearest subreaper, or to PID 1. When oominit is not PID 1 (`docker run
/// --init` puts docker-init there, a shell may run oominit by hand) it must be that subreaper, or
/// the zombies of the command's grandchildren would escape it. No warning: it is simply done.
fn become_reaper(cfg: &Config) {
    if procfs::me() == 1 && !cfg.subreaper {
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

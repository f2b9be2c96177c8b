//! Arguments and environment → [`Config`].
//!
//! The interface is tini's, so that switching an image from tini is a change of one path, plus
//! dumb-init's `-r` and oominit's own long options. Like tini (getopt with a leading `+`), options
//! end at the first non-option word: `oominit sh -c 'exit 3'` runs `sh -c 'exit 3'` even without `--`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;

use crate::oom::prestop::{Fraction, PreOomStop};
use crate::record::ArgvShown;
use crate::signals;
use crate::sink::Target;

pub const HELP: &str = "\
oominit - a PID-1 init for containers that tells the truth about out-of-memory kills

Usage: oominit [OPTIONS] [--] COMMAND [ARG...]

Runs COMMAND, reaps zombies, forwards signals to it and exits with its exit code
(128+N when it died of signal N).

Options:
  -s, --subreaper          register as a child subreaper (automatic when not PID 1)
  -g                       send forwarded signals to the child's whole process group
  -e, --remap-exit CODE    exit 0 when the child exits with CODE (repeatable)
  -p, --pdeath SIGNAL      have SIGNAL sent to oominit (and forwarded) when its parent dies
  -r, --rewrite FROM:TO    forward signal FROM as TO; TO 0 drops FROM (repeatable)
      --grace DURATION     after COMMAND exits, SIGTERM the remaining processes, wait up to
                           DURATION (5s, 500ms, 1m) for them, then SIGKILL what is left
OOM reporting:
      --record TARGET      where JSON records go: stderr (default), stdout, fd:N or a file PATH
      --strict             exit with the OOM exit code when another process was OOM-killed
                           while COMMAND exited 0
      --oom-exit-code N    the code --strict and --on-leaf-oom exit exit with (default 137)
      --on-leaf-oom MODE   continue (default): report a kill of another process and go on;
                           exit: SIGTERM COMMAND, SIGKILL what is left after --grace (10s
                           if unset), exit with the OOM exit code
      --termination-log P  write the exit record to P if it exists and is empty
                           (default /dev/termination-log, as Kubernetes provides it)
      --no-termination-log never write a termination log
      --no-oom-protect     leave oominit's own oom_score_adj alone (default: -1000)
      --argv all|argv0|none  how much of each process's argv records show (default all:
                           16 arguments of 256 bytes); arguments can carry secrets
      --no-summary         no human line on stderr saying what was OOM-killed at exit
      --limit-events D|off a `limit` record when memory the kernel cannot reclaim fills half
                           the limit, at most once per D (default 60s)
      --pre-oom-stop[=F]   when memory the kernel cannot reclaim fills F of the limit
                           (default 0.9), send COMMAND one signal so that it can stop before
                           the kernel's OOM killer: once, no SIGKILL from oominit after it
      --pre-oom-signal SIG the signal --pre-oom-stop sends (default TERM; not KILL or STOP)

  -v, --verbose            more diagnostics on stderr (repeat for more)
  -V, --version            print the version and exit
  -h, --help               print this help and exit

Environment (the TINI_ names are honoured too):
  OOMINIT_SUBREAPER, OOMINIT_KILL_PROCESS_GROUP, OOMINIT_VERBOSITY=N,
  OOMINIT_STRICT, OOMINIT_OOM_EXIT_CODE=N, OOMINIT_RECORD=TARGET, OOMINIT_ARGV,
  OOMINIT_SUMMARY=0, OOMINIT_ON_LEAF_OOM=MODE, OOMINIT_LIMIT_EVENTS=D|off,
  OOMINIT_PRE_OOM_STOP=F|on|off, OOMINIT_PRE_OOM_SIGNAL=SIG

Exit codes: COMMAND's own; 128+N if it died of signal N; the OOM exit code under
--strict, or after --on-leaf-oom exit stopped COMMAND; 127 command not found; 126 command not executable; 2 usage error;
125 oominit itself failed.
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Config),
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub command: Vec<OsString>,
    pub subreaper: bool,
    pub kill_group: bool,
    pub remap_to_zero: Vec<i32>,
    pub pdeath_signal: Option<i32>,
    /// (from, to) pairs; `to == 0` drops the signal.
    pub rewrites: Vec<(i32, i32)>,
    pub grace: Option<Duration>,
    pub verbosity: u32,
    pub strict: bool,
    pub oom_exit_code: i32,
    pub record: Target,
    pub termination_log: Option<PathBuf>,
    pub protect: bool,
    pub argv_shown: ArgvShown,
    /// Say in one line on stderr what was OOM-killed, before the exit record.
    pub summary: bool,
    /// What to do when a process other than the main one is OOM-killed.
    pub on_leaf_oom: OnLeafOom,
    /// `--limit-events`: at most one `limit` record per this long; None: off.
    pub limit_events: Option<Duration>,
    /// `--pre-oom-stop`: at what fraction of the limit; None: off.
    pub pre_oom_stop: Option<Fraction>,
    /// `--pre-oom-signal`: what it sends.
    pub pre_oom_signal: i32,
}

pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// The grace `--on-leaf-oom exit` gives when `--grace` is unset, as `docker stop` does: a main
/// process that ignores SIGTERM is still SIGKILLed.
pub const LEAF_OOM_GRACE: Duration = Duration::from_secs(10);

/// `--on-leaf-oom`: what a kill of a process other than the main one leads to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnLeafOom {
    /// Report it and go on.
    #[default]
    Continue,
    /// Stop the main process (SIGTERM, SIGKILL after the grace) and exit with the OOM exit code.
    Exit,
}

impl OnLeafOom {
    pub fn parse(text: &str) -> Result<OnLeafOom, String> {
        match text {
            "continue" => Ok(OnLeafOom::Continue),
            "exit" => Ok(OnLeafOom::Exit),
            _ => Err(format!("'{text}' is not continue or exit")),
        }
    }
}

impl Config {
    /// When oominit stops the main process itself (`--on-leaf-oom exit`), the time from its
    /// SIGTERM to the SIGKILL of what is left: `--grace`, else [`LEAF_OOM_GRACE`].
    pub fn stop_grace(&self) -> Duration {
        self.grace.unwrap_or(LEAF_OOM_GRACE)
    }

    /// `--pre-oom-stop` with its signal, when on.
    pub fn pre_oom(&self) -> Option<PreOomStop> {
        self.pre_oom_stop.map(|fraction| PreOomStop { fraction, signal: self.pre_oom_signal })
    }

    /// The signal to forward in place of `signo`, or `None` to drop it.
    pub fn rewrite(&self, signo: i32) -> Option<i32> {
        match self.rewrites.iter().rev().find(|(from, _)| *from == signo) {
            Some(&(_, 0)) => None,
            Some(&(_, to)) => Some(to),
            None => Some(signo),
        }
    }
}

/// Parse arguments (without argv\[0\]) and the environment, through `env` so tests need not touch
/// the process's own.
pub fn parse(args: Vec<OsString>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Action, String> {
    // A variable oominit reads must be text: bytes that are not UTF-8 are a usage error, not unset.
    let env = |name: &str| -> Result<Option<String>, String> {
        env(name).map(|v| v.into_string().map_err(|v| format!("{name}={v:?} is not valid UTF-8"))).transpose()
    };
    let flag = |names: &[&str]| -> Result<bool, String> {
        let mut on = false;
        for &n in names {
            if let Some(v) = env(n)? {
                on |= env_bool(&v).ok_or_else(|| format!("{n}={v:?} is not a boolean (use 1 or 0)"))?;
            }
        }
        Ok(on)
    };
    let mut cfg = Config {
        command: Vec::new(),
        subreaper: flag(&["OOMINIT_SUBREAPER", "TINI_SUBREAPER"])?,
        kill_group: flag(&["OOMINIT_KILL_PROCESS_GROUP", "TINI_KILL_PROCESS_GROUP"])?,
        remap_to_zero: Vec::new(),
        pdeath_signal: None,
        rewrites: Vec::new(),
        grace: None,
        verbosity: 0,
        strict: flag(&["OOMINIT_STRICT"])?,
        oom_exit_code: 137,
        record: Target::Stderr,
        termination_log: Some(PathBuf::from(DEFAULT_TERMINATION_LOG)),
        protect: true,
        argv_shown: ArgvShown::All,
        summary: match env("OOMINIT_SUMMARY")? {
            Some(v) => {
                env_bool(&v).ok_or_else(|| format!("OOMINIT_SUMMARY={v:?} is not a boolean (use 1 or 0)"))?
            }
            None => true,
        },
        on_leaf_oom: OnLeafOom::Continue,
        limit_events: Some(DEFAULT_LIMIT_EVENTS),
        pre_oom_stop: None,
        pre_oom_signal: nix::libc::SIGTERM,
    };
    if let Some(v) = env("OOMINIT_PRE_OOM_STOP")?.filter(|v| !v.trim().is_empty()) {
        cfg.pre_oom_stop = pre_oom_stop(&v).map_err(|e| format!("OOMINIT_PRE_OOM_STOP: {e}"))?;
    }
    if let Some(v) = env("OOMINIT_PRE_OOM_SIGNAL")? {
        cfg.pre_oom_signal = pre_oom_signal(&v).map_err(|e| format!("OOMINIT_PRE_OOM_SIGNAL: {e}"))?;
    }
    if let Some(v) = env("OOMINIT_LIMIT_EVENTS")? {
        cfg.limit_events = limit_events(&v).map_err(|e| format!("OOMINIT_LIMIT_EVENTS: {e}"))?;
    }
    if let Some(v) = env("OOMINIT_ON_LEAF_OOM")? {
        cfg.on_leaf_oom = OnLeafOom::parse(&v).map_err(|e| format!("OOMINIT_ON_LEAF_OOM: {e}"))?;
    }
    if let Some(v) = env("OOMINIT_ARGV")? {
        cfg.argv_shown = ArgvShown::parse(&v).map_err(|e| format!("OOMINIT_ARGV: {e}"))?;
    }
    if let Some(v) = env("OOMINIT_OOM_EXIT_CODE")? {
        cfg.oom_exit_code = exit_code(&v).map_err(|e| format!("OOMINIT_OOM_EXIT_CODE: {e}"))?;
    }
    if let Some(v) = env("OOMINIT_RECORD")? {
        cfg.record = Target::parse(&v).map_err(|e| format!("OOMINIT_RECORD: {e}"))?;
    }
    for name in ["OOMINIT_VERBOSITY", "TINI_VERBOSITY"] {
        if let Some(v) = env(name)? {
            cfg.verbosity = v.trim().parse().map_err(|_| format!("{name}={v:?} is not a number"))?;
            break;
        }
    }

    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('s') | Long("subreaper") => cfg.subreaper = true,
            Short('g') => cfg.kill_group = true,
            Short('v') | Long("verbose") => cfg.verbosity = cfg.verbosity.saturating_add(1),
            Short('h') | Long("help") => return Ok(Action::Help),
            Short('V') | Long("version") => return Ok(Action::Version),
            Short('e') | Long("remap-exit") => {
                let v = value(&mut p)?;
                cfg.remap_to_zero.push(exit_code(&v).map_err(|e| format!("-e: {e}"))?);
            }
            Long("strict") => cfg.strict = true,
            Long("oom-exit-code") => {
                let v = value(&mut p)?;
                cfg.oom_exit_code = exit_code(&v).map_err(|e| format!("--oom-exit-code: {e}"))?;
            }
            Long("record") => cfg.record = Target::parse(&value(&mut p)?)?,
            Long("termination-log") => {
                cfg.termination_log = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Long("no-termination-log") => cfg.termination_log = None,
            Long("no-oom-protect") => cfg.protect = false,
            Long("no-summary") => cfg.summary = false,
            Long("limit-events") => {
                cfg.limit_events =
                    limit_events(&value(&mut p)?).map_err(|e| format!("--limit-events: {e}"))?
            }
            // The fraction only as `--pre-oom-stop=F`: a separate word is the command (options end
            // at the first word that is not one, as in getopt's optional arguments).
            Long("pre-oom-stop") => {
                cfg.pre_oom_stop = match p.optional_value() {
                    None => Some(Fraction::DEFAULT),
                    Some(v) => {
                        let v = v
                            .into_string()
                            .map_err(|v| format!("--pre-oom-stop: {v:?} is not valid UTF-8"))?;
                        pre_oom_stop(&v).map_err(|e| format!("--pre-oom-stop: {e}"))?
                    }
                }
            }
            Long("pre-oom-signal") => {
                cfg.pre_oom_signal =
                    pre_oom_signal(&value(&mut p)?).map_err(|e| format!("--pre-oom-signal: {e}"))?
            }
            Long("on-leaf-oom") => {
                cfg.on_leaf_oom =
                    OnLeafOom::parse(&value(&mut p)?).map_err(|e| format!("--on-leaf-oom: {e}"))?
            }
            Long("argv") => {
                cfg.argv_shown = ArgvShown::parse(&value(&mut p)?).map_err(|e| format!("--argv: {e}"))?
            }
            Short('p') | Long("pdeath") => {
                let v = value(&mut p)?;
                cfg.pdeath_signal = Some(signals::parse(&v, false).map_err(|e| format!("-p: {e}"))?);
            }
            Short('r') | Long("rewrite") => {
                let v = value(&mut p)?;
                let (from, to) = v.split_once(':').ok_or_else(|| format!("-r: '{v}' is not FROM:TO"))?;
                let from = signals::parse(from, false).map_err(|e| format!("-r: {e}"))?;
                let to = signals::parse(to, true).map_err(|e| format!("-r: {e}"))?;
                cfg.rewrites.push((from, to));
            }
            Long("grace") => {
                let v = value(&mut p)?;
                cfg.grace = Some(parse_duration(&v).map_err(|e| format!("--grace: {e}"))?);
            }
            Value(first) => {
                cfg.command.push(first);
                cfg.command.extend(p.raw_args().map_err(|e| e.to_string())?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if cfg.command.is_empty() {
        return Err("no command given (usage: oominit [OPTIONS] -- COMMAND [ARG...])".into());
    }
    if cfg.command[0].is_empty() {
        return Err("the command is an empty string".into());
    }
    Ok(Action::Run(cfg))
}

fn exit_code(v: &str) -> Result<i32, String> {
    v.trim().parse::<u8>().map(i32::from).map_err(|_| format!("'{v}' is not an exit code (0-255)"))
}

fn value(p: &mut lexopt::Parser) -> Result<String, String> {
    let v = p.value().map_err(|e| e.to_string())?;
    v.into_string().map_err(|v| format!("'{}' is not valid UTF-8", v.to_string_lossy()))
}

/// Unset is false; "", "0", "false", "no", "off" are false; "1", "true", "yes", "on" are true.
/// tini only checks presence; anything else is rejected rather than guessed at.
pub fn env_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Some(false),
        "1" | "true" | "yes" | "on" => Some(true),
        _ => None,
    }
}

/// How often `limit` records may come by default.
pub const DEFAULT_LIMIT_EVENTS: Duration = Duration::from_secs(60);

/// `--limit-events`: `off` (or 0), or at most one per DURATION.
fn limit_events(text: &str) -> Result<Option<Duration>, String> {
    match text.trim() {
        "off" | "0" => Ok(None),
        t => parse_duration(t).map(|d| Some(d).filter(|d| !d.is_zero())),
    }
}

/// `--pre-oom-stop=` and its variable: a fraction of the limit, `on` (the default fraction) or
/// `off`. `1` is the fraction, the whole limit, not a boolean.
fn pre_oom_stop(text: &str) -> Result<Option<Fraction>, String> {
    match text.trim() {
        "on" => Ok(Some(Fraction::DEFAULT)),
        "off" => Ok(None),
        t => Fraction::parse(t).map(Some),
    }
}

/// A signal the application can handle: KILL and STOP cannot be, and a SIGKILL from oominit
/// would be the very death the option is there to avoid.
fn pre_oom_signal(text: &str) -> Result<i32, String> {
    match signals::parse(text, false)? {
        nix::libc::SIGKILL | nix::libc::SIGSTOP => {
            Err(format!("'{text}' cannot be handled: the point is a signal the application can catch"))
        }
        n => Ok(n),
    }
}

/// "5s", "500ms", "1m", "2.5s", "10" (seconds). At most a day: a longer grace is a typo.
/// Integer arithmetic in milliseconds: a float parser would cost more of the binary than all this.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a duration like 5s or 500ms");
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" | "min" => 60_000,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (use ms, s or m)")),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || frac.contains('.') || whole.len() > 9 {
        return Err(bad());
    }
    let mut ms = whole.parse::<u64>().map_err(|_| bad())? * scale;
    let mut place = scale;
    for d in frac.bytes().take(9) {
        place /= 10;
        ms += u64::from(d - b'0') * place;
    }
    if ms > 86_400_000 {
        return Err(format!("'{text}' is out of range (0 to 24h)"));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, OsString)> =
            env.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        run_env(args, env)
    }

    fn run_env(args: &[&str], env: Vec<(String, OsString)>) -> Result<Config, String> {
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match parse(args.iter().map(OsString::from).collect(), &lookup)? {
            Action::Run(c) => Ok(c),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn tini_style_flags() {
        let c =
            run(&["-s", "-g", "-e", "3", "-e", "4", "-p", "SIGKILL", "-vv", "--", "x", "-s"], &[]).unwrap();
        assert!(c.subreaper && c.kill_group);
        assert_eq!(c.remap_to_zero, vec![3, 4]);
        assert_eq!(c.pdeath_signal, Some(9));
        assert_eq!(c.verbosity, 2);
        assert_eq!(c.command, vec![OsString::from("x"), OsString::from("-s")]);
    }

    #[test]
    fn command_without_double_dash_keeps_its_own_flags() {
        let c = run(&["-v", "sh", "-c", "exit 3"], &[]).unwrap();
        assert_eq!(c.command, ["sh", "-c", "exit 3"].map(OsString::from).to_vec());
        assert_eq!(c.verbosity, 1);
    }

    #[test]
    fn rewrites_and_drops() {
        let c = run(&["-r", "TERM:QUIT", "-r", "10:0", "--", "x"], &[]).unwrap();
        assert_eq!(c.rewrite(15), Some(3));
        assert_eq!(c.rewrite(10), None);
        assert_eq!(c.rewrite(2), Some(2));
    }

    #[test]
    fn limit_events_every_duration_or_off() {
        assert_eq!(run(&["x"], &[]).unwrap().limit_events, Some(DEFAULT_LIMIT_EVENTS));
        assert_eq!(
            run(&["--limit-events", "5s", "x"], &[]).unwrap().limit_events,
            Some(Duration::from_secs(5))
        );
        for off in ["off", "0", "0s"] {
            assert_eq!(run(&["--limit-events", off, "x"], &[]).unwrap().limit_events, None, "{off}");
        }
        assert_eq!(run(&["x"], &[("OOMINIT_LIMIT_EVENTS", "off")]).unwrap().limit_events, None);
        assert!(run(&["--limit-events", "often", "x"], &[]).is_err());
    }

    #[test]
    fn environment() {
        let c = run(
            &["x"],
            &[("TINI_SUBREAPER", "1"), ("OOMINIT_KILL_PROCESS_GROUP", "yes"), ("TINI_VERBOSITY", "3")],
        )
        .unwrap();
        assert!(c.subreaper && c.kill_group);
        assert_eq!(c.verbosity, 3);
        let c = run(&["x"], &[("OOMINIT_SUBREAPER", "0")]).unwrap();
        assert!(!c.subreaper);
        assert!(run(&["x"], &[("OOMINIT_SUBREAPER", "maybe")]).unwrap_err().contains("OOMINIT_SUBREAPER"));
        assert!(run(&["x"], &[("OOMINIT_VERBOSITY", "lots")]).is_err());
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_a_usage_error_not_unset() {
        use std::os::unix::ffi::OsStringExt;
        for name in ["OOMINIT_STRICT", "OOMINIT_RECORD", "TINI_VERBOSITY", "TINI_SUBREAPER"] {
            let e = run_env(&["x"], vec![(name.to_string(), OsString::from_vec(vec![0xff]))]).unwrap_err();
            assert!(e.contains(name) && e.contains("UTF-8"), "{e}");
        }
    }

    #[test]
    fn verbosity_saturates_instead_of_wrapping() {
        let c = run(&["-v", "x"], &[("OOMINIT_VERBOSITY", "4294967295")]).unwrap();
        assert_eq!(c.verbosity, u32::MAX);
    }

    #[test]
    fn usage_errors_are_one_line() {
        for (args, needle) in [
            (&["--bogus", "x"][..], "--bogus"),
            (&["-e"][..], "-e"),
            (&["-e", "256", "x"][..], "0-255"),
            (&["-p", "SIGNOPE", "x"][..], "SIGNOPE"),
            (&["-r", "TERM", "x"][..], "FROM:TO"),
            (&["-r", "TERM:FOO", "x"][..], "FOO"),
            (&["--grace", "5y", "x"][..], "unit"),
            (&[][..], "no command"),
            (&["--"][..], "no command"),
            (&["-v", "--"][..], "no command"),
            (&["--", ""][..], "empty"),
        ] {
            let e = run(args, &[]).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn oom_options() {
        let c = run(&["x"], &[]).unwrap();
        assert!(!c.strict && c.protect);
        assert_eq!(c.oom_exit_code, 137);
        assert_eq!(c.record, Target::Stderr);
        assert_eq!(c.termination_log, Some(PathBuf::from("/dev/termination-log")));
        let c = run(
            &[
                "--strict",
                "--oom-exit-code",
                "3",
                "--record",
                "fd:5",
                "--no-termination-log",
                "--no-oom-protect",
                "x",
            ],
            &[],
        )
        .unwrap();
        assert!(c.strict && !c.protect);
        assert_eq!((c.oom_exit_code, c.record, c.termination_log), (3, Target::Fd(5), None));
        let c = run(
            &["--termination-log", "/tmp/t", "x"],
            &[("OOMINIT_STRICT", "1"), ("OOMINIT_OOM_EXIT_CODE", "9")],
        )
        .unwrap();
        assert!(c.strict);
        assert_eq!(c.oom_exit_code, 9);
        assert_eq!(c.termination_log, Some(PathBuf::from("/tmp/t")));
        assert!(run(&["--oom-exit-code", "300", "x"], &[]).is_err());
        assert!(run(&["x"], &[("OOMINIT_OOM_EXIT_CODE", "-1")]).is_err());
        assert!(run(&["--record", "fd:", "x"], &[]).is_err());
        assert_eq!(run(&["--argv", "none", "x"], &[]).unwrap().argv_shown, ArgvShown::None);
        assert_eq!(run(&["x"], &[("OOMINIT_ARGV", "argv0")]).unwrap().argv_shown, ArgvShown::First);
        assert!(run(&["--argv", "some", "x"], &[]).unwrap_err().contains("--argv"));
        assert_eq!(run(&["x"], &[]).unwrap().on_leaf_oom, OnLeafOom::Continue);
        assert_eq!(run(&["--on-leaf-oom", "exit", "x"], &[]).unwrap().on_leaf_oom, OnLeafOom::Exit);
        assert_eq!(run(&["x"], &[("OOMINIT_ON_LEAF_OOM", "exit")]).unwrap().on_leaf_oom, OnLeafOom::Exit);
        let c = run(&["--on-leaf-oom", "continue", "x"], &[("OOMINIT_ON_LEAF_OOM", "exit")]).unwrap();
        assert_eq!(c.on_leaf_oom, OnLeafOom::Continue, "the option wins over the environment");
        for (args, env, needle) in [
            (&["--on-leaf-oom", "stop", "x"][..], &[][..], "--on-leaf-oom"),
            (&["--on-leaf-oom"][..], &[][..], "--on-leaf-oom"),
            (&["x"][..], &[("OOMINIT_ON_LEAF_OOM", "1")][..], "OOMINIT_ON_LEAF_OOM"),
        ] {
            let e = run(args, env).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{args:?}: {e}");
        }
        assert_eq!(run(&["x"], &[]).unwrap().stop_grace(), LEAF_OOM_GRACE);
        assert_eq!(run(&["--grace", "2s", "x"], &[]).unwrap().stop_grace(), Duration::from_secs(2));
        for bad in ["fd:-1", "fd:-2", "fd:+3", "fd:99999999999"] {
            let e = run(&["--record", bad, "x"], &[]).unwrap_err();
            assert!(e.contains(bad), "{e}");
            assert!(run(&["x"], &[("OOMINIT_RECORD", bad)]).unwrap_err().contains("OOMINIT_RECORD"));
        }
    }

    #[test]
    fn pre_oom_stop_is_off_unless_asked() {
        let c = run(&["x"], &[]).unwrap();
        assert_eq!((c.pre_oom_stop, c.pre_oom()), (None, None));
        assert_eq!(c.pre_oom_signal, nix::libc::SIGTERM);
    }

    #[test]
    fn pre_oom_stop_takes_its_fraction_attached_only() {
        let f = |t| Some(Fraction::parse(t).unwrap());
        assert_eq!(run(&["--pre-oom-stop", "x"], &[]).unwrap().pre_oom_stop, Some(Fraction::DEFAULT));
        assert_eq!(run(&["--pre-oom-stop=0.75", "x"], &[]).unwrap().pre_oom_stop, f("0.75"));
        assert_eq!(run(&["--pre-oom-stop=1", "x"], &[]).unwrap().pre_oom_stop, f("1"));
        // A separate word is the command, as with getopt's optional arguments.
        let c = run(&["--pre-oom-stop", "0.5", "x"], &[]).unwrap();
        assert_eq!(
            (c.pre_oom_stop, c.command),
            (Some(Fraction::DEFAULT), vec![OsString::from("0.5"), "x".into()])
        );
    }

    #[test]
    fn pre_oom_stop_from_the_environment_and_the_option_wins() {
        let f = |t| Some(Fraction::parse(t).unwrap());
        let env = |v| run(&["x"], &[("OOMINIT_PRE_OOM_STOP", v)]).unwrap().pre_oom_stop;
        assert_eq!(env("0.8"), f("0.8"));
        assert_eq!(env("on"), Some(Fraction::DEFAULT));
        assert_eq!(env("1"), f("1"), "1 is the fraction, the whole limit");
        assert_eq!((env("off"), env("")), (None, None));
        let c = run(&["--pre-oom-stop=off", "x"], &[("OOMINIT_PRE_OOM_STOP", "0.8")]).unwrap();
        assert_eq!(c.pre_oom_stop, None);
        let c = run(&["--pre-oom-signal", "USR1", "x"], &[("OOMINIT_PRE_OOM_SIGNAL", "INT")]).unwrap();
        assert_eq!(c.pre_oom_signal, nix::libc::SIGUSR1);
        assert_eq!(
            run(&["x"], &[("OOMINIT_PRE_OOM_SIGNAL", "2")]).unwrap().pre_oom_signal,
            nix::libc::SIGINT
        );
    }

    #[test]
    fn pre_oom_signal_takes_names_and_numbers_it_can_be_caught_by() {
        let sig = |v| {
            run(&["--pre-oom-signal", v, "--pre-oom-stop", "x"], &[]).map(|c| c.pre_oom().map(|p| p.signal))
        };
        for (text, want) in [
            ("TERM", nix::libc::SIGTERM),
            ("SIGINT", nix::libc::SIGINT),
            ("quit", nix::libc::SIGQUIT),
            ("USR1", nix::libc::SIGUSR1),
            ("usr2", nix::libc::SIGUSR2),
            ("HUP", nix::libc::SIGHUP),
            ("10", 10),
        ] {
            assert_eq!(sig(text), Ok(Some(want)), "{text}");
        }
    }

    #[test]
    fn pre_oom_options_out_of_range_are_one_line_usage_errors() {
        for (args, env, needle) in [
            (&["--pre-oom-stop=0", "x"][..], &[][..], "--pre-oom-stop"),
            (&["--pre-oom-stop=1.5", "x"][..], &[][..], "--pre-oom-stop"),
            (&["--pre-oom-stop=-0.1", "x"][..], &[][..], "fraction"),
            (&["--pre-oom-stop=", "x"][..], &[][..], "--pre-oom-stop"),
            (&["--pre-oom-stop=90%", "x"][..], &[][..], "90%"),
            (&["x"][..], &[("OOMINIT_PRE_OOM_STOP", "yes")][..], "OOMINIT_PRE_OOM_STOP"),
            (&["x"][..], &[("OOMINIT_PRE_OOM_STOP", "0")][..], "OOMINIT_PRE_OOM_STOP"),
            (&["--pre-oom-signal", "KILL", "x"][..], &[][..], "cannot be handled"),
            (&["--pre-oom-signal", "9", "x"][..], &[][..], "--pre-oom-signal"),
            (&["--pre-oom-signal", "STOP", "x"][..], &[][..], "--pre-oom-signal"),
            (&["--pre-oom-signal", "0", "x"][..], &[][..], "--pre-oom-signal"),
            (&["--pre-oom-signal", "TERMINATE", "x"][..], &[][..], "TERMINATE"),
            (&["--pre-oom-signal"][..], &[][..], "--pre-oom-signal"),
            (&["x"][..], &[("OOMINIT_PRE_OOM_SIGNAL", "KILL")][..], "OOMINIT_PRE_OOM_SIGNAL"),
        ] {
            let e = run(args, env).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{args:?} {env:?}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in
            ["", "s", ".5s", "-1s", "1..2s", "1.2.3s", "2d", "100000000s", "99999999999999s", "nan", "inf"]
        {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

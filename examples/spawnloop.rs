//! Benchmark helper: start-and-exit of each of several commands, measured where the benchmark
//! cannot run Python (a FROM scratch container, the VM's initramfs) and from inside a cgroup or
//! a mount namespace it was started in.
//!
//! `spawnloop ROUNDS CALLS :: CMD... [:: CMD...]...` (`::`, for the commands hold `--`): in each round, each command in turn (the
//! order rotating from round to round, so drift hits all alike) is spawned and waited for CALLS
//! times; prints, per command, `spawnloop MEDIAN_US CMD...`: the median over rounds of each
//! round's median, in microseconds. The commands' stderr (oominit's records) goes nowhere.
//! Exits 1 if a command fails.

use std::process::{Command, Stdio};
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<usize>().ok());
    let (Some(rounds), Some(calls)) = (num(0), num(1)) else {
        eprintln!("usage: spawnloop ROUNDS CALLS :: CMD... [:: CMD...]...");
        std::process::exit(2);
    };
    let cmds: Vec<Vec<String>> =
        args[2..].split(|a| a == "::").filter(|c| !c.is_empty()).map(<[String]>::to_vec).collect();
    let mut per_cmd: Vec<Vec<f64>> = vec![Vec::new(); cmds.len()];
    for round in 0..rounds {
        for k in 0..cmds.len() {
            let i = (k + round) % cmds.len();
            let mut times = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t0 = Instant::now();
                let status = Command::new(&cmds[i][0]).args(&cmds[i][1..]).stderr(Stdio::null()).status();
                times.push(t0.elapsed().as_secs_f64() * 1e6);
                if !matches!(status, Ok(s) if s.success()) {
                    eprintln!("spawnloop: {:?} failed: {status:?}", cmds[i]);
                    std::process::exit(1);
                }
            }
            per_cmd[i].push(median(&mut times));
        }
    }
    for (cmd, mut medians) in cmds.iter().zip(per_cmd) {
        println!("spawnloop {:.1} {}", median(&mut medians), cmd.join(" "));
    }
}

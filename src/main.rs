//! The `oominit` binary: everything lives in the library; this only turns its answer into an exit
//! (and leaves the unwinder out of the static build: `no_unwinder`).

#[cfg(all(panic = "abort", target_env = "musl"))]
mod no_unwinder;

fn main() {
    let code = oominit::main_entry(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}

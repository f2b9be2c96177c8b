//! The `oominit` binary: everything lives in the library; this only turns its answer into an exit.

fn main() {
    let code = oominit::main_entry(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}

//! The workload init/supervisor entry point of fc-runtime as a standalone binary, used by the
//! crate's tests and benchmark (ferrocloud itself re-executes its own binary instead).

fn main() {
    match fc_runtime::maybe_run_init() {
        Some(code) => std::process::exit(code),
        None => {
            eprintln!("fc-runtime-init: internal helper, not meant to be run by hand");
            std::process::exit(2);
        }
    }
}

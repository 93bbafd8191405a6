//! The `sluice` binary: parse arguments, run the command, map the outcome to an exit code.
//! Everything else lives in the library crates.

/// `println!` that returns the write's error instead of panicking: a closed pipe (`sluice check |
/// head`) ends the command quietly through `is_broken_pipe`, as in ripgrep.
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock())
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod args;
mod audit_cmd;
mod bench;
mod commands;
mod common;
mod eval_cmd;
mod merge_cmd;
mod review_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in the README.
pub const EXIT_OK: u8 = 0;
/// The run finished but at least one shard failed.
pub const EXIT_SHARDS_FAILED: u8 = 1;
/// Bad usage or configuration: nothing was processed.
pub const EXIT_CONFIG: u8 = 2;
/// Any other error that stopped the run.
pub const EXIT_ERROR: u8 = 3;

fn main() -> ExitCode {
    // Before any thread or allocation of note: keeps large tensor buffers in the process instead
    // of unmapping and faulting them in again after every op (+17% to +81% classifier
    // throughput, see benches/RESULTS.md); the text stages' buffers were reused anyway.
    sluice_classifier::tune_allocator();
    let args = args::Args::parse();
    init_tracing(args.verbose);
    match commands::dispatch(args.command) {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!("sluice: error: {}", one_line(&err));
            ExitCode::from(commands::exit_code_for(&err))
        }
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The error and its causes on one line, skipping a cause whose text its parent already quotes
/// (library errors often print their source themselves).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

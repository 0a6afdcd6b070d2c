//! The `inroute` binary: parse the command line, build the runtime, run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = inroute::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(inroute::cli::run(cli, std::env::vars().collect()))
}

//! The `barrage` binary: parse the command line, build the runtime, call the
//! library, exit with its code.

use clap::Parser;

fn main() {
    let cli = barrage::cli::Cli::parse();
    // Only here: the library, run in-process by the tests, installs none.
    barrage::ui::log::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("barrage")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(i32::from(barrage::exit::RUN_FAILED));
        }
    };
    let code = runtime.block_on(barrage::cli::execute(cli));
    // Connection tasks are all finished; do not wait for stray blocking work.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(i32::from(code));
}

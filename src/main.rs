//! The `spokegate` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    // A file-size limit (RLIMIT_FSIZE) must fail the write with EFBIG, which the queue reports and
    // survives, rather than kill the daemon with SIGXFSZ.
    // SAFETY: setting a signal to SIG_IGN at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = spokegate::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},rumqttd=off,rumqttc=warn,bluez_async=warn,btleplug=warn", cli.log)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    spokegate::log_output::init(filter, false);
    // One thread: the gateway's work per reading is small, and a single-threaded runtime spares
    // every reading the cross-thread wake-ups between pipeline stages (see benches/pipeline.rs).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spokegate: cannot start the runtime: {e}");
            std::process::exit(spokegate::exit::OSERR);
        }
    };
    let code = runtime.block_on(spokegate::cli::run(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

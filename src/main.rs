//! `hubcast [CONFIG]`: runs on built-in defaults without a config file.

use std::path::PathBuf;

use anyhow::Context;
use hubcast::config::Config;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads this at startup: heap profiling compiled in but inactive (no sampling cost)
/// until /debug/pprof/heap or HUBCAST_HEAP_PROFILE=1 activates it; one sample per 512 KiB.
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

fn main() -> std::process::ExitCode {
    // Print the error chain only: a startup error names the key or address at fault, and a
    // stack trace would bury it.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hubcast: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let mut file = None;
    let config = match args.next() {
        Some(a) if a == "-h" || a == "--help" => {
            println!("usage: hubcast [CONFIG.yml]\n\nWithout a file hubcast runs on its built-in defaults (see configs/hubcast.yml).");
            return Ok(());
        }
        // The error already names the file, the key and the line.
        Some(path) => {
            let path = PathBuf::from(path);
            let c = Config::load(&path)?;
            file = Some(path);
            c
        }
        None => Config::default(),
    };
    // The webrtc crates warn about routine events (a candidate closed twice, a late DTLS
    // record after close): at warn level they would drown hubcast's own lines.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},webrtc=error,webrtc_ice=error,webrtc_dtls=error,webrtc_srtp=error,webrtc_util=error",
            config.log_level.as_str()
        ))
    });
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let server = hubcast::Server::start(config).await?;
        if let Some(file) = file {
            server.watch_config_file(file);
        }
        tracing::info!("hubcast {} ready", env!("CARGO_PKG_VERSION"));
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("shutting down");
        server.shutdown();
        Ok(())
    })
}

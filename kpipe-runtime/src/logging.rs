//! Where the warnings and errors of kpipe (and of the AWS SDK and lambda_runtime) go in the
//! binaries kpipe generates: standard error, filtered by `RUST_LOG` (default `warn`; for
//! example `RUST_LOG=kpipe_runtime=debug` shows every object written).

/// Installs the subscriber, once; a program that installed its own keeps it.
///
/// In Lambda (`lambda: true`) lines carry no colours and no time (CloudWatch Logs stamps
/// each line itself).
pub(crate) fn init(lambda: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = if lambda {
        builder.with_ansi(false).without_time().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
    // Already installed (by the program, or an earlier call): that one stays.
    let _ = installed;
}

//! Where the warnings and errors of kpipe (and of the AWS SDK and lambda_runtime) go in the
//! binaries kpipe generates: standard error, filtered by `RUST_LOG` (default `warn`; for
//! example `RUST_LOG=kpipe_runtime=debug` shows every object written).

/// Installs the subscriber, once; a program that installed its own keeps it.
///
/// In Lambda (`lambda: true`) lines carry no colours and no time (CloudWatch Logs stamps
/// each line itself).
pub(crate) fn init(lambda: bool) {
    // `RUST_LOG` as `level` or `target=level,...` directives (tracing-subscriber's `Targets`:
    // the same syntax as env_logger's, without the regex engine EnvFilter brings).
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::WARN)
        });
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = if lambda {
        tracing_subscriber::registry()
            .with(layer.with_ansi(false).without_time().with_filter(filter))
            .try_init()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::registry()
            .with(layer.with_ansi(ansi).with_filter(filter))
            .try_init()
    };
    // Already installed (by the program, or an earlier call): that one stays.
    let _ = installed;
}

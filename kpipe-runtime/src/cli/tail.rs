//! `tail`: prints the records of a stream in Kinesis, decoded as the stream's record type.

use super::Target;
#[cfg(feature = "aws")]
use super::{EXIT_FAILURE, fail, sdk_config, usage};
#[cfg(feature = "aws")]
use crate::pipeline::Pipeline;
#[cfg(feature = "aws")]
use aws_sdk_kinesis::types::ShardIteratorType;
use clap::Args;
#[cfg(feature = "aws")]
use std::io::Write;
#[cfg(feature = "aws")]
use std::process::ExitCode;
#[cfg(feature = "aws")]
use std::time::Duration;

/// The arguments of `tail`.
#[derive(Args, Debug)]
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(super) struct TailArgs {
    /// The stream, by stage or AWS name; needed only when the pipeline has several.
    stream: Option<String>,
    /// Where to start: `latest` (only new records; implies --follow) or `trim-horizon`.
    #[arg(long, default_value = "trim-horizon", value_parser = ["latest", "trim-horizon"])]
    from: String,
    /// Keep reading new records until interrupted (Ctrl-C), instead of stopping at the end.
    #[arg(long, short)]
    follow: bool,
    /// Stop after N records.
    #[arg(long, short = 'n', value_name = "N")]
    limit: Option<u64>,
    #[command(flatten)]
    target: Target,
}

/// At most 5 GetRecords calls per second per shard (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
#[cfg(feature = "aws")]
const CALL_INTERVAL: Duration = Duration::from_millis(200);

#[cfg(feature = "aws")]
pub(super) async fn tail<P: Pipeline>(args: TailArgs) -> ExitCode {
    let streams = P::streams();
    let stream = match &args.stream {
        Some(want) => streams
            .iter()
            .find(|s| s.spec().id == want || s.spec().name == want),
        None if streams.len() == 1 => streams.first(),
        None => None,
    };
    let Some(stream) = stream else {
        let names: Vec<String> = streams
            .iter()
            .map(|s| format!("`{}`", s.spec().id))
            .collect();
        return usage(&format!(
            "name one of {}'s streams: {}",
            P::SPEC.name,
            names.join(", ")
        ));
    };
    let config = sdk_config::<P>(&args.target).await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let name = stream.spec().name;
    let shards = match client.list_shards().stream_name(name).send().await {
        Ok(out) => out
            .shards()
            .iter()
            .map(|s| s.shard_id().to_owned())
            .collect::<Vec<_>>(),
        Err(e) => {
            return fail(&format!(
                "kinesis stream {name}: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(&e)
            ));
        }
    };
    let kind = if args.from == "latest" {
        ShardIteratorType::Latest
    } else {
        ShardIteratorType::TrimHorizon
    };
    let mut iterators = Vec::new();
    for shard in &shards {
        match client
            .get_shard_iterator()
            .stream_name(name)
            .shard_id(shard)
            .shard_iterator_type(kind.clone())
            .send()
            .await
        {
            Ok(out) => iterators.push((shard.clone(), out.shard_iterator().map(str::to_owned))),
            Err(e) => {
                return fail(&format!(
                    "kinesis stream {name}, {shard}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                ));
            }
        }
    }
    let follow = args.follow || args.from == "latest";
    let mut printed = 0u64;
    let mut not_typed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let mut any = false;
        for (shard, iterator) in iterators.iter_mut() {
            let Some(it) = iterator.take() else { continue };
            let page = match client.get_records().shard_iterator(it).send().await {
                Ok(p) => p,
                Err(e) => {
                    return fail(&format!(
                        "GetRecords on {shard}: {}",
                        aws_sdk_kinesis::error::DisplayErrorContext(&e)
                    ));
                }
            };
            *iterator = page.next_shard_iterator().map(str::to_owned);
            let mut out = stdout.lock();
            for r in page.records() {
                any = true;
                let data = r.data().as_ref();
                let line = match stream.typed_json(data) {
                    // JSON escapes C0 controls but not C1 ones (U+009B is a terminal's CSI).
                    Ok(json) => super::printable(&json),
                    Err(e) => {
                        not_typed += 1;
                        format!(
                            "<not a `{}`: {e}> {}",
                            stream.record_type(),
                            super::printable(data)
                        )
                    }
                };
                // A closed pipe (`| head`) ends the tail quietly.
                if writeln!(out, "{shard} {} {line}", r.sequence_number()).is_err() {
                    return ExitCode::SUCCESS;
                }
                printed += 1;
                if args.limit.is_some_and(|n| printed >= n) {
                    return ExitCode::SUCCESS;
                }
            }
        }
        if iterators.iter().all(|(_, it)| it.is_none()) || (!any && !follow) {
            break;
        }
        tokio::time::sleep(CALL_INTERVAL).await;
    }
    eprintln!(
        "{printed} records from {name}{}",
        if not_typed > 0 {
            format!(", {not_typed} of them not a `{}`", stream.record_type())
        } else {
            String::new()
        }
    );
    if not_typed > 0 {
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

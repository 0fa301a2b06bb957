//! Shards, monthly cost and S3 object counts of a pipeline for an expected load.
//!
//! ```
//! use kpipe_runtime::estimate::{Load, shards_needed};
//! // 5,000 records/s of 512 bytes read by 2 consumers need 5 shards.
//! assert_eq!(shards_needed(&Load { records_per_sec: 5000.0, record_bytes: 512, consumers: 2, partitions: 1 }), 5);
//! ```

use crate::spec::{Capacity, PipelineSpec};
use serde::Serialize;
use std::fmt;

/// The expected load.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Load {
    /// Records per second put on each stream.
    pub records_per_sec: f64,
    /// Average record size in bytes.
    pub record_bytes: u64,
    /// Consumers reading each stream (each Firehose delivery stream is one).
    pub consumers: u32,
    /// Distinct dynamic partitions the records spread over (1 without partitioning).
    pub partitions: u32,
}

/// Prices in USD, us-east-1, as quoted in Amazon Kinesis Data Streams pricing: <https://aws.amazon.com/kinesis/data-streams/pricing/> (secondary sources, 2023–2026;
/// Oregon equality UNCONFIRMED). Override any field for your region or contract.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prices {
    /// Provisioned shard-hour (Amazon Kinesis Data Streams pricing: <https://aws.amazon.com/kinesis/data-streams/pricing/>).
    pub shard_hour: f64,
    /// Per million PUT payload units of 25 KB (Amazon Kinesis Data Streams pricing: <https://aws.amazon.com/kinesis/data-streams/pricing/>).
    pub put_payload_units_per_million: f64,
    /// On-demand stream-hour (Amazon Kinesis Data Streams pricing: <https://aws.amazon.com/kinesis/data-streams/pricing/>).
    pub on_demand_stream_hour: f64,
    /// On-demand data in, per GB, each record rounded up to 1 KB (Amazon Kinesis Data Streams pricing: <https://aws.amazon.com/kinesis/data-streams/pricing/>).
    pub on_demand_in_per_gb: f64,
    /// On-demand data out, per GB (Amazon Kinesis Data Streams pricing: <https://aws.amazon.com/kinesis/data-streams/pricing/>).
    pub on_demand_out_per_gb: f64,
    /// Firehose ingestion per GB, each record rounded up to 5 KB (Amazon Data Firehose pricing: <https://aws.amazon.com/firehose/pricing/>).
    pub firehose_per_gb: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            shard_hour: 0.015,
            put_payload_units_per_million: 0.014,
            on_demand_stream_hour: 0.04,
            on_demand_in_per_gb: 0.08,
            on_demand_out_per_gb: 0.04,
            firehose_per_gb: 0.029,
        }
    }
}

const HOURS_PER_MONTH: f64 = 730.0;
const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;
const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Shards a provisioned stream needs: AWS's formula (Kinesis Data Streams, Choose the data stream capacity mode: <https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html>) with the record size
/// rounded up to whole KB, plus the 1,000 records/s write cap per shard (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub fn shards_needed(load: &Load) -> u32 {
    let kb = load.record_bytes.div_ceil(1024).max(1) as f64;
    let incoming_kb = kb * load.records_per_sec;
    let outgoing_kb = incoming_kb * f64::from(load.consumers);
    let by_bandwidth = (incoming_kb / 1024.0).max(outgoing_kb / 2048.0).ceil();
    let by_records = (load.records_per_sec / 1000.0).ceil();
    by_bandwidth.max(by_records).max(1.0) as u32
}

/// Monthly cost of one stream (USD).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StreamCost {
    /// Provisioned with the shards the load needs.
    pub provisioned: f64,
    /// On-demand.
    pub on_demand: f64,
}

/// The cost of one stream for a load, both ways.
pub fn stream_cost(load: &Load, prices: &Prices) -> StreamCost {
    let records = load.records_per_sec * SECONDS_PER_MONTH;
    let units_per_record = load.record_bytes.div_ceil(25 * 1024).max(1) as f64;
    let provisioned = f64::from(shards_needed(load)) * prices.shard_hour * HOURS_PER_MONTH
        + records * units_per_record * prices.put_payload_units_per_million / 1e6;
    let in_gb = records * (load.record_bytes.div_ceil(1024).max(1) * 1024) as f64 / GB;
    let out_gb = records * load.record_bytes as f64 * f64::from(load.consumers) / GB;
    let on_demand = prices.on_demand_stream_hour * HOURS_PER_MONTH
        + in_gb * prices.on_demand_in_per_gb
        + out_gb * prices.on_demand_out_per_gb;
    StreamCost {
        provisioned,
        on_demand,
    }
}

/// Monthly Firehose ingestion cost of one delivery (USD), records rounded up to 5 KB (Amazon Data Firehose pricing: <https://aws.amazon.com/firehose/pricing/>).
pub fn firehose_cost(load: &Load, prices: &Prices) -> f64 {
    let billed = (load.record_bytes.div_ceil(5 * 1024).max(1) * 5 * 1024) as f64;
    load.records_per_sec * SECONDS_PER_MONTH * billed / GB * prices.firehose_per_gb
}

/// How often a buffer of `size_bytes` or `interval_secs` flushes at `bytes_per_sec`: seconds
/// between flushes and bytes per flush.
fn flush(size_bytes: u64, interval_secs: u32, bytes_per_sec: f64) -> (f64, f64) {
    let fill = if bytes_per_sec > 0.0 {
        size_bytes as f64 / bytes_per_sec
    } else {
        f64::INFINITY
    };
    // An interval of 0 delivers within seconds (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html); count it as 1 s.
    let every = fill.min(f64::from(interval_secs.max(1)));
    (every, (every * bytes_per_sec).min(size_bytes as f64))
}

/// What one delivery does at the load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryEstimate {
    /// The delivery stream's name.
    pub name: String,
    /// S3 objects per hour, all partitions together.
    pub objects_per_hour: f64,
    /// Average object size in bytes (before compression).
    pub object_bytes: f64,
    /// Lambda invocations per hour (0 without a transform).
    pub invocations_per_hour: f64,
    /// Firehose ingestion per month (USD).
    pub firehose_monthly: f64,
    /// "Many small files" and similar warnings.
    pub warnings: Vec<String>,
}

/// What one stream costs at the load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamEstimate {
    /// The stream's name.
    pub name: String,
    /// Shards the load needs.
    pub shards_needed: u32,
    /// Shards declared (`None` for on-demand).
    pub shards_declared: Option<u32>,
    /// Monthly cost both ways.
    pub monthly: StreamCost,
}

/// The whole estimate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// The load it is for.
    pub load: Load,
    /// Per stream.
    pub streams: Vec<StreamEstimate>,
    /// Per delivery.
    pub deliveries: Vec<DeliveryEstimate>,
    /// The prices used.
    pub prices: Prices,
}

/// Estimates a pipeline at a load with the given prices.
pub fn estimate(p: &PipelineSpec, load: Load, prices: Prices) -> Estimate {
    let streams = p
        .streams
        .iter()
        .map(|s| StreamEstimate {
            name: s.name.to_owned(),
            shards_needed: shards_needed(&load),
            shards_declared: match s.capacity {
                Capacity::Provisioned { shards } => Some(shards),
                Capacity::OnDemand => None,
            },
            monthly: stream_cost(&load, &prices),
        })
        .collect();
    let bytes_per_sec = load.records_per_sec * load.record_bytes as f64;
    let deliveries = p
        .delivery_views()
        .into_iter()
        .map(|view| {
            let (d, s3) = (view.spec, view.destination);
            let partitions = if s3.dynamic_partitioning() { load.partitions.max(1) } else { 1 };
            let per_partition = bytes_per_sec / f64::from(partitions);
            let (every, object_bytes) = flush(s3.buffer.size_bytes, s3.buffer.interval_secs, per_partition);
            let invocations_per_hour = view.transform.map_or(0.0, |t| {
                let (every, _) = flush(t.buffer.size_bytes, t.buffer.interval_secs, bytes_per_sec);
                3600.0 / every
            });
            let mut warnings = Vec::new();
            if object_bytes < 1024.0 * 1024.0 {
                warnings.push(format!(
                    "many small files: objects average {:.0} KiB; a longer interval or fewer partitions makes fewer, larger objects",
                    object_bytes / 1024.0
                ));
            }
            if s3.dynamic_partitioning() && partitions > 500 {
                warnings.push(format!(
                    "{partitions} partitions exceed the 500 active partitions per delivery stream (Amazon Data Firehose quota: https://docs.aws.amazon.com/firehose/latest/dev/limits.html)"
                ));
            }
            DeliveryEstimate {
                name: d.name.to_owned(),
                objects_per_hour: 3600.0 / every * f64::from(partitions),
                object_bytes,
                invocations_per_hour,
                firehose_monthly: firehose_cost(&load, &prices),
                warnings,
            }
        })
        .collect();
    Estimate {
        load,
        streams,
        deliveries,
        prices,
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.load;
        writeln!(
            f,
            "load: {} records/s of {} bytes, {} consumer(s), {} partition(s)",
            l.records_per_sec, l.record_bytes, l.consumers, l.partitions
        )?;
        for s in &self.streams {
            let declared = s
                .shards_declared
                .map_or("on-demand".to_owned(), |n| format!("{n} declared"));
            writeln!(
                f,
                "stream {}: {} shard(s) needed ({declared}); per month ${:.2} provisioned, ${:.2} on-demand",
                s.name, s.shards_needed, s.monthly.provisioned, s.monthly.on_demand
            )?;
            if s.shards_declared.is_some_and(|n| n < s.shards_needed) {
                writeln!(
                    f,
                    "  warning: fewer shards than the load needs: writes will be throttled"
                )?;
            }
        }
        for d in &self.deliveries {
            writeln!(
                f,
                "delivery {}: {:.1} objects/hour of {:.1} MiB, {:.1} Lambda invocations/hour, Firehose ${:.2}/month",
                d.name,
                d.objects_per_hour,
                d.object_bytes / (1024.0 * 1024.0),
                d.invocations_per_hour,
                d.firehose_monthly
            )?;
            for w in &d.warnings {
                writeln!(f, "  warning: {w}")?;
            }
        }
        write!(
            f,
            "prices: us-east-1 list prices (https://aws.amazon.com/kinesis/data-streams/pricing/, https://aws.amazon.com/firehose/pricing/; override with your own)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rps: f64, bytes: u64, consumers: u32) -> Load {
        Load {
            records_per_sec: rps,
            record_bytes: bytes,
            consumers,
            partitions: 1,
        }
    }

    #[test]
    fn shards_follow_aws_formula_and_the_record_cap() {
        // The issue's example: 5,000 × 512 B, 2 consumers -> 5 shards.
        assert_eq!(shards_needed(&load(5000.0, 512, 2)), 5);
        // 1 KB × 1,000/s = 1000 KB/s in -> 1 shard; 3 consumers read 3000 KB/s -> 2 shards.
        assert_eq!(shards_needed(&load(1000.0, 1024, 3)), 2);
        // Tiny records: the 1,000 records/s cap decides (2,500/s -> 3 shards).
        assert_eq!(shards_needed(&load(2500.0, 10, 1)), 3);
        // 100 KB records, 100/s: 10,000 KB/s -> 10 shards.
        assert_eq!(shards_needed(&load(100.0, 100 * 1024, 1)), 10);
    }

    #[test]
    fn costs_by_hand() {
        let p = Prices::default();
        // 1 shard: 730 h × $0.015 = $10.95, plus 1,000 rec/s × 2,628,000 s × 1 unit × $0.014/M.
        let c = stream_cost(&load(1000.0, 100, 1), &p);
        assert!(
            (c.provisioned - (10.95 + 2_628_000_000.0 * 0.014 / 1e6)).abs() < 1e-6,
            "{c:?}"
        );
        // On-demand: $29.20 + 2.628e9 KB in at $0.08/GB + 2.628e9 × 100 B out at $0.04/GB.
        let expected =
            29.2 + 2_628_000_000.0 * 1024.0 / GB * 0.08 + 2_628_000_000.0 * 100.0 / GB * 0.04;
        assert!((c.on_demand - expected).abs() < 1e-6, "{c:?}");
        // Firehose rounds each record up to 5 KB: 3 KB and 5 KB records cost the same.
        assert_eq!(
            firehose_cost(&load(10.0, 3000, 1), &p),
            firehose_cost(&load(10.0, 5120, 1), &p)
        );
        assert!(firehose_cost(&load(10.0, 5121, 1), &p) > firehose_cost(&load(10.0, 5120, 1), &p));
    }

    #[test]
    fn flushes_by_size_or_interval() {
        // 1 MiB/s into a 5 MiB / 300 s buffer: full every 5 s.
        assert_eq!(
            flush(5 << 20, 300, (1 << 20) as f64),
            (5.0, (5 << 20) as f64)
        );
        // 1 KiB/s: the interval wins, objects of 300 KiB.
        assert_eq!(flush(5 << 20, 300, 1024.0), (300.0, 300.0 * 1024.0));
    }
}

import os, textwrap
base = "/work/main/tests/ui"
HEAD = "use kpipe_tests::{Audit, Enriched, NotARecord, Reading};\n\n"
def case(path, body, head=HEAD, tail="\nfn main() {}\n"):
    full = os.path.join(base, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    body = textwrap.dedent(body).strip("\n") + "\n"
    uses = [n for n in ["Audit","Enriched","NotARecord","Reading"] if n in body]
    h = ("use kpipe_tests::{%s};\n\n" % ", ".join(uses)) if head is HEAD and uses else ("" if head is HEAD else head)
    if len(uses) == 1 and head is HEAD:
        h = "use kpipe_tests::%s;\n\n" % uses[0]
    open(full, "w").write(h + body + tail)

def p(inner):
    """Wrap stage lines in a pipeline."""
    inner = textwrap.dedent(inner).strip("\n")
    return "kpipe_runtime::pipeline! {\n    pipeline P {\n" + textwrap.indent(inner, "        ") + "\n    }\n}\n"

S = 'stream readings: Reading { capacity: on_demand, partition_key: sensor_id }'
T = 'transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }'
L = 's3 lake: Enriched { bucket: "acme-lake" }'

# ---------------- parse ----------------
case("parse/unknown-stage-kind.rs", p('''
    strem readings: Reading { capacity: on_demand, partition_key: sensor_id }
    sink lake: Enriched { bucket: "acme-lake" }
'''))
case("parse/delivery-missing-semicolon.rs", p(f'''
    {S}
    {T}
    {L}
    delivery a: readings -> enrich -> lake
    delivery b: readings -> enrich -> lake;
'''))
case("parse/missing-colon-after-name.rs", p('''
    stream readings Reading { capacity: on_demand, partition_key: sensor_id }
'''))
case("parse/stage-outside-pipeline.rs", '''
kpipe_runtime::pipeline! {
    stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
}
''')
case("parse/stage-without-block.rs", p('''
    stream readings: Reading;
'''))
case("parse/setting-without-value.rs", p('''
    stream readings: Reading { capacity: , partition_key: sensor_id }
'''))
case("parse/missing-comma-between-settings.rs", p('''
    stream readings: Reading { capacity: on_demand retention: 48h, partition_key: sensor_id }
'''))
case("parse/transform-without-arrow.rs", p('''
    transform enrich: Reading Enriched { function: kpipe_tests::enrich }
'''))

# ---------------- validate: keys ----------------
case("validate/unknown-key.rs", p('''
    stream readings: Reading {
        capacity: on_demand,
        partition_key: sensor_id,
        retension: 48h,
        colour: "blue",
    }
'''))
case("validate/duplicate-key.rs", p('''
    stream readings: Reading {
        capacity: on_demand,
        partition_key: sensor_id,
        retention: 24h,
        retention: 48h,
    }
'''))
case("validate/duplicate-stage-name.rs", p(f'''
    {S}
    s3 readings: Enriched {{ bucket: "acme-lake" }}
'''))
case("validate/reserved-stage-name.rs", p('''
    s3 spec: Enriched { bucket: "acme-lake" }
    s3 direct: Enriched { bucket: "acme-direct" }
'''))
case("validate/missing-required-keys.rs", p('''
    stream readings: Reading { retention: 24h }
    transform enrich: Reading -> Enriched { retries: 2 }
    s3 lake: Enriched { compression: gzip }
'''))
case("validate/unknown-pipeline-setting.rs", p(f'''
    regoin: "us-west-2",
    {S}
'''))

# ---------------- validate: values and units ----------------
case("validate/duration-without-unit.rs", p('''
    stream readings: Reading { capacity: on_demand, partition_key: sensor_id, retention: 48 }
'''))
case("validate/unknown-unit.rs", p('''
    stream readings: Reading { capacity: on_demand, partition_key: sensor_id, retention: 2weeks }
'''))
case("validate/size-where-duration-expected.rs", p('''
    stream readings: Reading { capacity: on_demand, partition_key: sensor_id, retention: 1MiB }
    s3 lake: Enriched { bucket: "acme-lake", buffer: 60s or 300s }
'''))
case("validate/retention-not-whole-hours.rs", p('''
    stream readings: Reading { capacity: on_demand, partition_key: sensor_id, retention: 1450min }
'''))
case("validate/bad-capacity.rs", p('''
    stream a: Reading { capacity: provisioned, partition_key: sensor_id }
    stream b: Reading { capacity: ondemand, partition_key: sensor_id }
    stream c: Reading { capacity: provisioned(shard: 2), partition_key: sensor_id }
'''))
case("validate/bad-buffer-syntax.rs", p('''
    s3 a: Enriched { bucket: "acme-a", buffer: 5MiB and 60s }
    s3 b: Enriched { bucket: "acme-b", buffer: 5MiB or 10MiB }
'''))
case("validate/unknown-compression.rs", p('''
    s3 lake: Enriched { bucket: "acme-lake", compression: gzipp }
'''))
case("validate/wrong-literal-kind.rs", p('''
    s3 lake: Enriched { bucket: acme, newline: yes, create_bucket: "true" }
    transform enrich: Reading -> Enriched { function: kpipe_tests::enrich, retries: 3x }
'''))
case("validate/bad-partition-key-expression.rs", p('''
    stream a: Reading { capacity: on_demand, partition_key: "sensor_id" }
    stream b: Reading { capacity: on_demand, partition_key: sensor_id + 1 }
'''))
case("validate/explicit-hash-key-not-closure.rs", p('''
    stream a: Reading { capacity: on_demand, partition_key: sensor_id, explicit_hash_key: 42 }
'''))
case("validate/function-not-a-path.rs", p('''
    transform enrich: Reading -> Enriched { function: "kpipe_tests::enrich" }
'''))

# ---------------- validate: names ----------------
case("validate/stream-name-characters.rs", p('''
    stream readings: Reading { name: "sensor readings!", capacity: on_demand, partition_key: sensor_id }
'''))
case("validate/stream-name-length.rs", p('''
    stream a: Reading { name: "%s", capacity: on_demand, partition_key: sensor_id }
    stream b: Reading { name: "", capacity: on_demand, partition_key: sensor_id }
''' % ("s" * 129)))
E = 'stream enriched: Enriched { capacity: on_demand, partition_key: sensor_id }'
case("validate/delivery-name-length.rs", p(f'''
    {E}
    {L}
    delivery d: enriched -> lake {{ name: "{'d' * 65}" }}
'''))
case("validate/duplicate-aws-names.rs", p(f'''
    stream a: Enriched {{ name: "events", capacity: on_demand, partition_key: sensor_id }}
    stream b: Enriched {{ name: "events", capacity: on_demand, partition_key: sensor_id }}
    {L}
    delivery one: a -> lake {{ name: "to-lake" }}
    delivery two: b -> lake {{ name: "to-lake" }}
'''))
case("validate/bucket-name-rules.rs", p('''
    s3 a: Enriched { bucket: "Acme_Telemetry" }
    s3 b: Enriched { bucket: "ab" }
    s3 c: Enriched { bucket: "192.168.5.4" }
    s3 d: Enriched { bucket: "xn--acme" }
    s3 e: Enriched { bucket: "acme..lake" }
    s3 f: Enriched { bucket: "acme-s3alias" }
    s3 g: Enriched { bucket: "-acme" }
'''))
case("validate/lambda-name.rs", p('''
    transform enrich: Reading -> Enriched {
        function: kpipe_tests::enrich,
        lambda: { name: "enrich readings" },
    }
'''))

# ---------------- validate: ranges ----------------
case("validate/shard-count-range.rs", p('''
    stream a: Reading { capacity: provisioned(shards: 0), partition_key: sensor_id }
    stream b: Reading { capacity: provisioned(shards: 10001), partition_key: sensor_id }
'''))
case("validate/retention-range.rs", p('''
    stream a: Reading { capacity: on_demand, partition_key: sensor_id, retention: 12h }
    stream b: Reading { capacity: on_demand, partition_key: sensor_id, retention: 366d }
'''))
case("validate/max-record-size-range.rs", p('''
    stream a: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 512KiB }
    stream b: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 20MiB }
    stream c: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 1500B }
'''))
case("validate/s3-buffer-range.rs", p('''
    s3 a: Enriched { bucket: "acme-a", buffer: 256MiB or 300s }
    s3 b: Enriched { bucket: "acme-b", buffer: 0.5MiB }
    s3 c: Enriched { bucket: "acme-c", buffer: 16min }
'''))
case("validate/processor-buffer-range.rs", p('''
    transform a: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 5MiB or 60s }
    transform b: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 100KiB }
    transform c: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 1MiB or 1000s }
'''))
case("validate/retries-range.rs", p('''
    transform enrich: Reading -> Enriched { function: kpipe_tests::enrich, retries: 1000 }
'''))
case("validate/lambda-ranges.rs", p('''
    transform enrich: Reading -> Enriched {
        function: kpipe_tests::enrich,
        lambda: { memory: 64MiB, timeout: 10min, architecture: arm },
    }
'''))

# ---------------- validate: prefixes ----------------
case("validate/prefix-unknown-namespace.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{timestmp:yyyy}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
'''))
case("validate/prefix-unterminated-expression.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{timestamp:yyyy/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
'''))
case("validate/prefix-bad-timestamp-pattern.rs", p('''
    s3 a: Enriched {
        bucket: "acme-a",
        prefix: "raw/!{timestamp:yyyy/MMM}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
    s3 b: Enriched {
        bucket: "acme-b",
        prefix: "raw/!{timestamp:yyyy-QQ}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
'''))
case("validate/prefix-unknown-firehose-expression.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{firehose:random}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
'''))
case("validate/error-output-type-in-prefix.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{firehose:error-output-type}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
'''))
case("validate/error-prefix-without-output-type.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/",
        error_prefix: "errors/",
    }
'''))
case("validate/error-prefix-required.rs", p('''
    s3 a: Enriched {
        bucket: "acme-a",
        prefix: "raw/!{partitionKeyFromQuery:site}/",
        partition_keys: { site: .site },
    }
    s3 b: Enriched { bucket: "acme-b", prefix: "raw/!{timestamp:yyyy}/" }
'''))
case("validate/partition-key-without-dynamic-partitioning.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/site=!{partitionKeyFromQuery:site}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
'''))
case("validate/partition-key-undeclared.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromQuery:site}/!{partitionKeyFromQuery:sitee}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        partition_keys: { site: .site },
    }
'''))
case("validate/partition-key-wrong-namespace.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromLambda:site}/!{partitionKeyFromQuery:sensor}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        partition_keys: { site: .site, sensor: |e: &Enriched| e.sensor_id.clone() },
    }
'''))
case("validate/partition-key-in-error-prefix.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromQuery:site}/",
        error_prefix: "errors/!{partitionKeyFromQuery:site}/!{firehose:error-output-type}/",
        partition_keys: { site: .site },
    }
'''))
case("validate/partition-key-unused.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromQuery:site}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        partition_keys: { site: .site, sensor: .sensor_id },
    }
'''))
case("validate/duplicate-partition-key.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromQuery:site}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        partition_keys: { site: .site, site: .sensor_id },
    }
'''))
case("validate/prefix-too-long.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "%s/!{timestamp:yyyy}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
    }
''' % ("a" * 520)))
case("validate/zero-buffering-with-partitioning.rs", p('''
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromQuery:site}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        buffer: 64MiB or 0s,
        partition_keys: { site: .site },
    }
'''))
case("validate/lambda-partition-key-needs-transform.rs", p('''
    stream enriched: Enriched { capacity: on_demand, partition_key: sensor_id }
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromLambda:site}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        partition_keys: { site: |e: &Enriched| e.site.clone() },
    }
    delivery d: enriched -> lake;
'''))
case("validate/file-extension-and-time-zone.rs", p('''
    s3 a: Enriched { bucket: "acme-a", file_extension: "json" }
    s3 b: Enriched { bucket: "acme-b", file_extension: ".JSON" }
    s3 c: Enriched { bucket: "acme-c", time_zone: "UTC+2" }
'''))
case("validate/region.rs", '''
kpipe_runtime::pipeline! {
    pipeline P {
        region: "us-west",
    }
}
''')
case("validate/role-arn-and-kms-key.rs", p(f'''
    stream enriched: Enriched {{ capacity: on_demand, partition_key: sensor_id, encryption: kms("") }}
    {L}
    delivery d: enriched -> lake {{ role_arn: "firehose-role" }}
'''))
case("validate/tags.rs", '''
kpipe_runtime::pipeline! {
    pipeline P {
        tags: { team: "data", team: "platform", aws_owner: "me", note: 42 },
    }
}
''')
case("validate/attribute-on-setting.rs", p('''
    #[doc = "the region"]
    region: "us-west-2",
'''))

# ---------------- validate: deliveries ----------------
case("validate/delivery-unknown-stage.rs", p(f'''
    {S}
    {T}
    {L}
    delivery d: readngs -> enrich -> lak;
'''))
case("validate/delivery-wrong-stage-kind.rs", p(f'''
    {S}
    {T}
    {L}
    delivery a: lake -> readings;
    delivery b: readings -> lake -> enrich;
    delivery c: readings -> readings -> lake;
'''))
case("validate/delivery-route-length.rs", p(f'''
    {S}
    {T}
    {L}
    delivery a: readings;
    delivery b: readings -> enrich -> enrich -> lake;
'''))

# ---------------- types ----------------
case("types/stream-to-s3-mismatch.rs", p(f'''
    stream audits: Audit {{ capacity: on_demand, partition_key: actor }}
    {L}
    delivery d: audits -> lake;
'''))
case("types/record-not-serde.rs", p('''
    stream things: NotARecord { capacity: on_demand, partition_key: value }
'''))
case("types/partition-key-field.rs", p('''
    stream a: Reading { capacity: on_demand, partition_key: sensor }
    stream b: Reading { capacity: on_demand, partition_key: |r: &Reading| r.celsius as u8 == 0 || true }
    s3 lake: Enriched {
        bucket: "acme-lake",
        prefix: "raw/!{partitionKeyFromQuery:site}/",
        error_prefix: "errors/!{firehose:error-output-type}/",
        partition_keys: { site: .sitee },
    }
'''))
case("types/partition-key-not-display.rs", p('''
    stream a: Reading { capacity: on_demand, partition_key: |r: &Reading| vec![r.celsius] }
'''))

# ---------------- accumulation ----------------
case("validate/many-errors-at-once.rs", p(f'''
    stream readings: Reading {{ capacity: provisioned(shards: 0), partition_key: sensor_id, retention: 12h }}
    {T}
    s3 lake: Enriched {{ bucket: "Acme", buffer: 500MiB or 300s, compresion: gzip }}
    delivery sensor_lake: readings -> enrich -> lake;
''').rstrip("\n") + "\n", tail='''
// The pipeline's items still exist while the declaration has errors, so code that uses
// them reports nothing more.
fn main() {
    let _spec = P::spec();
    let _stream = P::readings();
    let _delivery = P::sensor_lake;
}
''')
print("ok")

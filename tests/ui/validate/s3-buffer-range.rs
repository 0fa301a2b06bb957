use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 a: Enriched { bucket: "acme-a", buffer: 256MiB or 300s }
        s3 b: Enriched { bucket: "acme-b", buffer: 0.5MiB }
        s3 c: Enriched { bucket: "acme-c", buffer: 16min }
    }
}

fn main() {}

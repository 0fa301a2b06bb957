use kpipe_tests::Enriched;

// A misspelt required key is one mistake: "unknown key ... did you mean `bucket`?", and not
// also "missing `bucket`".
kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched { bukcet: "acme-lake" }
    }
}

fn main() {}

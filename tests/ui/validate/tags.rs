kpipe_runtime::pipeline! {
    pipeline P {
        tags: { team: "data", team: "platform", aws_owner: "me", awsome: "AWS:me", note: 42 },
    }
}

fn main() {}

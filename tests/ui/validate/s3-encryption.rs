use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        // Firehose's KMSEncryptionConfig takes the key's ARN, not an alias.
        s3 by_alias: Reading { bucket: "acme-alias", encryption: kms("alias/my-key") }
        s3 unknown: Reading { bucket: "acme-unknown", encryption: aws_owned }
    }
}

fn main() {}

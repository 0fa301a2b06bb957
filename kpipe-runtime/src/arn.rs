//! The ARNs of the resources a pipeline uses, written in one place ("Identify AWS resources
//! with Amazon Resource Names",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html>).
//!
//! A [`Scope`] is a partition, a region and an account: real ones for `apply`, the
//! template's pseudo parameters ([`Scope::TEMPLATE`]) for CloudFormation and the policies,
//! and the local engine's stand-ins ([`Scope::local`]).
//!
//! ```
//! use kpipe_runtime::arn::Scope;
//!
//! let scope = Scope::new("cn-north-1", "123456789012");
//! assert_eq!(scope.stream("events"), "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/events");
//! assert_eq!(Scope::TEMPLATE.bucket("acme-lake"), "arn:${AWS::Partition}:s3:::acme-lake");
//! ```

/// The account the local engine names in ARNs (Lambda ARNs in error documents, the stream in
/// invocation records).
pub const LOCAL_ACCOUNT: &str = "000000000000";

/// A partition, region and account: where the resources are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    /// `aws`, `aws-cn`, ... (see [`partition`]).
    pub partition: &'a str,
    /// `us-west-2`, ...
    pub region: &'a str,
    /// The 12-digit account id.
    pub account: &'a str,
}

impl<'a> Scope<'a> {
    /// The CloudFormation pseudo parameters, resolved when the stack is created (or by
    /// [`Env`](crate::desired::Env) for `apply`).
    pub const TEMPLATE: Scope<'static> = Scope {
        partition: "${AWS::Partition}",
        region: "${AWS::Region}",
        account: "${AWS::AccountId}",
    };

    /// `region` of `account`, in the region's partition.
    pub fn new(region: &'a str, account: &'a str) -> Self {
        Scope {
            partition: partition(region),
            region,
            account,
        }
    }

    /// The local engine's scope: the declared region and [`LOCAL_ACCOUNT`].
    pub fn local(region: &'a str) -> Self {
        Scope::new(region, LOCAL_ACCOUNT)
    }

    /// An S3 bucket (no region or account in S3 ARNs).
    pub fn bucket(&self, name: &str) -> String {
        bucket(self.partition, name)
    }

    /// A Kinesis data stream.
    pub fn stream(&self, name: &str) -> String {
        format!(
            "arn:{}:kinesis:{}:{}:stream/{name}",
            self.partition, self.region, self.account
        )
    }

    /// A Lambda function.
    pub fn function(&self, name: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{name}",
            self.partition, self.region, self.account
        )
    }

    /// The account's AWS Glue Data Catalog (AWS Glue, Specifying AWS Glue resource ARNs:
    /// <https://docs.aws.amazon.com/glue/latest/dg/glue-specifying-resource-arns.html>).
    pub fn glue_catalog(&self) -> String {
        format!(
            "arn:{}:glue:{}:{}:catalog",
            self.partition, self.region, self.account
        )
    }

    /// A Glue database.
    pub fn glue_database(&self, database: &str) -> String {
        format!(
            "arn:{}:glue:{}:{}:database/{database}",
            self.partition, self.region, self.account
        )
    }

    /// A Glue table.
    pub fn glue_table(&self, database: &str, table: &str) -> String {
        format!(
            "arn:{}:glue:{}:{}:table/{database}/{table}",
            self.partition, self.region, self.account
        )
    }

    /// An IAM role (IAM is global: no region).
    pub fn role(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition, self.account)
    }

    /// An SQS queue.
    pub fn queue(&self, name: &str) -> String {
        format!(
            "arn:{}:sqs:{}:{}:{name}",
            self.partition, self.region, self.account
        )
    }

    /// An SNS topic.
    pub fn topic(&self, name: &str) -> String {
        format!(
            "arn:{}:sns:{}:{}:{name}",
            self.partition, self.region, self.account
        )
    }

    /// A CloudWatch Logs log group's streams.
    pub fn log_streams(&self, group: &str) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:{group}:log-stream:*",
            self.partition, self.region, self.account
        )
    }
}

/// An S3 bucket in `partition`: all an S3 ARN holds.
pub fn bucket(partition: &str, name: &str) -> String {
    format!("arn:{partition}:s3:::{name}")
}

/// The AWS partition of a region: `aws-cn` for China, `aws-us-gov` for GovCloud, `aws-iso`
/// and `aws-iso-b` for the isolated regions, `aws` otherwise.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_regions() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("cn-northwest-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("us-isob-east-1"), "aws-iso-b");
        assert_eq!(partition("us-iso-east-1"), "aws-iso");
    }

    #[test]
    fn each_service_has_its_shape() {
        let s = Scope::new("us-west-2", "123456789012");
        assert_eq!(s.bucket("b"), "arn:aws:s3:::b");
        assert_eq!(
            s.function("f"),
            "arn:aws:lambda:us-west-2:123456789012:function:f"
        );
        assert_eq!(s.role("r"), "arn:aws:iam::123456789012:role/r");
        assert_eq!(s.queue("q"), "arn:aws:sqs:us-west-2:123456789012:q");
        assert_eq!(s.topic("t"), "arn:aws:sns:us-west-2:123456789012:t");
        assert_eq!(
            Scope::local("eu-west-1").stream("s"),
            "arn:aws:kinesis:eu-west-1:000000000000:stream/s"
        );
    }
}

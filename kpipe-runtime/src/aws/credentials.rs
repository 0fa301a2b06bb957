//! The SDK's credentials for object_store's S3 backend, refreshed as they expire.

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::AwsCredential;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// object_store's `CredentialProvider` over the SDK's provider chain (environment, profile,
/// SSO, instance or container role): temporary credentials are fetched again before they
/// expire, so a long `run --to s3` keeps writing after the first ones lapse.
#[derive(Debug)]
pub(crate) struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl SdkCredentials {
    pub(crate) fn new(provider: SharedCredentialsProvider) -> Self {
        SdkCredentials {
            provider,
            cached: Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<Arc<AwsCredential>> {
        let cached = self.cached.lock().expect("credentials lock");
        let (credential, expiry) = cached.as_ref()?;
        match expiry {
            Some(at) if *at <= SystemTime::now() + REFRESH_BEFORE_EXPIRY => None,
            _ => Some(Arc::clone(credential)),
        }
    }
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: format!("AWS credentials: {e}").into(),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_owned(),
            secret_key: c.secret_access_key().to_owned(),
            token: c.session_token().map(str::to_owned),
        });
        *self.cached.lock().expect("credentials lock") =
            Some((Arc::clone(&credential), c.expiry()));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use object_store::CredentialProvider;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Hands out credentials that expire `valid` from now, counting the calls.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        valid: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key-{n}"),
                "secret",
                Some("token".into()),
                Some(SystemTime::now() + self.valid),
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn credentials_are_reused_until_they_near_expiry_then_fetched_again() {
        let calls = Arc::new(AtomicU32::new(0));
        let long = SdkCredentials::new(SharedCredentialsProvider::new(Counting {
            calls: Arc::clone(&calls),
            valid: Duration::from_secs(3600),
        }));
        assert_eq!(long.get_credential().await.unwrap().key_id, "key-0");
        assert_eq!(long.get_credential().await.unwrap().key_id, "key-0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Within five minutes of expiry: fetched on every use until new ones come.
        let calls = Arc::new(AtomicU32::new(0));
        let short = SdkCredentials::new(SharedCredentialsProvider::new(Counting {
            calls: Arc::clone(&calls),
            valid: Duration::from_secs(60),
        }));
        assert_eq!(short.get_credential().await.unwrap().key_id, "key-0");
        let again = short.get_credential().await.unwrap();
        assert_eq!(
            (again.key_id.as_str(), again.token.as_deref()),
            ("key-1", Some("token"))
        );
    }
}

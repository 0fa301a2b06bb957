//! The IAM roles kpipe owns, written from [`crate::desired::roles`] with the references
//! resolved: the same trust, statements and tags as the template's.

use super::{Aws, ProvisionError, call_err};
use crate::desired::{Env, Role};
use crate::pipeline::Pipeline;

impl<P: Pipeline> Aws<P> {
    /// Creates `role` if it is missing, then writes its trust policy, inline policy and tags
    /// (every apply: they are cheap to write and this keeps them in sync); true when created.
    pub(crate) async fn ensure_role(&self, role: &Role, env: &Env) -> Result<bool, ProvisionError> {
        let resource = format!("iam role {}", role.name);
        let render = |s: &crate::desired::Sub| serde_json::Value::String(s.resolve(env));
        let trust = role.trust(&render).to_string();
        let tags: Vec<aws_sdk_iam::types::Tag> = role
            .tags
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_iam::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        let created = match self.iam.get_role().role_name(&role.name).send().await {
            Ok(_) => {
                self.iam
                    .update_assume_role_policy()
                    .role_name(&role.name)
                    .policy_document(&trust)
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "write the trust policy of", e))?;
                self.iam
                    .tag_role()
                    .role_name(&role.name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "tag", e))?;
                false
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                self.iam
                    .create_role()
                    .role_name(&role.name)
                    .assume_role_policy_document(&trust)
                    .description(&role.description)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "create", e))?;
                true
            }
            Err(e) => return Err(call_err(&resource, "look up", e)),
        };
        self.iam
            .put_role_policy()
            .role_name(&role.name)
            .policy_name(role.policy_name)
            .policy_document(role.policy(&render).to_string())
            .send()
            .await
            .map_err(|e| call_err(&resource, "write the policy of", e))?;
        Ok(created)
    }

    /// The inline policy and trust policy of role `name` as AWS has them (for tests and
    /// drift checks): `None` when the role does not exist.
    pub async fn role_documents(
        &self,
        name: &str,
        policy_name: &str,
    ) -> Result<Option<(serde_json::Value, serde_json::Value)>, ProvisionError> {
        let resource = format!("iam role {name}");
        let role = match self.iam.get_role().role_name(name).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(call_err(&resource, "look up", e)),
        };
        let policy = self
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
            .map_err(|e| call_err(&resource, "read the policy of", e))?;
        // IAM returns policy documents URL-encoded (RFC 3986).
        let decode = |text: &str| {
            let text = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text.into()))
        };
        let trust = role
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .map_or(serde_json::Value::Null, decode);
        Ok(Some((decode(policy.policy_document()), trust)))
    }

    /// Deletes a role kpipe created and its inline policy; false when it was already gone.
    pub(crate) async fn delete_role(&self, role: &Role) -> Result<bool, ProvisionError> {
        let _ = self
            .iam
            .delete_role_policy()
            .role_name(&role.name)
            .policy_name(role.policy_name)
            .send()
            .await;
        match self.iam.delete_role().role_name(&role.name).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_no_such_entity_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(call_err(&format!("iam role {}", role.name), "delete", e)),
        }
    }
}

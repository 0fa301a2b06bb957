//! The Lambda functions of a pipeline: creating or updating them with their code
//! ([`crate::artifacts`]) so that a second `apply` uploads nothing.

use super::plan::FunctionState;
use super::{Aws, ProvisionError, call_err};
pub use crate::artifacts::CodeSource;
use crate::artifacts::{Code, RUNTIME, architecture_name};
use crate::desired::Env;
use crate::pipeline::Pipeline;
use aws_sdk_lambda::types as lm;
use std::collections::HashMap;
use std::sync::Arc;

impl<P: Pipeline> Aws<P> {
    /// Every function as the declaration wants it, with its code's hash (building it if need
    /// be).
    pub(crate) async fn desired_functions(
        &self,
        env: &Env,
    ) -> Result<Vec<FunctionState>, ProvisionError> {
        let spec = self.spec();
        let mut out = Vec::new();
        for (stage, lambda) in crate::desired::functions(spec) {
            let code = self
                .artifacts
                .code(stage, lambda)
                .await
                .map_err(ProvisionError::from)?;
            let role = env
                .value(&format!(
                    "{}.Arn",
                    crate::cloudformation::logical_id(stage, "FunctionRole")
                ))
                .unwrap_or_default()
                .to_owned();
            out.push(FunctionState {
                stage: stage.to_owned(),
                name: lambda.name.to_owned(),
                memory_mib: lambda.memory_mib,
                timeout_secs: lambda.timeout_secs,
                architecture: architecture_name(lambda.architecture).to_owned(),
                role,
                runtime: RUNTIME.to_owned(),
                description: crate::desired::function_description(spec, stage),
                code_sha256: code.sha256.clone(),
            });
        }
        Ok(out)
    }

    /// A function as AWS describes it, and its tags; `None` when there is none.
    pub(crate) async fn current_function(
        &self,
        desired: &FunctionState,
    ) -> Result<Option<(FunctionState, HashMap<String, String>)>, ProvisionError> {
        let out = match self
            .lambda
            .get_function()
            .function_name(&desired.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(call_err(
                    &format!("lambda function {}", desired.name),
                    "describe",
                    e,
                ));
            }
        };
        let Some(c) = out.configuration() else {
            return Ok(None);
        };
        let state = FunctionState {
            stage: desired.stage.clone(),
            name: desired.name.clone(),
            memory_mib: c
                .memory_size()
                .unwrap_or(crate::desired::aws_defaults::FUNCTION_MEMORY_MIB as i32)
                as u32,
            timeout_secs: c
                .timeout()
                .unwrap_or(crate::desired::aws_defaults::FUNCTION_TIMEOUT_SECS as i32)
                as u32,
            architecture: c
                .architectures()
                .first()
                .map_or("x86_64", |a| a.as_str())
                .to_owned(),
            role: c.role().unwrap_or_default().to_owned(),
            runtime: c.runtime().map_or("", |r| r.as_str()).to_owned(),
            description: c.description().unwrap_or_default().to_owned(),
            code_sha256: c.code_sha256().unwrap_or_default().to_owned(),
        };
        Ok(Some((state, out.tags().cloned().unwrap_or_default())))
    }

    /// Creates the function with its code and tags, then waits until it is Active.
    pub(crate) async fn create_function(
        &self,
        f: &FunctionState,
        tags: &[(String, String)],
    ) -> Result<(), ProvisionError> {
        let resource = format!("lambda function {}", f.name);
        let code = self.code_of(f).await?;
        // A role made a moment ago may not be assumable by Lambda yet (IAM is eventually
        // consistent): Lambda then answers InvalidParameterValue, worth a few retries.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .lambda
                .create_function()
                .function_name(&f.name)
                .runtime(lm::Runtime::from(f.runtime.as_str()))
                .handler("bootstrap")
                .role(&f.role)
                .memory_size(f.memory_mib as i32)
                .timeout(f.timeout_secs as i32)
                .architectures(lm::Architecture::from(f.architecture.as_str()))
                .description(&f.description)
                .set_tags(Some(tags.iter().cloned().collect()))
                .code(
                    lm::FunctionCode::builder()
                        .zip_file(aws_sdk_lambda::primitives::Blob::new(code.zip.clone()))
                        .build(),
                )
                .send()
                .await;
            match sent {
                Ok(_) => break,
                Err(e)
                    if attempt < 8
                        && e.as_service_error()
                            .is_some_and(|s| s.is_invalid_parameter_value_exception()) =>
                {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(e) => return Err(call_err(&resource, "create", e)),
            }
        }
        self.wait_function_ready(&f.name).await
    }

    /// Uploads the function's code (and architecture), then waits for the update.
    pub(crate) async fn update_function_code(
        &self,
        f: &FunctionState,
    ) -> Result<(), ProvisionError> {
        let code = self.code_of(f).await?;
        self.wait_function_ready(&f.name).await?;
        self.lambda
            .update_function_code()
            .function_name(&f.name)
            .zip_file(aws_sdk_lambda::primitives::Blob::new(code.zip.clone()))
            .architectures(lm::Architecture::from(f.architecture.as_str()))
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("lambda function {}", f.name),
                    "update the code of",
                    e,
                )
            })?;
        self.wait_function_ready(&f.name).await
    }

    /// Changes the function's configuration, then waits for the update.
    pub(crate) async fn update_function_config(
        &self,
        f: &FunctionState,
    ) -> Result<(), ProvisionError> {
        self.wait_function_ready(&f.name).await?;
        self.lambda
            .update_function_configuration()
            .function_name(&f.name)
            .runtime(lm::Runtime::from(f.runtime.as_str()))
            .handler("bootstrap")
            .role(&f.role)
            .memory_size(f.memory_mib as i32)
            .timeout(f.timeout_secs as i32)
            .description(&f.description)
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("lambda function {}", f.name),
                    "update the configuration of",
                    e,
                )
            })?;
        self.wait_function_ready(&f.name).await
    }

    async fn code_of(&self, f: &FunctionState) -> Result<Arc<Code>, ProvisionError> {
        let lambda = crate::desired::functions(self.spec())
            .into_iter()
            .find(|(stage, _)| *stage == f.stage)
            .map(|(_, l)| l)
            .ok_or_else(|| ProvisionError::Build {
                resource: format!("lambda function {}", f.name),
                message: format!("no stage `{}` in the pipeline", f.stage),
            })?;
        Ok(self.artifacts.code(&f.stage, lambda).await?)
    }

    /// Waits until the function's `State` is Active and its `LastUpdateStatus` Successful
    /// ("Lambda function states",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html>).
    pub(crate) async fn wait_function_ready(&self, name: &str) -> Result<(), ProvisionError> {
        let resource = format!("lambda function {name}");
        self.wait_until(&resource, || async {
            let c = self
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| call_err(&resource, "describe", e))?;
            let state = c.state().map_or("Active", |s| s.as_str()).to_owned();
            let update = c
                .last_update_status()
                .map_or("Successful", |s| s.as_str())
                .to_owned();
            Ok(match (state.as_str(), update.as_str()) {
                ("Active", "Successful") => super::wait::Wait::Done,
                ("Failed", _) | (_, "Failed") => super::wait::Wait::Failed(format!(
                    "{state}/{update}: {}",
                    c.state_reason()
                        .or(c.last_update_status_reason())
                        .unwrap_or_default()
                )),
                _ => super::wait::Wait::Pending(format!("{state}/{update}")),
            })
        })
        .await
    }

    /// Deletes a function; false when it was already gone.
    pub(crate) async fn delete_function(&self, name: &str) -> Result<bool, ProvisionError> {
        match self
            .lambda
            .delete_function()
            .function_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(call_err(&format!("lambda function {name}"), "delete", e)),
        }
    }
}

//! Glue table operations for converting destinations (`format: parquet`): the table as Glue
//! describes it, and create, update and replace from the desired state (AWS Glue API,
//! CreateTable: <https://docs.aws.amazon.com/glue/latest/webapi/API_CreateTable.html>).

use crate::aws::plan::TableState;
use crate::aws::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::OWNER_TAG;
use crate::pipeline::Pipeline;
use aws_sdk_glue::types as gl;

impl<P: Pipeline> Aws<P> {
    /// A Glue table as Glue returns it; `None` when there is none.
    async fn get_table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<gl::Table>, ProvisionError> {
        match self
            .glue
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_err(
                &format!("glue table {database}.{name}"),
                "describe",
                e,
            )),
        }
    }

    /// A Glue table as kpipe compares it; `None` when there is none.
    pub(crate) async fn current_table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<TableState>, ProvisionError> {
        let Some(t) = self.get_table(database, name).await? else {
            return Ok(None);
        };
        let sd = t.storage_descriptor();
        Ok(Some(TableState {
            database: database.to_owned(),
            name: name.to_owned(),
            columns: sd
                .map(|sd| {
                    sd.columns()
                        .iter()
                        .map(|c| {
                            (
                                c.name().to_owned(),
                                c.r#type().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            location: sd
                .and_then(|sd| sd.location())
                .unwrap_or_default()
                .to_owned(),
            format: t
                .parameters()
                .and_then(|p| p.get("classification"))
                .cloned()
                .unwrap_or_default(),
        }))
    }

    /// The `kpipe:pipeline` parameter of a Glue table: `None` when there is no table,
    /// `Some(None)` for a table kpipe did not create.
    pub(crate) async fn table_owner(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<Option<String>>, ProvisionError> {
        Ok(self
            .get_table(database, name)
            .await?
            .map(|t| t.parameters().and_then(|p| p.get(OWNER_TAG)).cloned()))
    }

    /// Runs `Op::CreateTable`: the database first when there is none.
    pub(super) async fn run_create_table(
        &self,
        t: &TableState,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let resource = format!("glue database {}", t.database);
        let input = gl::DatabaseInput::builder()
            .name(&t.database)
            .description(format!("kpipe: tables of pipeline {}", self.spec().name))
            .build()
            .map_err(|e| call_err(&resource, "build the request for", e))?;
        match self
            .glue
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => report.actions.push(format!("created {resource}")),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => return Err(call_err(&resource, "create", e)),
        }
        self.glue
            .create_table()
            .database_name(&t.database)
            .table_input(self.table_input(t)?)
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("glue table {}.{}", t.database, t.name),
                    "create",
                    e,
                )
            })?;
        report.actions.push(format!(
            "created glue table {}.{} ({} columns)",
            t.database,
            t.name,
            t.columns.len()
        ));
        Ok(())
    }

    /// Runs `Op::UpdateTable`.
    pub(super) async fn run_update_table(
        &self,
        t: &TableState,
        changed: &[String],
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        self.glue
            .update_table()
            .database_name(&t.database)
            .table_input(self.table_input(t)?)
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("glue table {}.{}", t.database, t.name),
                    "update",
                    e,
                )
            })?;
        report.actions.push(format!(
            "updated glue table {}.{}: {}",
            t.database,
            t.name,
            changed.join(", ")
        ));
        Ok(())
    }

    /// Runs `Op::ReplaceTable`: the table is deleted and created again (its objects in S3
    /// stay where they are).
    pub(super) async fn run_replace_table(
        &self,
        t: &TableState,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        self.delete_table(&t.database, &t.name).await?;
        report
            .actions
            .push(format!("deleted glue table {}.{}", t.database, t.name));
        self.run_create_table(t, report).await
    }

    /// Deletes a Glue table; one already gone is not an error.
    pub(crate) async fn delete_table(
        &self,
        database: &str,
        name: &str,
    ) -> Result<(), ProvisionError> {
        match self
            .glue
            .delete_table()
            .database_name(database)
            .name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(call_err(
                &format!("glue table {database}.{name}"),
                "delete",
                e,
            )),
        }
    }

    /// The table's definition: an external table of the format's Hive classes, its columns
    /// from the record type, and the pipeline's owner tag as a parameter (Glue tables take
    /// tags only through the database's catalog, so kpipe marks its tables this way).
    fn table_input(&self, t: &TableState) -> Result<gl::TableInput, ProvisionError> {
        let resource = format!("glue table {}.{}", t.database, t.name);
        let err = |e| call_err(&resource, "build the request for", e);
        let (input, output, serde) = t.storage();
        let mut sd = gl::StorageDescriptor::builder()
            .location(&t.location)
            .input_format(input)
            .output_format(output)
            .serde_info(
                gl::SerDeInfo::builder()
                    .serialization_library(serde)
                    .build(),
            );
        for (name, ty) in &t.columns {
            sd = sd.columns(
                gl::Column::builder()
                    .name(name)
                    .r#type(ty)
                    .build()
                    .map_err(err)?,
            );
        }
        gl::TableInput::builder()
            .name(&t.name)
            .description(format!(
                "kpipe: {} records of pipeline {}",
                t.format,
                self.spec().name
            ))
            .table_type("EXTERNAL_TABLE")
            .parameters("classification", &t.format)
            .parameters(OWNER_TAG, self.spec().name)
            .storage_descriptor(sd.build())
            .build()
            .map_err(err)
    }
}

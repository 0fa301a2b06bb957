//! Record format conversion (`format: parquet`): one buffer's JSON records become one Parquet
//! object, as Firehose's OpenX JSON SerDe and Parquet SerDe do ("Convert input data format in
//! Amazon Data Firehose",
//! <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html>).
//!
//! A record converts when it decodes as the destination's record type and each value fits
//! its column; one that does not becomes a `format-conversion-failed` error document and the
//! rest of the object is written.
//!
//! Rows go in row groups of at most [`ROW_GROUP_ROWS`]. A buffer hands each full group's
//! records to a blocking task as soon as it has them ([`Converter::build`]), so decoding runs
//! on the other core while records keep arriving and a group's JSON is freed once it is
//! columns; the flush builds the last group and encodes them all ([`Converter::finish`]).

use crate::engine::compress::Chunks;
use crate::firehose::DataCatalogTable;
use crate::spec::ConversionSpec;

/// One buffer converted.
pub(crate) struct Converted {
    /// The object's bytes; `None` when no record converted (no object is written).
    pub(crate) body: Option<object_store::PutPayload>,
    /// Records in the object.
    pub(crate) rows: u64,
    /// Records that did not convert, with why.
    pub(crate) failures: Vec<(Vec<u8>, String)>,
}

/// The Glue table of a destination, as its error documents name it.
pub(crate) fn catalog_table(c: &ConversionSpec, region: &str) -> DataCatalogTable {
    let scope = crate::arn::Scope::local(region);
    DataCatalogTable {
        catalog_id: scope.account.to_owned(),
        database_name: c.table.database.to_owned(),
        table_name: c.table.name.to_owned(),
        region: region.to_owned(),
        version_id: "LATEST".to_owned(),
        catalog_arn: scope.glue_catalog(),
    }
}

/// Rows per Parquet row group: a buffer hands its records over in groups of this many.
pub(crate) const ROW_GROUP_ROWS: usize = 64 * 1024;

/// A row group being built from a buffer's records.
pub(crate) type Group = tokio::task::JoinHandle<Result<Built, String>>;

#[cfg(feature = "parquet")]
pub(crate) use self::parquet_writer::{Built, Converter};

#[cfg(feature = "parquet")]
mod parquet_writer {
    use super::{Chunks, ConversionSpec, Converted, Group, ROW_GROUP_ROWS};
    use crate::schema::{PushRow, RowError};
    use crate::spec::S3Spec;
    use crate::spec::{ColumnarFormat, ParquetCompression, ParquetWriterVersion};
    use arrow_array::{Array, Int64Array, RecordBatch, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, FieldRef, Schema as ArrowSchema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, GzipLevel};
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use std::sync::Arc;

    /// A built row group: its rows, and the records that did not convert with why.
    pub(crate) struct Built {
        batch: RecordBatch,
        failures: Vec<(Vec<u8>, String)>,
    }

    /// Converts a destination's buffers to Parquet objects.
    pub(crate) struct Converter {
        /// What records are appended as: a timestamp held in an integer field is an Int64.
        fields: Vec<FieldRef>,
        /// What the file holds.
        schema: Arc<ArrowSchema>,
        /// The columns read as integers and written as timestamps.
        integer_timestamps: Vec<usize>,
        output: Output,
        push_row: PushRow,
    }

    /// The file format and its writer's settings.
    enum Output {
        Parquet(Box<WriterProperties>),
        /// ORC (feature `orc`): the codec and the stripe size.
        #[cfg(feature = "orc")]
        Orc(Option<orc_rust::compression::CompressionType>, usize),
    }

    impl Converter {
        /// The converter of `s3`'s declared conversion.
        ///
        /// # Errors
        /// The record type has no Glue columns, or the format is one the local engine does
        /// not write.
        pub(crate) fn new(
            s3: &S3Spec,
            conversion: &ConversionSpec,
            push_row: PushRow,
        ) -> Result<Self, String> {
            let columns = conversion
                .columns()
                .map_err(|e| format!("destination `{}`: {e}", s3.id))?;
            let schema = Arc::new(columns.to_arrow());
            let mut fields = crate::schema::arrow_fields(&columns);
            let mut integer_timestamps = Vec::new();
            for (i, f) in fields.iter_mut().enumerate() {
                if columns.integer_timestamps.contains(f.name()) {
                    *f = Arc::new(Field::new(f.name(), DataType::Int64, true));
                    integer_timestamps.push(i);
                }
            }
            let output = output(s3, conversion, &columns)?;
            Ok(Converter {
                fields,
                schema,
                integer_timestamps,
                output,
                push_row,
            })
        }

        /// Builds one row group from records (`lens` are their lengths, in order), on a
        /// blocking thread.
        pub(crate) fn build(&self, data: Chunks, lens: Vec<u32>) -> Result<Built, String> {
            let records: Vec<&[u8]> = records(&data, &lens).collect();
            self.build_group(&records)
        }

        /// Finishes a buffer's object: waits for its groups, builds the last one from the
        /// records not handed over yet, and encodes them in order.
        pub(crate) async fn finish(
            self: std::sync::Arc<Self>,
            groups: Vec<Group>,
            tail: Chunks,
            tail_lens: Vec<u32>,
        ) -> Result<Converted, String> {
            let mut built = Vec::with_capacity(groups.len() + 1);
            for g in groups {
                built.push(
                    g.await
                        .map_err(|e| format!("building a row group failed: {e}"))??,
                );
            }
            tokio::task::spawn_blocking(move || {
                if !tail_lens.is_empty() {
                    built.push(self.build(tail, tail_lens)?);
                }
                self.encode(built)
            })
            .await
            .map_err(|e| format!("encoding the object failed: {e}"))?
        }

        fn encode(&self, built: Vec<Built>) -> Result<Converted, String> {
            let capacity: usize = built.iter().map(|b| b.batch.get_array_memory_size()).sum();
            let mut failures = Vec::new();
            let mut batches = Vec::with_capacity(built.len());
            for b in built {
                failures.extend(b.failures);
                if b.batch.num_rows() > 0 {
                    batches.push(b.batch);
                }
            }
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let bytes = match &self.output {
                Output::Parquet(props) => {
                    let mut writer = ArrowWriter::try_new(
                        Vec::with_capacity(capacity / 4),
                        Arc::clone(&self.schema),
                        Some(WriterProperties::clone(props)),
                    )
                    .map_err(|e| e.to_string())?;
                    for batch in &batches {
                        writer.write(batch).map_err(|e| e.to_string())?;
                        writer.flush().map_err(|e| e.to_string())?;
                    }
                    writer.into_inner().map_err(|e| e.to_string())?
                }
                #[cfg(feature = "orc")]
                Output::Orc(compression, stripe) => {
                    let mut out = Vec::with_capacity(capacity / 4);
                    let mut builder = orc_rust::arrow_writer::ArrowWriterBuilder::new(
                        &mut out,
                        Arc::clone(&self.schema),
                    )
                    .with_stripe_byte_size(*stripe);
                    if let Some(c) = compression {
                        builder = builder.with_compression(*c);
                    }
                    let mut writer = builder.try_build().map_err(|e| e.to_string())?;
                    for batch in &batches {
                        writer.write(batch).map_err(|e| e.to_string())?;
                    }
                    writer.close().map_err(|e| e.to_string())?;
                    out
                }
            };
            Ok(Converted {
                body: (rows > 0).then(|| object_store::PutPayload::from(bytes)),
                rows,
                failures,
            })
        }

        /// One row group: the records that convert, and those that do not with why.
        fn build_group(&self, records: &[&[u8]]) -> Result<Built, String> {
            let mut builder = self.builder()?;
            let mut failures = Vec::new();
            // The records appended so far, to build the group again without one whose value
            // did not fit after part of it was appended.
            let mut group: Vec<&[u8]> = Vec::with_capacity(records.len());
            for &record in records {
                match (self.push_row)(record, &mut builder) {
                    Ok(()) => group.push(record),
                    Err(RowError::Decode(reason)) => failures.push((record.to_vec(), reason)),
                    Err(RowError::Push(reason)) => {
                        failures.push((record.to_vec(), reason));
                        builder = self.builder()?;
                        for r in &group {
                            (self.push_row)(r, &mut builder).map_err(|e| format!("{e:?}"))?;
                        }
                    }
                }
            }
            Ok(Built {
                batch: self.batch(&mut builder)?,
                failures,
            })
        }

        fn builder(&self) -> Result<serde_arrow::ArrayBuilder, String> {
            serde_arrow::ArrayBuilder::from_arrow(&self.fields).map_err(|e| e.to_string())
        }

        /// The builder's rows as a batch of the file's schema.
        fn batch(&self, builder: &mut serde_arrow::ArrayBuilder) -> Result<RecordBatch, String> {
            let batch = builder.to_record_batch().map_err(|e| e.to_string())?;
            // serde_arrow's batch has the same fields but for timestamps held in integers,
            // which become timestamps of the same milliseconds here.
            let mut columns = batch.columns().to_vec();
            for &i in &self.integer_timestamps {
                let ints = columns[i]
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or("an integer timestamp column is not Int64")?;
                columns[i] = Arc::new(
                    TimestampMillisecondArray::new(ints.values().clone(), ints.nulls().cloned())
                        .with_timezone("UTC"),
                );
            }
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| e.to_string())
        }
    }

    /// The writer's settings of the declared format.
    fn output(
        s3: &S3Spec,
        conversion: &ConversionSpec,
        columns: &crate::schema::Schema,
    ) -> Result<Output, String> {
        match conversion.format {
            ColumnarFormat::Parquet {
                compression,
                page_size_bytes,
                writer_version,
                ..
            } => Ok(Output::Parquet(Box::new(
                WriterProperties::builder()
                    .set_compression(match compression {
                        ParquetCompression::Snappy => Compression::SNAPPY,
                        ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
                        ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
                    })
                    .set_data_page_size_limit(page_size_bytes as usize)
                    .set_writer_version(match writer_version {
                        ParquetWriterVersion::V1 => WriterVersion::PARQUET_1_0,
                        ParquetWriterVersion::V2 => WriterVersion::PARQUET_2_0,
                    })
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build(),
            ))),
            #[cfg(feature = "orc")]
            ColumnarFormat::Orc {
                compression,
                stripe_size_bytes,
                ..
            } => {
                use crate::schema::ColumnType;
                use orc_rust::compression::CompressionType;
                // orc-rust writes primitive columns only.
                if let Some(c) = columns.columns.iter().find(|c| {
                    matches!(
                        c.ty,
                        ColumnType::Array(_) | ColumnType::Map(..) | ColumnType::Struct(_)
                    )
                }) {
                    return Err(format!(
                        "destination `{}`: the local engine writes ORC for records of flat columns (orc-rust writes no nested types), and column `{}` is {}; use `format: parquet` locally, or flatten the record",
                        s3.id, c.name, c.ty
                    ));
                }
                Ok(Output::Orc(
                    match compression {
                        crate::spec::OrcCompression::Snappy => Some(CompressionType::Snappy),
                        crate::spec::OrcCompression::Zlib => Some(CompressionType::Zlib),
                        crate::spec::OrcCompression::None => None,
                    },
                    stripe_size_bytes as usize,
                ))
            }
            #[cfg(not(feature = "orc"))]
            ColumnarFormat::Orc { .. } => {
                let _ = columns;
                Err(format!(
                    "destination `{}`: writing ORC locally needs kpipe-runtime's `orc` feature (it is provisioned in AWS either way)",
                    s3.id
                ))
            }
        }
    }

    /// The buffer's records: a record is never split across chunks.
    fn records<'a>(data: &'a Chunks, lens: &'a [u32]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut chunks = data.chunks().iter();
        let mut current: &[u8] = &[];
        lens.iter().filter_map(move |&len| {
            let len = len as usize;
            while current.len() < len {
                current = chunks.next()?;
            }
            let (record, rest) = current.split_at(len);
            current = rest;
            Some(record)
        })
    }
}

/// Without the `parquet` feature no destination converts (`pipeline!` refuses `format:
/// parquet` then), so there is never a converter or a row group.
#[cfg(not(feature = "parquet"))]
pub(crate) enum Converter {}

/// See [`Converter`].
#[cfg(not(feature = "parquet"))]
pub(crate) enum Built {}

#[cfg(not(feature = "parquet"))]
impl Converter {
    pub(crate) fn build(&self, _: Chunks, _: Vec<u32>) -> Result<Built, String> {
        match *self {}
    }

    pub(crate) async fn finish(
        self: std::sync::Arc<Self>,
        _: Vec<Group>,
        _: Chunks,
        _: Vec<u32>,
    ) -> Result<Converted, String> {
        match *self {}
    }
}

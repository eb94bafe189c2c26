# A Glue table over the dead-letter store, for Athena: one row per rejected record, read from
# the published objects only (<warehouse>/<dead-letter prefix>/<namespace>.<table>/<shard>/...).
# Staged objects live beside that folder (<prefix>_pending/), so a commit attempt that never
# landed is never counted. Unlike the Iceberg table, the consumer never writes this table's
# metadata, so Terraform owns it.

resource "aws_glue_catalog_table" "dead_letters" {
  name          = "${var.table_name}_dead_letters"
  database_name = aws_glue_catalog_database.raw.name
  description   = "Records the paystream consumer rejected (NDJSON dead letters of ${local.table_identifier}); each is in exactly one object."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL       = "TRUE"
    classification = "json"
  }

  storage_descriptor {
    location      = "${local.warehouse_uri}/${local.dead_letter_prefix}/${local.table_identifier}/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "dead-letter-json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
    }

    # The fields of iceberg.DeadLetterRecord (deploy tests keep them in step). arrived_at is
    # RFC 3339 text: from_iso8601_timestamp(arrived_at) in queries.
    columns {
      name    = "table"
      type    = "string"
      comment = "the Iceberg table the record was meant for (NAMESPACE.NAME); quote it in SQL"
    }
    columns {
      name    = "shard_id"
      type    = "string"
      comment = "Kinesis shard id, or file-<hash> for consumer ingest-file"
    }
    columns {
      name    = "sequence_number"
      type    = "string"
      comment = "Kinesis sequence number (decimal text), or line number for ingest-file"
    }
    columns {
      name    = "sub_sequence_number"
      type    = "bigint"
      comment = "the user record's index in a KPL aggregate; absent (NULL) for a plain record"
    }
    columns {
      name    = "arrived_at"
      type    = "string"
      comment = "when the consumer read the record, RFC 3339 UTC"
    }
    columns {
      name    = "reasons"
      type    = "array<string>"
      comment = "why it was rejected"
    }
    columns {
      name    = "raw"
      type    = "string"
      comment = "the record as read; standard base64 when raw_base64 is true"
    }
    columns {
      name    = "raw_base64"
      type    = "boolean"
      comment = "raw is base64 (the record was not valid UTF-8)"
    }
  }
}

resource "aws_athena_named_query" "rejections_by_reason" {
  name        = "${local.name}-rejections-by-reason"
  description = "Dead letters of the last 7 days by reason: records, shards, first and last arrival."
  workgroup   = aws_athena_workgroup.paystream.id
  database    = aws_glue_catalog_database.raw.name
  query       = <<-SQL
    SELECT reason,
           COUNT(*) AS records,
           COUNT(DISTINCT shard_id) AS shards,
           MIN(from_iso8601_timestamp(arrived_at)) AS first_arrived,
           MAX(from_iso8601_timestamp(arrived_at)) AS last_arrived
    FROM ${aws_glue_catalog_database.raw.name}.${aws_glue_catalog_table.dead_letters.name}
    CROSS JOIN UNNEST(reasons) AS r (reason)
    WHERE from_iso8601_timestamp(arrived_at) >= current_timestamp - INTERVAL '7' DAY
    GROUP BY reason
    ORDER BY records DESC;
  SQL
}

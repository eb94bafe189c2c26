# Athena workgroup for querying the table: engine v3 (Iceberg), results forced into the
# results bucket encrypted with the environment's key, and a per-query scan limit so a
# mistaken full scan cannot run up the bill.

resource "aws_athena_workgroup" "paystream" {
  name          = local.name
  description   = "Queries over ${local.table_identifier}"
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena_results.bucket}/results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.paystream.arn
      }
    }
  }
}

resource "aws_athena_named_query" "revenue_by_tier" {
  name        = "${local.name}-revenue-by-tier"
  description = "The original Quick Start query: succeeded payments and revenue per subscription tier."
  workgroup   = aws_athena_workgroup.paystream.id
  database    = aws_glue_catalog_database.raw.name
  query       = <<-SQL
    SELECT subscription_tier, COUNT(*), SUM(amount_usd)
    FROM ${local.table_identifier}
    WHERE status = 'succeeded'
    GROUP BY subscription_tier;
  SQL
}

resource "aws_athena_named_query" "freshness" {
  name        = "${local.name}-freshness"
  description = "Per shard over the last hour: rows, newest row, seconds since it arrived, and event-to-table delay."
  workgroup   = aws_athena_workgroup.paystream.id
  database    = aws_glue_catalog_database.raw.name
  query       = <<-SQL
    SELECT shard_id,
           COUNT(*) AS rows_last_hour,
           MAX(ingested_at) AS newest_ingested_at,
           date_diff('second', MAX(ingested_at), current_timestamp) AS seconds_since_newest,
           approx_percentile(date_diff('millisecond', event_ts, ingested_at), 0.5) / 1000.0 AS p50_event_to_table_s,
           approx_percentile(date_diff('millisecond', event_ts, ingested_at), 0.99) / 1000.0 AS p99_event_to_table_s
    FROM ${local.table_identifier}
    WHERE event_ts >= current_timestamp - INTERVAL '1' HOUR
    GROUP BY shard_id
    ORDER BY shard_id;
  SQL
}

resource "aws_athena_named_query" "duplicates" {
  name        = "${local.name}-duplicate-finder"
  description = "event_ids stored more than once in the last 7 days, with the stream position of every copy (expected: no rows)."
  workgroup   = aws_athena_workgroup.paystream.id
  database    = aws_glue_catalog_database.raw.name
  query       = <<-SQL
    SELECT event_id,
           COUNT(*) AS copies,
           array_agg(format('%s@%s', shard_id, sequence_number) || COALESCE(':' || CAST(sub_sequence_number AS varchar), '')) AS positions
    FROM ${local.table_identifier}
    WHERE event_ts >= current_timestamp - INTERVAL '7' DAY
    GROUP BY event_id
    HAVING COUNT(*) > 1
    ORDER BY copies DESC
    LIMIT 100;
  SQL
}

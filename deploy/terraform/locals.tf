# Names and sizes derived from the variables, used across files.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name       = "paystream-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  stream_name      = local.name
  lease_table_name = "${local.name}-leases"
  # Bucket names are global: the account id keeps them unique.
  warehouse_bucket_name     = "${local.name}-warehouse-${local.account_id}"
  athena_results_bucket     = "${local.name}-athena-results-${local.account_id}"
  warehouse_prefix          = "warehouse"
  dead_letter_prefix        = "_dead_letter"
  warehouse_uri             = "s3://${local.warehouse_bucket_name}/${local.warehouse_prefix}"
  table_identifier          = "${var.glue_database_name}.${var.table_name}"
  consumer_metrics_port     = 9090
  consumer_shutdown_timeout = 20 # seconds; PAYSTREAM_SHUTDOWN_TIMEOUT
  # ECS sends SIGTERM, waits stopTimeout, then SIGKILL: give the consumer's own deadline room.
  consumer_stop_timeout = local.consumer_shutdown_timeout + 10

  # Task count follows throughput when events_per_second is set (the events one task's vCPUs
  # handle), else the shard count: ceil(shards / shards_per_task); either way at most one task
  # per shard (a shard is read by one task at a time, so more would sit idle), scaled on CPU
  # from there up to max_tasks.
  expected_shards  = var.stream_mode == "PROVISIONED" ? var.shard_count : var.on_demand_shard_estimate
  events_per_task  = var.events_per_vcpu * var.task_cpu / 1024
  tasks_for_events = var.events_per_second == null ? 0 : ceil(coalesce(var.events_per_second, 0) / local.events_per_task)
  desired_tasks = (var.events_per_second == null ?
    ceil(local.expected_shards / var.shards_per_task) :
  min(local.expected_shards, max(1, local.tasks_for_events)))
  # The shards each task holds, for its memory.
  shards_per_task = ceil(local.expected_shards / local.desired_tasks)
  max_tasks       = max(local.desired_tasks, coalesce(var.max_tasks, local.expected_shards))

  image = coalesce(var.image, "${aws_ecr_repository.consumer.repository_url}:${coalesce(var.image_tag, "unset")}")

  glue_catalog_arn  = "arn:${local.partition}:glue:${var.region}:${local.account_id}:catalog"
  glue_database_arn = "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/${var.glue_database_name}"
  glue_table_arn    = "arn:${local.partition}:glue:${var.region}:${local.account_id}:table/${var.glue_database_name}/${var.table_name}"
}

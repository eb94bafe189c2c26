# Inputs. environments/dev.tfvars and environments/demo.tfvars set the ones that differ per
# environment; everything else has a default that works for both.

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-west-2"
}

variable "environment" {
  description = "Environment name (dev, demo, ...). Part of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags put on every resource."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets, the image repository and the lease table even when they hold data. Convenient for dev and demo; keep false where the data matters."
  type        = bool
  default     = false
}

# --- Kinesis -------------------------------------------------------------------------------------

variable "stream_mode" {
  description = "Kinesis capacity mode: PROVISIONED (shard_count shards) or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.stream_mode)
    error_message = "stream_mode must be PROVISIONED or ON_DEMAND."
  }
}

variable "shard_count" {
  description = "Number of shards when stream_mode is PROVISIONED (1 MB/s or 1,000 records/s of writes each)."
  type        = number
  default     = 1

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number from 1 to 500."
  }
}

variable "on_demand_shard_estimate" {
  description = "Shards an ON_DEMAND stream is expected to have (AWS starts it with 4); sizes the consumer task count in that mode."
  type        = number
  default     = 4

  validation {
    condition     = var.on_demand_shard_estimate >= 1
    error_message = "on_demand_shard_estimate must be at least 1."
  }
}

variable "stream_retention_hours" {
  description = "How long Kinesis keeps records (24 is included in the shard price; more is billed per shard-hour). This is how long the consumer may be down without losing data."
  type        = number
  default     = 24

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

# --- Consumer service ----------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the consumer image in the ECR repository this module creates (tags are immutable: use the version, e.g. v0.3.0). Required unless image is set."
  type        = string
  default     = null
}

variable "image" {
  description = "Full consumer image reference to run instead of <ecr repository>:<image_tag> (e.g. an image in another registry)."
  type        = string
  default     = null
}

variable "shards_per_task" {
  description = "Shards one consumer task is sized for. Desired tasks = ceil(shards / shards_per_task)."
  type        = number
  default     = 1

  validation {
    condition     = var.shards_per_task >= 1
    error_message = "shards_per_task must be at least 1."
  }
}

variable "events_per_second" {
  description = "Peak events per second the stream carries. When set, the task count follows throughput instead of shards_per_task: ceil(events_per_second / events_per_vcpu × 1024 / task_cpu), at least 1 and at most one task per shard. Null: ceil(shards / shards_per_task)."
  type        = number
  default     = null

  validation {
    condition     = var.events_per_second == null || coalesce(var.events_per_second, 1) > 0
    error_message = "events_per_second must be above 0 (or null to size by shards_per_task)."
  }
}

variable "events_per_vcpu" {
  description = "Events per second one vCPU of a consumer task handles at the CPU target, for events_per_second sizing. BENCHMARKS.md measures 50,000-120,000 per core end to end; the default leaves room for commits, restores and catch-up."
  type        = number
  default     = 20000

  validation {
    condition     = var.events_per_vcpu >= 1000
    error_message = "events_per_vcpu must be at least 1000."
  }
}

variable "commit_mode" {
  description = "How the consumer tasks commit (PAYSTREAM_COMMIT_MODE): \"worker\", each task commits its own batches; \"single\", tasks stage their batches and one elected committer commits them all once per flush_interval, so the table's commit rate does not grow with the task count (README: \"Who commits: --commit-mode\")."
  type        = string
  default     = "worker"

  validation {
    condition     = contains(["worker", "single"], var.commit_mode)
    error_message = "commit_mode must be \"worker\" or \"single\"."
  }
}

variable "read_mode" {
  description = "How the consumer tasks read the stream (PAYSTREAM_READ_MODE): \"polling\", GetRecords at most every 200 ms, sharing each shard's 2 MB/s with every other reader; \"efo\", enhanced fan-out: records pushed within about 70 ms over SubscribeToShard to a stream consumer Terraform registers, with 2 MB/s per shard of its own, at an extra charge per consumer-shard hour and per GB read (README: \"How shards are read: --read-mode\")."
  type        = string
  default     = "polling"

  validation {
    condition     = contains(["polling", "efo"], var.read_mode)
    error_message = "read_mode must be \"polling\" or \"efo\"."
  }
}

variable "max_tasks" {
  description = "Upper bound for CPU target tracking. Default: one task per shard (more tasks than shards would sit idle)."
  type        = number
  default     = null
}

variable "cpu_target_percent" {
  description = "Average service CPU utilisation that target tracking holds."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent > 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Fargate task memory in MiB; must be a valid pairing with task_cpu."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (Graviton, about 20% cheaper; the image must be built for linux/arm64)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "log_level" {
  description = "Consumer --log-level."
  type        = string
  default     = "info"
}

variable "flush_interval" {
  description = "Consumer --flush-interval: the longest a record waits before its micro-batch is committed."
  type        = string
  default     = "1s"
}

variable "failover_time" {
  description = "Consumer --failover-time: how long a lease may go unrenewed before another task takes the shard."
  type        = string
  default     = "10s"
}

variable "dedup_window" {
  description = "Consumer --dedup-window: how long an event_id is remembered to drop producer duplicates."
  type        = string
  default     = "1h"
}

variable "dedup_max_ids" {
  description = "Consumer --dedup-max-ids: most event_ids remembered per shard (28.4 B each). Sizes the task memory check (deploy/README.md, \"Task memory\")."
  type        = number
  default     = 4000000

  validation {
    condition     = var.dedup_max_ids >= 1
    error_message = "dedup_max_ids must be at least 1."
  }
}

variable "initial_position" {
  description = "Consumer --initial-position for shards the table has no position for: trim-horizon, latest or at-timestamp=RFC3339."
  type        = string
  default     = "trim-horizon"
}

# --- Network -------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC for the consumer tasks. Default: the region's default VPC."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets for the consumer tasks. Default: every subnet of the VPC. Tasks need a route to the AWS APIs (public IP, NAT gateway or VPC endpoints)."
  type        = list(string)
  default     = []
}

variable "assign_public_ip" {
  description = "Give tasks a public IP. Needed in public subnets without a NAT gateway (such as the default VPC's) to reach ECR and the AWS APIs; no inbound port is opened either way."
  type        = bool
  default     = true
}

# --- Catalog, storage, query ---------------------------------------------------------------------

variable "glue_database_name" {
  description = "Glue database (Iceberg namespace). The default keeps the original Athena queries working; it is per account and region, so two environments in one account need different names."
  type        = string
  default     = "netflix_revenue_raw"
}

variable "table_name" {
  description = "Iceberg table the consumer creates and writes inside glue_database_name."
  type        = string
  default     = "subscription_payments"
}

variable "dead_letter_retention_days" {
  description = "Days dead-letter objects are kept under warehouse/_dead_letter/ before S3 deletes them."
  type        = number
  default     = 30
}

variable "noncurrent_version_retention_days" {
  description = "Days S3 keeps overwritten or deleted object versions (protection against accidental deletes)."
  type        = number
  default     = 7
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept."
  type        = number
  default     = 7
}

variable "athena_bytes_scanned_cutoff" {
  description = "Athena cancels a query of the workgroup that scans more than this many bytes (minimum 10 MB)."
  type        = number
  default     = 10737418240 # 10 GiB = $0.05 at $5/TB

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MB)."
  }
}

# --- Observability -------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "CloudWatch Logs retention for the consumer's logs."
  type        = number
  default     = 30
}

variable "iterator_age_alarm_seconds" {
  description = "Alarm when the oldest unread record of the stream is older than this."
  type        = number
  default     = 60
}

variable "error_log_alarm_threshold" {
  description = "Alarm when the consumer logs at least this many ERROR lines in 5 minutes."
  type        = number
  default     = 1
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or recovers (for example an SNS topic)."
  type        = list(string)
  default     = []
}

variable "enable_managed_prometheus" {
  description = "Create an Amazon Managed Service for Prometheus workspace and run a collector sidecar that scrapes the consumer's /metrics into it (for the Grafana dashboard)."
  type        = bool
  default     = false
}

variable "collector_image" {
  description = "AWS Distro for OpenTelemetry collector image used as the metrics sidecar."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

# The consumer as an ECS Fargate service. Each task leases a share of the shards; the task
# count starts at the throughput's need (events_per_second) or ceil(shards / shards_per_task),
# and CPU target tracking moves it between that and max_tasks.

resource "aws_ecs_cluster" "paystream" {
  name = local.name

  # Container Insights supplies RunningTaskCount/DesiredTaskCount for the tasks alarm.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

locals {
  # The consumer's configuration. Every key must be a consumer flag's variable (--x-y is
  # PAYSTREAM_X_Y; deploy/taskdef_test.go checks them against `consumer --help`) or AWS_REGION.
  consumer_environment = {
    AWS_REGION                   = var.region
    PAYSTREAM_STREAM             = aws_kinesis_stream.payments.name
    PAYSTREAM_APP_NAME           = local.name
    PAYSTREAM_LEASE_TABLE        = aws_dynamodb_table.leases.name
    PAYSTREAM_CREATE_LEASE_TABLE = "false"
    PAYSTREAM_CATALOG            = "glue"
    PAYSTREAM_WAREHOUSE          = local.warehouse_uri
    PAYSTREAM_TABLE              = local.table_identifier
    PAYSTREAM_DEAD_LETTER_PREFIX = local.dead_letter_prefix
    PAYSTREAM_INITIAL_POSITION   = var.initial_position
    PAYSTREAM_FAILOVER_TIME      = var.failover_time
    PAYSTREAM_FLUSH_INTERVAL     = var.flush_interval
    PAYSTREAM_COMMIT_MODE        = var.commit_mode
    PAYSTREAM_READ_MODE          = var.read_mode
    PAYSTREAM_DEDUP_WINDOW       = var.dedup_window
    PAYSTREAM_DEDUP_MAX_IDS      = tostring(var.dedup_max_ids)
    PAYSTREAM_SHUTDOWN_TIMEOUT   = "${local.consumer_shutdown_timeout}s"
    PAYSTREAM_METRICS_ADDR       = ":${local.consumer_metrics_port}"
    PAYSTREAM_LOG_LEVEL          = var.log_level
    PAYSTREAM_LOG_FORMAT         = "json" # one JSON object per line for CloudWatch Logs Insights and the error filter
    # The Go runtime's soft memory limit: the garbage collector works harder near it instead of
    # letting garbage grow the heap past the task's memory (deploy/README.md, "Task memory").
    GOMEMLIMIT = "${local.consumer_memory_limit_mib}MiB"
  }

  # Task memory (deploy/README.md, "Task memory"), in MiB, from BENCHMARKS.md: per shard a full
  # dedup window (28.4 B per id) and its micro-batches; one window restore at a time (beyond the
  # window it builds: the hashes of at most a quarter of dedup_max_ids, 5 B per id, plus the scan's
  # buffers); one partition rewrite of the maintainer's compaction (the role can move to any task);
  # the runtime, HTTP clients and Iceberg metadata.
  consumer_window_mib       = ceil(var.dedup_max_ids * 28.4 / 1048576)
  consumer_batches_mib      = 32
  consumer_restore_mib      = ceil(var.dedup_max_ids * 5 / 1048576) + 32
  consumer_compact_mib      = 96
  consumer_base_mib         = 64
  consumer_memory_need_mib  = local.shards_per_task * (local.consumer_window_mib + local.consumer_batches_mib) + local.consumer_restore_mib + local.consumer_compact_mib + local.consumer_base_mib
  consumer_memory_limit_mib = floor(var.task_memory * 0.85)

  consumer_container = {
    name      = "consumer"
    image     = local.image
    essential = true
    # Sorted by name so the task definition does not change between plans.
    environment = [for k in sort(keys(local.consumer_environment)) : { name = k, value = local.consumer_environment[k] }]
    portMappings = [{
      name          = "metrics"
      containerPort = local.consumer_metrics_port
      protocol      = "tcp"
    }]
    # SIGTERM, then this many seconds before SIGKILL: above the consumer's own shutdown
    # deadline so it can flush, commit and release its leases.
    stopTimeout = local.consumer_stop_timeout
    # The image is distroless (no shell, no curl): the consumer probes its own /healthz.
    healthCheck = {
      command     = ["CMD", "/consumer", "healthcheck"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    readonlyRootFilesystem = true
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.consumer.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "consumer"
        # A slow log API must never block the consumer's writes to stdout.
        mode            = "non-blocking"
        max-buffer-size = "4m"
      }
    }
  }

  containers = concat(
    [local.consumer_container],
    var.enable_managed_prometheus ? [local.collector_container] : [],
  )
}

resource "aws_ecs_task_definition" "consumer" {
  family                   = "${local.name}-consumer"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(local.containers)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  lifecycle {
    precondition {
      condition     = var.image != null || var.image_tag != null
      error_message = "Set image_tag (the tag you pushed to the ECR repository, see the ecr_repository_url output) or image."
    }
    precondition {
      condition     = local.consumer_memory_need_mib <= local.consumer_memory_limit_mib
      error_message = "task_memory is too small for the shards per task (${local.shards_per_task}) and dedup_max_ids: the consumer needs ${local.consumer_memory_need_mib} MiB, which must fit in 85% of task_memory (GOMEMLIMIT ${local.consumer_memory_limit_mib} MiB); see deploy/README.md, \"Task memory\"."
    }
  }
}

resource "aws_ecs_service" "consumer" {
  name             = "consumer"
  cluster          = aws_ecs_cluster.paystream.id
  task_definition  = aws_ecs_task_definition.consumer.arn
  desired_count    = local.desired_tasks
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # Rolling deploys start new tasks before stopping old ones; leases move over as the old
  # tasks release them on SIGTERM. A deployment whose tasks never turn healthy is rolled back.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = local.subnet_ids
    security_groups  = [aws_security_group.consumer.id]
    assign_public_ip = var.assign_public_ip
  }

  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  # Target tracking owns the count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_iam_role_policy.consumer, aws_iam_role_policy.execution]
}

# --- scaling -------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "consumer" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.paystream.name}/${aws_ecs_service.consumer.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = local.desired_tasks
  max_capacity       = local.max_tasks
}

resource "aws_appautoscaling_policy" "consumer_cpu" {
  name               = "${local.name}-consumer-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.consumer.service_namespace
  resource_id        = aws_appautoscaling_target.consumer.resource_id
  scalable_dimension = aws_appautoscaling_target.consumer.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.cpu_target_percent
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    # Scale out quickly; scale in slowly, since every scale-in moves leases.
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
  }
}

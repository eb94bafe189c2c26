# Logs and alarms. The consumer logs JSON lines to stdout; ECS ships them here.
# Alarms: the stream is not being read fast enough (iterator age), fewer tasks run than
# desired, and the consumer logged errors. Detailed pipeline metrics (freshness, rejects,
# commits) are Prometheus metrics: see prometheus.tf and deploy/prometheus/ for their alerts.

locals {
  log_group_name    = "/ecs/${local.name}"
  metrics_namespace = "Paystream/${local.name}"
}

resource "aws_cloudwatch_log_group" "consumer" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.paystream.arn
}

# Counts ERROR lines. The consumer logs JSON (PAYSTREAM_LOG_FORMAT=json): {"level":"ERROR",...}.
resource "aws_cloudwatch_log_metric_filter" "consumer_errors" {
  name           = "${local.name}-consumer-errors"
  log_group_name = aws_cloudwatch_log_group.consumer.name
  pattern        = "{ $.level = \"ERROR\" }"

  metric_transformation {
    name          = "ConsumerErrorLogs"
    namespace     = local.metrics_namespace
    value         = "1"
    default_value = "0"
    unit          = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name        = "${local.name}-iterator-age"
  alarm_description = "Records wait more than ${var.iterator_age_alarm_seconds}s in ${local.stream_name} before the consumer reads them: it is behind or not running. No data also alarms: an idle but healthy consumer still polls, which reports an age of 0."
  namespace         = "AWS/Kinesis"
  metric_name       = "GetRecords.IteratorAgeMilliseconds"
  dimensions = {
    StreamName = aws_kinesis_stream.payments.name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.iterator_age_alarm_seconds * 1000
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "tasks_below_desired" {
  alarm_name          = "${local.name}-tasks-below-desired"
  alarm_description   = "Fewer consumer tasks run than the service wants for 5 minutes (crash loop, image pull or capacity problem). Shards of missing tasks are read by the others only if they have headroom."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 5
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "missing"
    expression  = "desired - running"
    label       = "Desired minus running tasks"
    return_data = true
  }

  metric_query {
    id = "desired"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions = {
        ClusterName = aws_ecs_cluster.paystream.name
        ServiceName = aws_ecs_service.consumer.name
      }
      stat   = "Minimum"
      period = 60
    }
  }

  metric_query {
    id = "running"
    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions = {
        ClusterName = aws_ecs_cluster.paystream.name
        ServiceName = aws_ecs_service.consumer.name
      }
      stat   = "Minimum"
      period = 60
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "consumer_errors" {
  alarm_name          = "${local.name}-consumer-errors"
  alarm_description   = "The consumer logged ${var.error_log_alarm_threshold} or more ERROR lines in 5 minutes. Look in ${local.log_group_name}."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.consumer_errors.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.error_log_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

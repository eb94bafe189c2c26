# Optional: an Amazon Managed Service for Prometheus workspace, and in every consumer task an
# AWS Distro for OpenTelemetry collector that scrapes the consumer's /metrics over localhost
# and remote-writes to the workspace, so the Grafana dashboard in deploy/grafana works in AWS
# (point an Amazon Managed Grafana or self-run Grafana at the workspace).

resource "aws_prometheus_workspace" "paystream" {
  count = var.enable_managed_prometheus ? 1 : 0
  alias = local.name
}

locals {
  prometheus_endpoint = try(aws_prometheus_workspace.paystream[0].prometheus_endpoint, "")

  collector_config = yamlencode({
    extensions = {
      sigv4auth = { region = var.region, service = "aps" }
    }
    receivers = {
      prometheus = {
        config = {
          scrape_configs = [{
            job_name        = "paystream-consumer"
            scrape_interval = "15s"
            static_configs  = [{ targets = ["localhost:${local.consumer_metrics_port}"] }]
          }]
        }
      }
    }
    processors = {
      # Adds the task ARN and friends, so series from different tasks do not collide.
      "resourcedetection/ecs" = { detectors = ["env", "ecs"], timeout = "5s" }
      batch                   = {}
    }
    exporters = {
      prometheusremotewrite = {
        endpoint                         = "${local.prometheus_endpoint}api/v1/remote_write"
        auth                             = { authenticator = "sigv4auth" }
        resource_to_telemetry_conversion = { enabled = true }
      }
    }
    service = {
      extensions = ["sigv4auth"]
      pipelines = {
        metrics = {
          receivers  = ["prometheus"]
          processors = ["resourcedetection/ecs", "batch"]
          exporters  = ["prometheusremotewrite"]
        }
      }
    }
  })

  collector_container = {
    name = "metrics-collector"
    # Not essential: losing metrics must not stop ingestion.
    essential   = false
    image       = var.collector_image
    environment = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.consumer.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "collector"
        mode                  = "non-blocking"
        max-buffer-size       = "1m"
      }
    }
  }
}

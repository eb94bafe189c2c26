# Every name a user needs after `terraform apply`, and the commands to use them.

output "region" {
  description = "Region everything was created in."
  value       = var.region
}

output "stream_name" {
  description = "Kinesis stream the producer writes to."
  value       = aws_kinesis_stream.payments.name
}

output "stream_arn" {
  description = "ARN of the Kinesis stream."
  value       = aws_kinesis_stream.payments.arn
}

output "lease_table" {
  description = "DynamoDB table holding the consumer's shard leases."
  value       = aws_dynamodb_table.leases.name
}

output "warehouse_bucket" {
  description = "S3 bucket of the Iceberg warehouse."
  value       = aws_s3_bucket.warehouse.bucket
}

output "warehouse" {
  description = "Iceberg warehouse location (PAYSTREAM_WAREHOUSE)."
  value       = local.warehouse_uri
}

output "dead_letter_location" {
  description = "Where rejected records are written."
  value       = "${local.warehouse_uri}/${local.dead_letter_prefix}/"
}

output "glue_database" {
  description = "Glue database (Iceberg namespace)."
  value       = aws_glue_catalog_database.raw.name
}

output "table" {
  description = "Iceberg table the consumer writes, as Athena names it."
  value       = local.table_identifier
}

output "athena_workgroup" {
  description = "Athena workgroup to run queries in (results location and encryption are enforced)."
  value       = aws_athena_workgroup.paystream.name
}

output "athena_results_bucket" {
  description = "S3 bucket of Athena query results."
  value       = aws_s3_bucket.athena_results.bucket
}

output "athena_named_queries" {
  description = "Saved queries in the workgroup."
  value = {
    revenue_by_tier = aws_athena_named_query.revenue_by_tier.id
    freshness       = aws_athena_named_query.freshness.id
    duplicates      = aws_athena_named_query.duplicates.id
  }
}

output "ecr_repository_url" {
  description = "Image repository: push the image here, then apply with -var image_tag=<tag>."
  value       = aws_ecr_repository.consumer.repository_url
}

output "image" {
  description = "Image the consumer service runs."
  value       = local.image
}

output "ecs_cluster" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.paystream.name
}

output "ecs_service" {
  description = "ECS service name of the consumer."
  value       = aws_ecs_service.consumer.name
}

output "consumer_tasks" {
  description = "Task count: desired at creation and the range CPU target tracking moves in."
  value       = { desired = local.desired_tasks, min = local.desired_tasks, max = local.max_tasks }
}

output "log_group" {
  description = "CloudWatch log group of the consumer (and the metrics collector)."
  value       = aws_cloudwatch_log_group.consumer.name
}

output "kms_key_arn" {
  description = "Key encrypting the stream, table, buckets, repository, logs and Athena results."
  value       = aws_kms_key.paystream.arn
}

output "producer_policy_arn" {
  description = "IAM policy to attach to whoever runs the producer against the stream."
  value       = aws_iam_policy.producer.arn
}

output "prometheus_workspace_id" {
  description = "Managed Prometheus workspace id (empty when disabled), e.g. for aws amp create-rule-groups-namespace."
  value       = try(aws_prometheus_workspace.paystream[0].id, "")
}

output "prometheus_remote_write_url" {
  description = "Remote-write URL of the Managed Prometheus workspace (empty when disabled); its query URL is the same prefix with api/v1/query."
  value       = var.enable_managed_prometheus ? "${local.prometheus_endpoint}api/v1/remote_write" : ""
}

output "image_push_commands" {
  description = "Build the image and push it to the repository (run from the repository root; TAG is your version)."
  value       = <<-EOT
    aws ecr get-login-password --region ${var.region} | docker login --username AWS --password-stdin ${split("/", aws_ecr_repository.consumer.repository_url)[0]}
    docker build --platform ${var.cpu_architecture == "ARM64" ? "linux/arm64" : "linux/amd64"} --build-arg VERSION=$TAG -t ${aws_ecr_repository.consumer.repository_url}:$TAG .
    docker push ${aws_ecr_repository.consumer.repository_url}:$TAG
  EOT
}

output "producer_command" {
  description = "Send 60 s of events at 500/s to the stream (from the repository root, after make build-static)."
  value       = "AWS_REGION=${var.region} ./bin/producer --stream ${aws_kinesis_stream.payments.name} --rate 500 --duration 60s"
}

# The payment event stream. Records are encrypted with the environment's key; the consumer
# reads with GetRecords (no enhanced fan-out), so no stream consumer is registered.

resource "aws_kinesis_stream" "payments" {
  name             = local.stream_name
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.paystream.arn

  # Lets `terraform destroy` remove the stream even if a tool registered an EFO consumer.
  enforce_consumer_deletion = true

  stream_mode_details {
    stream_mode = var.stream_mode
  }
}

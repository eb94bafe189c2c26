# The payment event stream. Records are encrypted with the environment's key. The consumer reads
# with GetRecords (read_mode "polling"), or with enhanced fan-out (read_mode "efo") through the
# stream consumer below.

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

# The enhanced fan-out consumer of read_mode "efo". Its name is the application's
# (PAYSTREAM_APP_NAME), so the tasks find it at start and never register one themselves.
resource "aws_kinesis_stream_consumer" "paystream" {
  count = var.read_mode == "efo" ? 1 : 0

  name       = local.name
  stream_arn = aws_kinesis_stream.payments.arn
}

# The lease table: one item per shard, KCL-compatible attributes (leaseKey is the shard id).
# Terraform owns it, so the consumer runs with PAYSTREAM_CREATE_LEASE_TABLE=false and needs no
# dynamodb:CreateTable. The table is small and written a few times per second per shard
# (renewals, checkpoints), so on-demand billing costs cents.

resource "aws_dynamodb_table" "leases" {
  name         = local.lease_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "leaseKey"

  attribute {
    name = "leaseKey"
    type = "S"
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.paystream.arn
  }

  point_in_time_recovery {
    enabled = true
  }

  deletion_protection_enabled = !var.force_destroy
}

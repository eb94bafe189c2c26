# Two roles for the ECS task:
#  - execution role: used by ECS itself to pull the image and ship logs;
#  - task role: used by the consumer. Least privilege: each action named, each resource the
#    stream, the lease table, the warehouse prefix, the Glue database and table, or the key.
# deploy/iam_test.go checks that every identity statement names explicit actions and
# resources, so a wildcard cannot slip in.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Confused-deputy protection: only ECS acting for this account.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- execution role ------------------------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${local.name}-ecs-execution"
  description        = "ECS pulls the paystream image and writes container logs."
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  # ecr:GetAuthorizationToken has no resource-level permissions: AWS accepts only "*" for it.
  # Pulls are limited to this repository by the next statement.
  statement {
    sid       = "ECRLogin"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid    = "PullThisRepository"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchGetImage",
    ]
    resources = [aws_ecr_repository.consumer.arn]
  }

  statement {
    sid    = "WriteContainerLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    # Stream names contain the ECS task id, known only at run time; limited to this log group.
    resources = ["${aws_cloudwatch_log_group.consumer.arn}:log-stream:*"] #tfsec:ignore:aws-iam-no-policy-wildcards
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- task role (the consumer) --------------------------------------------------------------------

resource "aws_iam_role" "task" {
  name               = "${local.name}-consumer"
  description        = "The paystream consumer: reads the stream, holds leases, writes the Iceberg table."
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "consumer" {
  statement {
    sid    = "ReadStream"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListShards",
      "kinesis:GetShardIterator",
      "kinesis:GetRecords",
    ]
    resources = [aws_kinesis_stream.payments.arn]
  }

  # The table exists (Terraform made it): no CreateTable.
  statement {
    sid    = "Leases"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Scan",
      # --commit-mode single stages a batch in one TransactWriteItems: a Put
      # and a ConditionCheck on each of its shards' leases.
      "dynamodb:ConditionCheckItem",
    ]
    resources = [aws_dynamodb_table.leases.arn]
  }

  # Table data, Iceberg metadata and dead letters, all under warehouse/. AbortMultipartUpload
  # cleans up a large data file whose upload failed.
  statement {
    sid    = "WarehouseObjects"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    # Object keys (data files, metadata versions) are generated at run time; the prefix is the
    # narrowest fixed scope.
    resources = ["${aws_s3_bucket.warehouse.arn}/${local.warehouse_prefix}/*"] #tfsec:ignore:aws-iam-no-policy-wildcards
  }

  statement {
    sid       = "ListWarehousePrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.warehouse.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.warehouse_prefix, "${local.warehouse_prefix}/*"]
    }
  }

  statement {
    sid       = "GlueDatabase"
    effect    = "Allow"
    actions   = ["glue:GetDatabase"]
    resources = [local.glue_catalog_arn, local.glue_database_arn]
  }

  # The consumer creates the table on first start and commits to it (UpdateTable with the
  # expected version) from then on.
  statement {
    sid    = "GlueTable"
    effect = "Allow"
    actions = [
      "glue:GetTable",
      "glue:CreateTable",
      "glue:UpdateTable",
    ]
    resources = [local.glue_catalog_arn, local.glue_database_arn, local.glue_table_arn]
  }

  # Kinesis records, warehouse objects and the lease table are encrypted with the key; use is
  # allowed only through those three services. Decrypt: reading records, objects and items;
  # GenerateDataKey: writing objects; Encrypt and DescribeKey: DynamoDB's table key handling for
  # a customer-managed key.
  statement {
    sid    = "UseKeyThroughServices"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:DescribeKey",
    ]
    resources = [aws_kms_key.paystream.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "kinesis.${var.region}.amazonaws.com",
        "s3.${var.region}.amazonaws.com",
        "dynamodb.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "consumer" {
  name   = "stream-leases-warehouse-catalog"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.consumer.json
}

# read_mode "efo": the tasks find the stream consumer Terraform registered (DescribeStreamConsumer)
# and subscribe to its shards. No RegisterStreamConsumer: Terraform owns the consumer. The stream's
# records are decrypted with the key as for GetRecords (statement above).
data "aws_iam_policy_document" "enhanced_fan_out" {
  count = var.read_mode == "efo" ? 1 : 0

  statement {
    sid    = "EnhancedFanOut"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStreamConsumer",
      "kinesis:SubscribeToShard",
    ]
    resources = [aws_kinesis_stream_consumer.paystream[0].arn]
  }
}

resource "aws_iam_role_policy" "enhanced_fan_out" {
  count = var.read_mode == "efo" ? 1 : 0

  name   = "enhanced-fan-out"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.enhanced_fan_out[0].json
}

# The metrics sidecar writes to the Prometheus workspace (only when it is enabled).
data "aws_iam_policy_document" "collector" {
  count = var.enable_managed_prometheus ? 1 : 0

  statement {
    sid       = "RemoteWrite"
    effect    = "Allow"
    actions   = ["aps:RemoteWrite"]
    resources = [aws_prometheus_workspace.paystream[0].arn]
  }
}

resource "aws_iam_role_policy" "collector" {
  count = var.enable_managed_prometheus ? 1 : 0

  name   = "prometheus-remote-write"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.collector[0].json
}

# --- producer ------------------------------------------------------------------------------------

# Attach to the user or role that runs the producer against this stream (a load test from a
# workstation or an ECS run-task). Not attached to anything here.
data "aws_iam_policy_document" "producer" {
  statement {
    sid    = "WriteStream"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListShards",
      "kinesis:PutRecord",
      "kinesis:PutRecords",
    ]
    resources = [aws_kinesis_stream.payments.arn]
  }

  statement {
    sid       = "EncryptThroughKinesis"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.paystream.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["kinesis.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "producer" {
  name        = "${local.name}-producer"
  description = "Send events to the ${local.stream_name} stream with the paystream producer."
  policy      = data.aws_iam_policy_document.producer.json
}

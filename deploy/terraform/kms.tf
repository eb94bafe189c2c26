# One customer-managed key encrypts the stream, the lease table, both buckets, the image
# repository, the logs and Athena results. Rotated yearly by AWS.

resource "aws_kms_key" "paystream" {
  description             = "${local.name}: Kinesis, DynamoDB, S3, ECR, CloudWatch Logs and Athena results"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.kms_key.json
}

resource "aws_kms_alias" "paystream" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.paystream.key_id
}

# Key policy. The first statement is AWS's default key policy: it lets this account's IAM
# policies grant use of the key (without it, no IAM policy could); it grants nothing by itself.
# In a key policy, Resource "*" means "this key". The second lets CloudWatch Logs encrypt
# this environment's log group (services cannot be granted through IAM).
data "aws_iam_policy_document" "kms_key" {
  statement {
    sid       = "EnableIAMPolicies"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid    = "CloudWatchLogsForThisLogGroup"
    effect = "Allow"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${local.log_group_name}"]
    }
  }
}

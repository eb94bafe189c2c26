# Where the consumer tasks run. By default the region's default VPC and all its subnets, with a
# public IP per task so it can reach ECR and the AWS APIs without a NAT gateway; set vpc_id,
# subnet_ids and assign_public_ip = false to use private subnets with a NAT or VPC endpoints.

data "aws_vpc" "default" {
  count   = var.vpc_id == null ? 1 : 0
  default = true
}

locals {
  vpc_id = var.vpc_id != null ? var.vpc_id : data.aws_vpc.default[0].id
}

data "aws_subnets" "vpc" {
  count = length(var.subnet_ids) == 0 ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [local.vpc_id]
  }
}

locals {
  subnet_ids = length(var.subnet_ids) > 0 ? var.subnet_ids : data.aws_subnets.vpc[0].ids
}

# No inbound rule: nothing connects to the consumer (the metrics sidecar scrapes it over
# localhost). Outbound only HTTPS.
resource "aws_security_group" "consumer" {
  name        = "${local.name}-consumer"
  description = "paystream consumer tasks: no inbound, HTTPS out to AWS APIs"
  vpc_id      = local.vpc_id

  egress {
    description = "HTTPS to AWS service endpoints (Kinesis, DynamoDB, S3, Glue, ECR, CloudWatch Logs, KMS, AMP)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    # The AWS public endpoints have no fixed address range; restricting this needs VPC
    # endpoints for every service (about 7 USD per endpoint and AZ per month), which would
    # dominate the cost of the dev environment. Port 443 only.
    cidr_blocks = ["0.0.0.0/0"] #tfsec:ignore:aws-vpc-no-public-egress-sgr AWS APIs have no fixed CIDR; see comment above.
  }
}

# The Glue database is the Iceberg namespace. The consumer creates the table on first start
# (schema, partitioning by day(event_ts), properties) and commits to it from then on, so the
# table is deliberately not managed here: Terraform would fight every commit.

resource "aws_glue_catalog_database" "raw" {
  name         = var.glue_database_name
  description  = "paystream ${var.environment}: raw subscription payment events (Iceberg), written by the paystream consumer."
  location_uri = "${local.warehouse_uri}/${var.glue_database_name}.db"
}

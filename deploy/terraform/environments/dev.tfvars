# Development: the smallest useful deployment. 1 shard, 1 consumer task of 0.25 vCPU / 0.5 GB.
# terraform apply -var-file=environments/dev.tfvars -var image_tag=<tag>

environment = "dev"
region      = "us-west-2"

stream_mode            = "PROVISIONED"
shard_count            = 1
stream_retention_hours = 24

shards_per_task = 1
task_cpu        = 256
task_memory     = 512

# One commit per 5 s instead of per second: S3 PUT and Glue request costs scale with commits
# (see deploy/README.md, "Cost per environment"). Rows are queryable within ~5 s.
flush_interval = "5s"

log_retention_days          = 7
athena_bytes_scanned_cutoff = 1073741824 # 1 GiB per query

enable_managed_prometheus = false

# dev is disposable: destroy removes buckets, images and the lease table with their data.
force_destroy = true

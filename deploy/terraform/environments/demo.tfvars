# Demo: 15 shards (15 MB/s or 15,000 records/s of writes), 5 consumer tasks of 1 vCPU / 2 GB
# (3 shards each), scaled on CPU up to one task per shard. Metrics go to Managed Prometheus.
# terraform apply -var-file=environments/demo.tfvars -var image_tag=<tag>

environment = "demo"
region      = "us-west-2"

stream_mode            = "PROVISIONED"
shard_count            = 15
stream_retention_hours = 24

shards_per_task = 3
task_cpu        = 1024
task_memory     = 2048

log_retention_days          = 14
athena_bytes_scanned_cutoff = 10737418240 # 10 GiB per query

enable_managed_prometheus = true

# A demo is torn down after use: destroy removes buckets, images and the lease table with
# their data.
force_destroy = true

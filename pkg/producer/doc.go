// Package producer generates realistic payment events (pkg/schema) and
// sends them to a Kinesis stream with PutRecords, as a load generator and
// as the reference "upstream" for paystream's tests and demo.
//
// cmd/producer parses flags into a Config and calls Run; other code (the
// consumer's integration tests, the demo, the chaos checker) calls Run
// directly with a *kinesis.Client or a fake implementing Kinesis.
//
// What is sent:
//   - Each record is one JSON event (schema.Event.AppendJSON), partition key
//     = customer_id. Malformed records (--invalid-rate, from
//     schema.Generator.NextInvalid) use the partition key "invalid_<n>".
//   - --duplicate-rate d: a fraction d of valid events is sent a second
//     time as a separate record with identical bytes, half of them in the
//     same PutRecords call and half between --duplicate-delay/2 and
//     --duplicate-delay later, as a retrying producer would. --count and
//     --rate count every record, duplicates and malformed ones included.
//   - --aggregate: the records of each batch are packed into KPL aggregates
//     (pkg/kpl) per shard: the open shards are listed at start
//     (ListShards) and a record goes to the shard whose hash key range
//     holds the MD5 of its partition key, as Kinesis routes it. Each
//     aggregate holds at most --aggregate-max-bytes and is put with its
//     first record's partition key and the first hash key of its shard's
//     range as ExplicitHashKey, so it lands on that shard; a record too
//     large for an aggregate is put on its own. Aggregates are closed at
//     the end of their batch (no record waits for the next one) and split
//     into PutRecords calls of at most 500 entries and 5 MiB. Every count
//     (--count, --rate, the Summary, the metrics' records) is of user
//     records; Summary.KinesisRecords counts the Kinesis records.
//   - A reshard leaves the shard map stale. The first put into a resharded
//     range lands on a new shard, which the PutRecords answer names; the
//     producer then lists the shards again and groups what it has not put
//     yet by the new map (Summary.ShardMapRefreshes). The records of the
//     misrouted aggregates already landed; the events among them whose
//     partition key now belongs to another shard are pinned to the
//     misrouted aggregate's hash key (Summary.PinnedEvents), so that their
//     later copies land in the same shard lineage, which is what the
//     consumer de-duplicates over (router has the details). No periodic listing: a stale map
//     matters only for a put, and every put into a closed shard's range
//     reveals it.
//
// Delivery and counting: only the failed entries of a partial PutRecords
// failure are retried, with exponential backoff and jitter, at most
// --max-retries times. A record is counted once, when Kinesis acknowledges
// it, as valid (first copy of its event_id), duplicate (a later copy) or
// invalid; or once as failed. Throttling, per entry or of the whole call,
// writes nothing and is retried, so it neither loses nor double-counts. Only
// a call that got no answer (timeout, reset, 5xx) can leave an uncounted
// copy in the stream; those are reported as unknown outcome. With no
// unknown outcomes the Summary equals what a reader of every shard finds.
// The SDK's own retries are turned off for PutRecords so that this holds.
//
// An endpoint that acknowledges two records at the same shard and sequence
// number has overwritten one; the summary reports such collisions. moto
// 5.x does this when PutRecords calls to one shard overlap (its sequence
// numbers are assigned without a lock), hence --concurrency defaults to 1.
//
// The exact list of what reached the stream — event_id, kind, shard id and
// sequence number from the PutRecords answer, and with --aggregate the user
// record's sub-sequence number in its aggregate — goes to Config.OnSent and
// to --sent-log as NDJSON (type Sent), one line per user record. A retried
// aggregate is retried whole: its records are counted as retried,
// throttled, failed or of unknown outcome together.
//
// Pacing: with --rate r the n-th record may be generated from start + n/r
// (an absolute schedule, so timer lateness does not drift); a batch goes
// out when full, after --linger, or at the end. The achieved rate is the
// acknowledged records divided by the time to the last acknowledgement; the
// summary says when it fell more than 2% short and why.
//
// Goroutines (all inside Run, none left when it returns): one generator,
// --concurrency senders fed through a channel of --concurrency batches
// (back-pressure), a shutdown watcher, and the progress line on a terminal.
// After ctx ends, senders get --shutdown-grace to finish what they hold.
//
// Metrics (on Config.Registerer): paystream_producer_records_sent_total{kind},
// paystream_producer_kinesis_records_sent_total, paystream_producer_records_failed_total, paystream_producer_records_retried_total,
// paystream_producer_shard_map_refreshes_total, paystream_producer_misrouted_records_total,
// paystream_producer_putrecords_duration_seconds.
package producer

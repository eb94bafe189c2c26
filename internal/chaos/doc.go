// Package chaos is paystream's exactly-once proof: a Jepsen-style harness
// that runs the real consumer and producer binaries against a local AWS
// emulator, injects faults at random moments, and checks the Iceberg table
// and the dead-letter store against what the producer says it sent.
//
// # A trial
//
// Plan(seed) derives a TrialConfig: 2–6 shards, 1–3 consumers, a producer
// rate, duplicate and invalid rates, and a schedule of faults. Trial.Run:
//
//  1. starts moto_server (StartMoto; one per trial, state is in memory) with
//     its Kinesis resharding patched to behave like Kinesis, its Kinesis
//     record calls atomic (no HTTP 500 from GetRecords under concurrent
//     PutRecords), its DynamoDB item calls atomic and its Glue
//     UpdateTable enforcing VersionId (internal/testenv/motopatch),
//     creates the stream, and starts each consumer (Proc) with its own
//     --worker-id, a short --failover-time and --flush-interval, sharing one
//     SQLite catalog and file warehouse, or (Env.CatalogKind CatalogGlue,
//     CHAOS_CATALOG=glue) the emulator's Glue catalog and an S3 warehouse.
//     Each consumer reaches the emulator (Glue and S3 included) through its
//     own fault Proxy; when the harness runs as root the consumers run as
//     nobody so a read-only warehouse binds them;
//  2. runs cmd/producer at a steady rate with --duplicate-rate,
//     --invalid-rate, --concurrency 1 (moto's PutRecords is not safe for
//     concurrent calls) and --sent-log, straight to the emulator;
//  3. applies the faults at their times: kill -9 then restart (same or new
//     worker id), SIGTERM then restart, SIGSTOP past the failover time then
//     SIGCONT (a zombie), SplitShard, MergeShards, and through the proxy
//     5xx errors (before or after the request reached the emulator: unknown
//     outcomes), throttling, latency and connection resets (the endpoint
//     gone, e.g. restarting), every warehouse folder read-only, and a full
//     disk for one consumer (RLIMIT_FSIZE 0: no file, catalog included,
//     can grow); errors on one kind of lease write (checkpoint, SHARD_END,
//     release, delete); a twin consumer with the same worker id; a closed
//     shard aged out of the stream (its unread records are expected lost,
//     nothing else); a consumer restarted (SIGTERM, same worker id) with
//     its clock 70–100 s ahead or behind for 4–8 s, then restarted with a
//     true clock; and on
//     glue Glue GetTable/UpdateTable errors before or after apply and S3
//     PUT/GET errors or SlowDown (in place of read-only and disk full);
//  4. after the producer stops, heals every fault, restarts any consumer
//     that is down, waits until each shard's table position reached the
//     last record the producer sent to it and no commit happens for a
//     second (the drain), then stops the consumers with SIGTERM and runs
//     what the elected maintainer's next round would, `consumer maintain`
//     with only its dead-letter step doing anything: the staged dead letters
//     of commits that landed (a consumer killed between its commit and
//     publishing leaves them staged) are published;
//  5. checks (Check): every valid event_id exactly once, every row's
//     shard/sequence one of that event's copies, no foreign rows, every
//     invalid record in the dead-letter store (deduplicated by shard and
//     sequence) and nothing else there, and commit order: within a shard
//     records are committed in sequence order, and for each customer every
//     row of a parent (or older ancestor) shard is committed before any row
//     of its child. The table is read with iceberg-go (catalog, manifests,
//     data sequence numbers; on glue its Glue catalog and S3 IO straight at
//     the emulator) and the Parquet files directly, and the row count is
//     cross-checked with iceberg-go's own scan; nothing goes
//     through pkg/iceberg, so a bug in the consumer's read path cannot hide
//     one in its write path.
//
// # Read mode efo
//
// moto serves no SubscribeToShard. With TrialConfig.ReadMode ReadEFO
// (CHAOS_READ_MODE=efo) the consumers run with --read-mode efo and the
// trial's Kinesis is the internal/kinesistest emulator as a process of its
// own (StartKinesis, Env.UseKinesis; built from internal/cmd/kinesistest),
// its subscriptions ending every 6–15 s so that readers resubscribe from
// their continuations; DynamoDB, Glue and S3 stay on moto. Each proxy
// routes Kinesis requests to the emulator (Route), passes the event
// stream through message by message and lets its faults reach an open
// subscription: down cuts it, errors end it with an
// InternalFailureException event, latency delays each event, an expired
// shard refuses SubscribeToShard.
//
// # The clock fault
//
// No environment variable or time namespace moves a Go process's wall
// clock, and iceberg-go stamps each snapshot with the committing process's
// time.Now(). The consumer therefore reads PAYSTREAM_FAULT_CLOCK_OFFSET (a
// Go duration such as 90s or -90s), for fault injection only: no flag,
// not in --help, a WARN at start when set. It wraps its catalog with
// iceberg.WithClockOffset, which stamps every snapshot the consumer's
// commits add that far off, so its commits are exactly those of a host
// whose clock is that far off; its other uses of the clock stay true
// (RELIABILITY.md, "Not simulated"). Behind, its own commits are refused
// (ErrClockSkew); ahead, every other commit is refused until the real time
// passes its last snapshot's stamp minus a minute. The checker allows
// nothing for it: exactly once must hold.
//
// Every trial writes its folder: trial.json (the config, so the seed
// replays it), timeline.log, consumer-SLOT-GEN.log per process, producer.log
// and .json, sent.ndjson, moto.log, report.json and the data. The tests
// keep the folder of a failing trial and print its path.
//
// Timing is not replayed: the seed fixes the stream, the load and the fault
// schedule, not the interleaving of the processes.
//
// Linux only (Pdeathsig, prlimit, SIGSTOP); elsewhere the package is empty.
//
// Scripted trials (Trial.Script) drive faults by hand; the scenario tests
// use them to measure take-over and shutdown times.
package chaos

// Package dedup drops payment events whose event_id was already seen
// recently on the same shard: the same event sent twice by a producer
// retry, as two distinct Kinesis records. The first copy is kept.
//
// # Contract
//
// A Filter holds one window per Kinesis shard: the event_ids committed to
// the table in the last Config.Window (flag --dedup-window, default 1 h),
// at most Config.MaxIDs of them (--dedup-max-ids, default 4,000,000), plus
// the ids of the shard's batches that are not committed yet. The consumer's
// goroutine for a shard uses it like this:
//
//	// On taking the shard's lease: restore its window (see "Restore").
//	missing, err := f.Inherit(shard, parents...) // windows this process still holds
//	err = f.Seed(shard, rows)                    // (event_id, ingested_at) of the table's rows of
//	                                             // shard, its parents (or missing) in the last window
//
//	// Per micro-batch:
//	b := f.Begin(shard)
//	defer b.Abort() // no-op once committed
//	for _, ev := range decoded {
//		if b.Check(ev.EventID) {
//			continue // duplicate: counted in paystream_dedup_duplicates_total; drop it
//		}
//		keep(ev)
//	}
//	ingestedAt := time.Now().UTC()
//	// ... write and commit the kept rows with ingested_at = ingestedAt ...
//	err = b.Commit(ingestedAt) // only after the table commit succeeded
//
//	// Lease lost: f.Drop(shard). Shard finished: Drop it once its children inherited.
//
// Check reports a duplicate if the id is in the shard's committed window or
// was accepted by this or an older uncommitted batch of the shard (so a
// duplicate inside one batch is caught too). Otherwise the id joins the
// batch. Batch.Commit moves the batch's ids into the window; Batch.Abort
// (commit rejected, checkpoint moved, outcome found to be "not written")
// forgets them, so re-reading the batch does not drop its events as
// duplicates of themselves. After an unknown commit outcome, reload the
// table first and then Commit or Abort. Batch.CheckAll is Check of several
// ids in turn under one lock; it reads the table slots of a group of ids
// before probing them, so that their cache misses overlap (commit.Step
// checks 64 rows at a time with it).
//
// A shard may have several uncommitted batches, for a consumer that reads
// batch N+1 while batch N commits: N+1's Check sees N's ids, batches
// commit in the order they began, and aborting N aborts N+1 (it was read
// after N and is re-read with it). A single "pending set per shard" would
// get this wrong: committing N would also commit N+1's ids, and if N+1
// were then dropped, its re-read would discard real payments as
// duplicates. That is why the API hands out a Batch rather than taking
// Commit(shard) and Abort(shard).
//
// Misuse that is a bug in the caller — Check on a batch after a newer one
// of the shard began, or after it was committed — panics. Commit returns
// ErrAborted for a discarded batch, and an error for an out-of-order or
// repeated commit. Seed and Inherit return ErrBatchOpen on a shard with an
// uncommitted batch: restore a window before reading the shard.
//
// # The window's bounds
//
// Time: each id carries the commit time its batch was given (Commit's at,
// which must be the rows' ingested_at so that a restored window equals the
// live one), at 1 s resolution. Commit evicts the shard's ids committed
// more than Window before at; Expire does it for every shard (call it every
// minute or so, so idle shards shrink too). An id is guaranteed to be
// caught until Window after its commit; it may be caught up to 1 s longer,
// and until the next Commit or Expire evicts it.
// Commit times never go backwards within a shard: an earlier at is raised
// to the latest one. The times come from the committing worker's clock, so
// clock skew between workers shifts the window's edge by the skew.
//
// Count: a shard holds at most MaxIDs ids, committed and pending; a new id
// beyond that evicts the oldest (counted in paystream_dedup_evictions_total
// with reason="count"), so the newest are kept and the window covers less
// than Window. The default, 4,000,000, holds a full hour at 1,000 events/s
// — the most a Kinesis shard accepts (1,000 records/s) — with 11% to
// spare. After a merge of two busy shards the child's window is cut to the
// newest MaxIDs; raise --dedup-max-ids if that matters. Uncommitted ids
// count too: on a full window they evict the oldest committed ids, which
// an Abort does not bring back (the re-read batch evicts them again
// anyway); a single batch larger than MaxIDs evicts its own oldest ids.
//
// # Restore: rebuilt from the table
//
// The window survives restarts, crashes and lease moves by being rebuilt
// from the table when a worker takes a shard: the table is the truth, and
// its rows carry shard_id, event_id and ingested_at. No extra store, no
// extra write per commit, nothing to keep consistent with the table: a
// window persisted next to each commit (16 B per id, i.e. up to 58 MB per
// shard-hour) would have to be written in the same atomic commit or it
// could disagree with the rows, and restoring it still means reading it.
//
// The caller reads (event_id, ingested_at) of the rows with shard_id in
// the shard and its parents (after a split or merge; their own parents
// too while they are within the window) and ingested_at within the window,
// and passes them to Seed in any order. Within one process, Inherit copies
// the parents' windows instead, and reports the parents it does not hold.
//
// Measured restore of the in-memory part, a full hour at 1,000 events/s
// (3.6M ids, BenchmarkSeed, one core): see "Measurements" below. Reading
// the rows from the table is the caller's cost and is not included.
//
// # Hashing and false positives
//
// The window stores a 128-bit key of each event_id, never the id: its
// AES-CMAC (RFC 4493) under a random key drawn when the process starts. A
// false positive — a new id whose key equals a stored one — would drop a
// real payment, so it has to be out of reach, not merely rare:
//
//   - 128 bits: a Check compares against at most MaxIDs = 4×10⁶ keys, so
//     P(false positive) ≤ 4×10⁶ / 2¹²⁸ ≈ 1.2×10⁻³². 10,000 shards at 1,000
//     events/s for 100 years make 3.2×10¹⁶ Checks: expected false
//     positives ≈ 4×10⁻¹⁶. The largest window allowed (MaxMaxIDs = 2³⁰)
//     gives 2³⁰ / 2¹²⁸ = 2⁻⁹⁸ per Check.
//   - 64 bits would give 4×10⁶ / 2⁶⁴ ≈ 2.2×10⁻¹³ per Check: 3.2×10¹⁰
//     Checks per shard-year at 1,000 events/s → 0.007 lost payments per
//     shard-year, about one a year across 150 busy shards, each silent.
//     Rejected.
//   - The bound needs keys that behave as a random function of the ids,
//     for ids shaped however producers make them, including by someone
//     who wants an event of theirs to hide someone else's. AES-CMAC under
//     a secret random key is a pseudo-random function (as strong as AES
//     itself): without the key nobody can make two ids collide or predict
//     a key, and for ids in general the keys are as good as random. It
//     costs two AES blocks for an id of up to 32 bytes: 38 ns of CPU for
//     a 24-byte id here, against 69 ns for the SHA-256 it replaced with
//     the same guarantees (BENCHMARKS.md, "Cheaper dedup key"). A fast
//     non-cryptographic hash (two seeded hash/maphash sums, a few ns) was
//     not taken: its
//     output is random for random ids, but nothing rules out ids built to
//     collide whatever the seed.
//   - Keys differ between processes (the key is drawn per process). Windows
//     never leave the process: Seed re-keys the ids read from the table
//     and Inherit copies entries within one Filter.
//
// # Memory
//
// Per shard: a FIFO ring of hashes (16 B) and commit times (4 B, Unix
// seconds) in arrival order, and an open-addressing hash table of 4 B
// slots (ring position plus a tag of hash bits) sized to a power of two ≥
// 1.25× the ring, i.e. 1.25–2.5 slots per id: 25–30 B per id in a full
// window. At the default MaxIDs: 4,000,000 × 20 B + 8,388,608 × 4 B =
// 113.6 MB, 28.4 B/id (BenchmarkBytesPerID measures the heap: 28.39 B/id).
// A full hour at 1,000 events/s (3.6M ids) takes 114 MB per shard, seeded
// or grown by Check (the ring is at the 4M cap either way); size tasks for
// (shards per task) × that, or lower --dedup-max-ids.
//
// The ring starts at 1,024 ids and doubles as needed up to MaxIDs, so an
// idle or slow shard costs little (28 KB empty); right after a doubling a
// window that is not full uses up to ~56 B per id. When a window falls
// below a quarter of its capacity (at Commit or Expire) it halves. A
// resize briefly holds old and new arrays. Filter.Reserve sizes a window
// for ids known to come (file ingest: the input's lines, at most MaxIDs)
// in one step and keeps it from halving until ids are evicted for their
// age; Batch.Reserve (commit.Step: the batch's rows) grows it for one
// batch at once, at least doubling, so that checking the batch's ids
// rehashes nothing. Seed reads the ids' hashes and
// times (20 B per id) into what becomes the window's ring: up to a quarter
// of MaxIDs into chunks of 64 Ki ids copied once into a ring of their size
// (a second 20 B per id while copying), beyond that into a ring allocated
// at MaxIDs, so a restore holds at most MaxIDs/4 × 20 B (5 B per id of
// MaxIDs, rounded up to a whole chunk) beyond the window, and the window
// needs no resize for the ids that follow (TestSeedAllocatesLittleBeyondWindow,
// TestSeededWindowTakesNewIDsInPlace). Inherit copies the parents' ids (24 B
// each) while it builds. The arrays hold no pointers, so the garbage
// collector does not scan them. TestMemoryBound fills a window past MaxIDs and checks that
// the heap stays at the documented size while old ids are evicted.
// Filter.Stats().Bytes and paystream_dedup_window_bytes report the
// arrays' size.
//
// # Concurrency
//
// A Filter is safe for concurrent use. Filter.mu (a RWMutex) guards the
// map of shards; each shard has its own mutex guarding its window and
// batches. No two locks are ever held at once, so there is no lock order.
// Check (and CheckAll) holds only its shard's mutex, keying the id under it (in the
// shard's scratch block; the Batch points at the shard: no map lookup), so shard goroutines do
// not contend with each other; Stats, Expire and metric scrapes take each
// shard's mutex briefly in turn. Seed and Inherit read their input and
// build the new window without locks and swap it in at the end; if the
// shard changed meanwhile (another goroutine began a batch or dropped it)
// they fail instead. The consumer should give each shard one owner
// goroutine, which calls everything for that shard.
//
// # Metrics
//
// On Config.Registerer, read at scrape time, one series per held shard
// (they disappear on Drop):
//
//	paystream_dedup_duplicates_total{shard}        counter: Check said duplicate
//	paystream_dedup_window_ids{shard}              gauge: ids held, committed and pending
//	paystream_dedup_window_bytes{shard}            gauge: memory of the window's arrays
//	paystream_dedup_evictions_total{shard,reason}  counter: reason="time" | "count"
//
// A batch that is aborted and re-read counts its duplicates again.
//
// # Not caught
//
//   - A copy that arrives more than Window after the first was committed.
//   - A copy sent with a different partition key: it lands on another
//     shard, and windows are per shard. (Producers that retry with the same
//     record keep the key.)
//   - Ids evicted early because the shard exceeded MaxIDs.
//
// Such duplicates reach the table. Find them with:
//
//	SELECT event_id, count(*) AS copies, min(ingested_at), max(ingested_at)
//	FROM netflix_revenue_raw.subscription_payments
//	GROUP BY event_id HAVING count(*) > 1;
//
// # Measurements
//
// GOMAXPROCS=1 go test -run xxx -bench . -benchmem ./pkg/dedup, on a
// shared 2-core AMD EPYC VM while other jobs kept the load average at
// 17–20, so wall-clock figures are inflated about 4×; the cpu-* figures
// count this process's CPU time (getrusage) and are the ones to compare:
//
//	                                         CPU            wall (loaded)
//	Check, window of 10,000 ids              172 ns/op      1,105 ns/op
//	                                         5.8M ops/s     0.90M ops/s
//	Check, full window of 3.6M ids           609 ns/op      2,373 ns/op
//	                                         1.6M ops/s     0.42M ops/s
//	Seed 1 h at 1,000 events/s (3.6M ids)    0.66 s         2.6 s
//	  same rows newest first (sort path)     0.90 s         3.5 s
//	Inherit one parent of 3.6M ids           0.25 s         1.0 s
//	bytes per id, full default window        28.39 (heap, runtime.MemStats)
//
// One Check op is one id with 10% duplicates, hashing included, and a
// Commit every 500. A large window is bound by cache misses (table slot,
// eviction of the oldest), not by the hash. A shard needs 1,000 Checks/s,
// so one core serves well over a thousand busy shards.
package dedup

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/producer"
	"github.com/paystream/paystream/pkg/schema"
)

// runMainEnv makes the test binary run the consumer's main instead of the
// tests (TestMain), so a test can start the real consumer as a process and
// kill it with SIGKILL.
const runMainEnv = "PAYSTREAM_TEST_RUN_CONSUMER_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// consumerProc is the consumer running as a process of the test binary.
type consumerProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	log  *bytes.Buffer
}

func startConsumerProc(t *testing.T, args ...string) *consumerProc {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &consumerProc{cmd: cmd, done: make(chan struct{}), log: &log}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("consumer log:\n%s", tail(log.String(), 40))
		}
	})
	return p
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// sentUser is one user record the producer put, at its position.
type sentUser struct {
	producer.Sent
	pos string
}

// kplEventRow is what the check needs of a committed row.
type kplEventRow struct {
	id, shard, seq string
	sub            int64 // -1: NULL
}

// The consumer de-aggregates KPL records: every valid unique user record
// is in the table once with its (sequence, sub-sequence) position, every
// invalid user record is dead-lettered on its own, a corrupt aggregate is
// dead-lettered whole with the reason, and a consumer killed with SIGKILL
// after committing part of an aggregate (batches of 7 user records) loses
// and duplicates nothing once restarted; in both commit modes.
func TestKPLAggregatesEndToEnd(t *testing.T) {
	for _, mode := range []string{"worker", "single"} {
		t.Run(mode, func(t *testing.T) { testKPLAggregates(t, mode) })
	}
}

func testKPLAggregates(t *testing.T, mode string) {
	s := newMetricsStack(t, 2)
	ctx := context.Background()
	dir := t.TempDir()
	catCfg := iceberg.CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Table:     iceberg.DefaultTable,
	}
	args := []string{
		"--stream", s.stream, "--lease-table", "paystream-kpl-e2e", "--worker-id", "kpl-e2e",
		"--catalog", catCfg.Catalog, "--warehouse", catCfg.Warehouse,
		"--flush-rows", "7", "--flush-interval", "50ms", "--idle-poll", "200ms",
		"--failover-time", "3s", "--metrics-addr", "", "--maintenance-interval", "0", "--log-format", "json",
		"--commit-mode", mode,
	}

	var sent []sentUser
	produce := func(seed uint64, count int64) {
		t.Helper()
		cfg := producer.DefaultConfig()
		cfg.Stream, cfg.Rate, cfg.Count, cfg.Seed = s.stream, 0, count, seed
		cfg.Aggregate, cfg.Batch = true, 400
		cfg.DuplicateRate, cfg.InvalidRate = 0.1, 0.02
		cfg.OnSent = func(x producer.Sent) {
			pos := x.SequenceNumber
			if x.SubSequenceNumber != nil {
				pos = commit.FormatPosition(x.SequenceNumber, int64(*x.SubSequenceNumber))
			}
			sent = append(sent, sentUser{Sent: x, pos: pos})
		}
		if _, err := producer.Run(ctx, cfg, s.kin, io.Discard, io.Discard); err != nil {
			t.Fatalf("producer: %v", err)
		}
	}
	produce(1, 1500)

	// A corrupt aggregate: a good one with its MD5 broken.
	a, err := kpl.NewAggregator(kpl.MaxAggregateBytes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ev := schema.NewGenerator(99, time.Now()).Next(time.Now())
		ev.EventID = fmt.Sprintf("corrupt-%d", i)
		if err := a.Add(kpl.UserRecord{PartitionKey: "corrupt", Data: ev.AppendJSON(nil)}); err != nil {
			t.Fatal(err)
		}
	}
	agg, _ := a.Flush()
	agg.Data[len(agg.Data)-1] ^= 0xff
	put, err := s.kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(s.stream), PartitionKey: aws.String("corrupt"), Data: agg.Data})
	if err != nil {
		t.Fatal(err)
	}
	corruptShard, corruptSeq := aws.ToString(put.ShardId), aws.ToString(put.SequenceNumber)

	// The first consumer commits part of the stream; it is killed right
	// after a commit that ended inside an aggregate.
	cat, err := iceberg.OpenCatalog(ctx, catCfg)
	if err != nil {
		t.Fatal(err)
	}
	ident, _ := iceberg.ParseIdentifier(catCfg.Table)
	positions := func() map[string]string {
		tbl, err := cat.LoadTable(ctx, ident)
		if err != nil {
			return nil // not created yet
		}
		return iceberg.TablePositions(tbl)
	}
	first := startConsumerProc(t, args...)
	var inside string
	waitFor(t, 60*time.Second, "a commit ending inside an aggregate", func() bool {
		for shard, pos := range positions() {
			if _, _, whole, err := commit.ParsePosition(pos); err == nil && !whole {
				inside = shard + " at " + pos
				return true
			}
		}
		return false
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	t.Logf("killed the consumer with the table position of %s", inside)

	// More aggregates while it is down, then a new process resumes.
	produce(2, 1500)
	startConsumerProc(t, args...)
	want := map[string]string{corruptShard: corruptSeq} // last record per shard
	for _, x := range sent {
		if commit.CompareSeq(x.SequenceNumber, want[x.ShardID]) > 0 {
			want[x.ShardID] = x.SequenceNumber
		}
	}
	waitFor(t, 120*time.Second, "every shard's table position at its last record", func() bool {
		pos := positions()
		for shard, last := range want {
			if pos[shard] != last {
				return false
			}
		}
		return true
	})

	// Staged dead letters of a commit that landed just before the kill are
	// published by the maintainer; run its dead-letter step.
	var out bytes.Buffer
	if err := runMaintain(ctx, []string{"--catalog", catCfg.Catalog, "--warehouse", catCfg.Warehouse,
		"--keep-snapshots", "1000000", "--retention", "0", "--compact-target-size", "0", "--orphan-age", "0"}, &out, &out); err != nil {
		t.Fatalf("maintain: %v\n%s", err, out.String())
	}

	// Rows: every valid event_id once, at one of its copies' positions.
	copies := map[string][]string{} // event_id -> shard/position of each copy
	invalid := map[string]bool{}    // shard/position of each invalid user record
	for _, x := range sent {
		key := x.ShardID + "/" + x.pos
		if x.Kind == "invalid" {
			invalid[key] = true
			continue
		}
		copies[x.EventID] = append(copies[x.EventID], key)
	}
	rows := kplRows(ctx, t, cat, ident)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.id]++
		pos := r.seq
		if r.sub >= 0 {
			pos = commit.FormatPosition(r.seq, r.sub)
		}
		if !contains(copies[r.id], r.shard+"/"+pos) {
			t.Errorf("row %s at %s/%s is none of the copies sent %v", r.id, r.shard, pos, copies[r.id])
		}
		if r.sub < 0 {
			t.Errorf("row %s at %s/%s has no sub_sequence_number; every record was aggregated", r.id, r.shard, pos)
		}
	}
	for id := range copies {
		if seen[id] != 1 {
			t.Errorf("event %s is in the table %d times, want once", id, seen[id])
		}
	}
	if len(rows) != len(copies) {
		t.Errorf("%d rows, want %d (one per unique valid event)", len(rows), len(copies))
	}

	// Dead letters: each invalid user record once, with its own position,
	// and the corrupt aggregate whole.
	dls, err := iceberg.ReadDeadLetters(ctx, catCfg.Warehouse, "", ident)
	if err != nil {
		t.Fatal(err)
	}
	gotDL := map[string]int{}
	for _, d := range dls {
		key := d.Shard + "/" + d.Position()
		gotDL[key]++
		if key == corruptShard+"/"+corruptSeq {
			if raw, _ := d.RawBytes(); !bytes.Equal(raw, agg.Data) || len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], "MD5 mismatch") {
				t.Errorf("corrupt aggregate dead letter: reasons %q, whole bytes %v; want the MD5 mismatch and the aggregate's bytes", d.Reasons, bytes.Equal(raw, agg.Data))
			}
			continue
		}
		if !invalid[key] {
			t.Errorf("dead letter at %s is no invalid record sent (reasons %q)", key, d.Reasons)
		}
	}
	for key := range invalid {
		if gotDL[key] != 1 {
			t.Errorf("invalid user record %s dead-lettered %d times, want once", key, gotDL[key])
		}
	}
	if gotDL[corruptShard+"/"+corruptSeq] != 1 {
		t.Errorf("corrupt aggregate %s/%s dead-lettered %d times, want once", corruptShard, corruptSeq, gotDL[corruptShard+"/"+corruptSeq])
	}
	t.Logf("%d user records sent (%d unique valid, %d invalid), %d rows, %d dead letters", len(sent), len(copies), len(invalid), len(rows), len(dls))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kplRows reads every row of the table with iceberg-go's scan.
func kplRows(ctx context.Context, t *testing.T, cat catalog.Catalog, ident table.Identifier) []kplEventRow {
	t.Helper()
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	arrowTbl, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer arrowTbl.Release()
	tr := array.NewTableReader(arrowTbl, 0)
	defer tr.Release()
	var out []kplEventRow
	for tr.Next() {
		rec := tr.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		ids := rec.Column(col(schema.ColEventID)).(*array.String)
		shards := rec.Column(col(schema.ColShardID)).(*array.String)
		seqs := rec.Column(col(schema.ColSequenceNumber)).(*array.String)
		subs := rec.Column(col(schema.ColSubSequence)).(*array.Int64)
		for i := range int(rec.NumRows()) {
			sub := int64(-1)
			if !subs.IsNull(i) {
				sub = subs.Value(i)
			}
			out = append(out, kplEventRow{ids.Value(i), shards.Value(i), seqs.Value(i), sub})
		}
	}
	return out
}

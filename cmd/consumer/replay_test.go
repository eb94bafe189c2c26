package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/iceberg/icebergtest"
	"github.com/paystream/paystream/pkg/schema"
)

func TestReplayBadFlags(t *testing.T) {
	dir := t.TempDir()
	cat := "--catalog=sqlite:" + filepath.Join(dir, "catalog.db")
	wh := "--warehouse=file://" + filepath.Join(dir, "warehouse")
	icebergtest.Open(t, iceberg.CatalogConfig{Catalog: strings.TrimPrefix(cat, "--catalog="), Warehouse: strings.TrimPrefix(wh, "--warehouse="), Table: iceberg.DefaultTable})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"since unparsable", []string{cat, wh, "--since=yesterday"}, `--since "yesterday": use an RFC 3339 time`},
		{"unknown shard", []string{cat, wh, "--shard=shardId-9"}, "--shard: no dead letters for this shard: shardId-9"},
		{"missing table", []string{cat, wh, "--table=netflix_revenue_raw.nope"}, "--table netflix_revenue_raw.nope: no such table"},
		{"stray argument", []string{cat, wh, "extra"}, `unexpected argument "extra"`},
		{"log level", []string{cat, wh, "--log-level=loud"}, `--log-level "loud": use debug, info, warn or error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runReplay(context.Background(), tc.args, &out, &errOut)
			if !errors.As(err, new(*usageError)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
			if code := exitCode(err, &errOut); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
		})
	}
}

func TestReplaySummary(t *testing.T) {
	dir := t.TempDir()
	cfg := iceberg.CatalogConfig{Catalog: "sqlite:" + filepath.Join(dir, "catalog.db"), Warehouse: "file://" + filepath.Join(dir, "warehouse"), Table: iceberg.DefaultTable}
	tbl := icebergtest.Open(t, cfg)
	ctx := context.Background()
	id := uuid.NewString()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := schema.NewGenerator(1, at).Next(at)
	recs := []commit.Rejected{
		{Raw: ev.AppendJSON(nil), Reasons: []string{"old decoder"}, Shard: "shardId-1", Sequence: "6", ArrivedAt: at},
		{Raw: []byte(`{"event_id":"e1","amount_usd":"abc"}`), Reasons: []string{"old"}, Shard: "shardId-1", Sequence: "7", ArrivedAt: at},
		{Raw: []byte(`{not json`), Reasons: []string{"old"}, Shard: "shardId-1", Sequence: "8", ArrivedAt: at},
	}
	if _, err := tbl.DeadLetters().Stage(ctx, id, "shardId-1", "6", "8", recs); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.DeadLetters().Publish(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := runReplay(ctx, []string{"--catalog=" + cfg.Catalog, "--warehouse=" + cfg.Warehouse, "--since=2000-01-01"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	for _, want := range []string{"objects:         1", "replayed:        1 records", "still rejected:  2 records", "still rejected, by reason:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
)

// The default keeps the newest snapshots only, with no age floor: an hour
// of snapshots at a high commit rate made metadata.json grow without bound.
// --keep-snapshots and --snapshot-age (or their PAYSTREAM_* variables)
// keep more for time travel.
func TestSnapshotRetentionFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		keep    int
		age     time.Duration
		wantErr string
	}{
		{name: "default: newest 100, no age", keep: iceberg.DefaultKeepSnapshots},
		{name: "flags", args: []string{"--keep-snapshots", "500", "--snapshot-age", "2h"}, keep: 500, age: 2 * time.Hour},
		{name: "env", env: map[string]string{"PAYSTREAM_KEEP_SNAPSHOTS": "20", "PAYSTREAM_SNAPSHOT_AGE": "15m"}, keep: 20, age: 15 * time.Minute},
		{name: "flag wins over env", args: []string{"--keep-snapshots", "30"}, env: map[string]string{"PAYSTREAM_KEEP_SNAPSHOTS": "20"}, keep: 30},
		{name: "keep 0", args: []string{"--keep-snapshots", "0"}, wantErr: "--keep-snapshots 0"},
		{name: "negative age", args: []string{"--snapshot-age", "-1h"}, wantErr: "--snapshot-age -1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseServiceCase(t, tc.args, tc.env, tc.wantErr)
			if !ok {
				return
			}
			got := c.workerConfig().Maintenance
			if got.KeepSnapshots != tc.keep || got.SnapshotAge != tc.age {
				t.Fatalf("maintenance keeps %d snapshots and %v; want %d and %v", got.KeepSnapshots, got.SnapshotAge, tc.keep, tc.age)
			}
		})
	}
}

// The orphan sweep is on by default with an age far above any commit;
// --orphan-age 0 turns it off, and an age below an hour is refused.
func TestOrphanSweepFlags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		age      time.Duration
		interval time.Duration
		wantErr  string
	}{
		{name: "default: 24h, hourly", age: 24 * time.Hour, interval: time.Hour},
		{name: "flags", args: []string{"--orphan-age", "72h", "--orphan-interval", "6h"}, age: 72 * time.Hour, interval: 6 * time.Hour},
		{name: "env", env: map[string]string{"PAYSTREAM_ORPHAN_AGE": "2h", "PAYSTREAM_ORPHAN_INTERVAL": "30m"}, age: 2 * time.Hour, interval: 30 * time.Minute},
		{name: "off", args: []string{"--orphan-age", "0"}, interval: time.Hour},
		{name: "too young", args: []string{"--orphan-age", "30m"}, wantErr: "--orphan-age 30m0s: must be 0 (no sweep) or at least 1h0m0s"},
		{name: "negative", args: []string{"--orphan-age", "-1h"}, wantErr: "--orphan-age -1h0m0s"},
		{name: "no interval", args: []string{"--orphan-interval", "0"}, wantErr: "--orphan-interval 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseServiceCase(t, tc.args, tc.env, tc.wantErr)
			if !ok {
				return
			}
			w := c.workerConfig()
			if w.Maintenance.OrphanAge != tc.age || w.OrphanInterval != tc.interval {
				t.Fatalf("orphan age %v every %v; want %v every %v", w.Maintenance.OrphanAge, w.OrphanInterval, tc.age, tc.interval)
			}
		})
	}
}

// --commit-mode (or PAYSTREAM_COMMIT_MODE) picks who commits; worker stays
// the default, and anything else is refused with the values it takes.
func TestCommitModeFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "default: each worker commits", want: ingest.CommitPerWorker},
		{name: "flag", args: []string{"--commit-mode", "single"}, want: ingest.CommitSingle},
		{name: "env", env: map[string]string{"PAYSTREAM_COMMIT_MODE": "single"}, want: ingest.CommitSingle},
		{name: "bad", args: []string{"--commit-mode", "leader"}, wantErr: `--commit-mode "leader": must be "worker" (each worker commits its batches) or "single"`},
		{name: "empty", args: []string{"--commit-mode", ""}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseServiceCase(t, tc.args, tc.env, tc.wantErr)
			if !ok {
				return
			}
			if got := c.workerConfig().CommitMode; got != tc.want {
				t.Fatalf("commit mode %q, want %q", got, tc.want)
			}
		})
	}
}

// --read-mode (or PAYSTREAM_READ_MODE) picks how shards are read; polling
// stays the default, efo names the stream consumer after --app-name, and
// anything else is refused with the values it takes.
func TestReadModeFlag(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		want     string
		consumer string
		wantErr  string
	}{
		{name: "default: polling", want: ingest.ReadPolling},
		{name: "flag", args: []string{"--read-mode", "efo"}, want: ingest.ReadEFO, consumer: "paystream"},
		{name: "env", env: map[string]string{"PAYSTREAM_READ_MODE": "efo", "PAYSTREAM_APP_NAME": "payments-prod"}, want: ingest.ReadEFO, consumer: "payments-prod"},
		{name: "bad", args: []string{"--read-mode", "push"}, wantErr: `--read-mode "push": use polling (GetRecords, the default) or efo`},
		{name: "bad app name for a consumer", args: []string{"--read-mode", "efo", "--app-name", "pay streams"}, wantErr: `--app-name "pay streams": with --read-mode efo it names the Kinesis stream consumer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseServiceCase(t, tc.args, tc.env, tc.wantErr)
			if !ok {
				return
			}
			p := c.workerConfig().Pipeline
			if p.ReadMode != tc.want || (tc.consumer != "" && p.ConsumerName != tc.consumer) {
				t.Fatalf("read mode %q consumer %q, want %q %q", p.ReadMode, p.ConsumerName, tc.want, tc.consumer)
			}
		})
	}
}

// parseServiceCase parses "--stream payments" and args with env as the
// environment. With wantErr it checks that parsing fails with an error
// naming it and returns false; otherwise parsing must succeed.
func parseServiceCase(t *testing.T, args []string, env map[string]string, wantErr string) (serviceConfig, bool) {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := parseService(append([]string{"--stream", "payments"}, args...), lookup, io.Discard)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one naming %q", err, wantErr)
		}
		return serviceConfig{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}

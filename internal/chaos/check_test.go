//go:build linux

package chaos

import (
	"math/big"
	"strings"
	"testing"
)

// The checker must catch each kind of violation it claims to; these feed it
// hand-made tables.
func TestCheck(t *testing.T) {
	sent := []Sent{
		{EventID: "e1", Kind: "valid", ShardID: "p", SequenceNumber: "1"},
		{EventID: "e2", Kind: "valid", ShardID: "p", SequenceNumber: "2"},
		{EventID: "e1", Kind: "duplicate", ShardID: "c", SequenceNumber: "1"},
		{Kind: "invalid", ShardID: "p", SequenceNumber: "3"},
		{Kind: "invalid", ShardID: "p", SequenceNumber: "4"},
		{Kind: "invalid", ShardID: "p", SequenceNumber: "5"},
		{EventID: "e3", Kind: "valid", ShardID: "c", SequenceNumber: "2"},
	}
	shards := []Shard{{ID: "p"}, {ID: "c", Parents: []string{"p"}, Start: big.NewInt(0)}}
	good := []Row{
		{EventID: "e1", Customer: "k1", Shard: "p", Seq: "1", Commit: 1},
		{EventID: "e2", Customer: "k1", Shard: "p", Seq: "2", Commit: 1},
		{EventID: "e3", Customer: "k1", Shard: "c", Seq: "2", Commit: 2},
	}
	goodDL := []DeadLetter{{Shard: "p", Sequence: "3", Object: "p/3-4"}, {Shard: "p", Sequence: "4", Object: "p/3-4"}, {Shard: "p", Sequence: "5", Object: "p/5-5"}}
	with := func(f func(rows []Row) []Row) []Row { return f(append([]Row(nil), good...)) }
	for _, tc := range []struct {
		name  string
		rows  []Row
		dls   []DeadLetter
		scan  int64 // -1: same as rows
		aged  map[string]bool
		check func(r *Result) bool
	}{
		{"all good", good, goodDL, -1, nil, func(r *Result) bool { return r.OK() && r.OrderPairs == 1 && r.DeadLettered == 3 }},
		{"missing", good[1:], goodDL, -1, nil, func(r *Result) bool { return !r.OK() && r.Missing == 1 }},
		{"duplicate of the producer's retry", with(func(rs []Row) []Row {
			return append(rs, Row{EventID: "e1", Customer: "k1", Shard: "c", Seq: "1", Commit: 2})
		}), goodDL, -1, nil, func(r *Result) bool { return !r.OK() && r.Duplicated == 1 }},
		{"replayed record", with(func(rs []Row) []Row { return append(rs, rs[1]) }), goodDL, -1, nil,
			func(r *Result) bool { return !r.OK() && r.Duplicated == 1 }},
		{"foreign row", with(func(rs []Row) []Row { return append(rs, Row{EventID: "x", Shard: "p", Seq: "9"}) }), goodDL, -1, nil,
			func(r *Result) bool { return !r.OK() && r.Unexpected == 1 }},
		{"wrong lineage", with(func(rs []Row) []Row { rs[1].Seq = "7"; return rs }), goodDL, -1, nil,
			func(r *Result) bool { return !r.OK() && r.BadLineage == 1 }},
		{"dead letter missing", good, goodDL[1:], -1, nil, func(r *Result) bool { return !r.OK() && r.DeadMissing == 1 }},
		{"dead letter in a second object", good, append(goodDL, DeadLetter{Shard: "p", Sequence: "3", Object: "p/3-3"}), -1, nil,
			func(r *Result) bool { return !r.OK() && r.DeadDuplicated >= 1 && r.DeadMissing == 0 }},
		{"dead letter twice in one object", good, append(goodDL, DeadLetter{Shard: "p", Sequence: "5", Object: "p/5-5"}), -1, nil,
			func(r *Result) bool { return !r.OK() && r.DeadDuplicated == 1 }},
		{"dead-letter objects overlap", good, []DeadLetter{{Shard: "p", Sequence: "3", Object: "p/3-5"}, {Shard: "p", Sequence: "5", Object: "p/3-5"}, {Shard: "p", Sequence: "4", Object: "p/4-4"}}, -1, nil,
			func(r *Result) bool { return !r.OK() && r.DeadDuplicated == 1 }},
		{"dead letter not invalid", good, append(goodDL, DeadLetter{Shard: "p", Sequence: "2"}), -1, nil,
			func(r *Result) bool { return !r.OK() && r.DeadExtra == 1 }},
		{"child committed before parent", with(func(rs []Row) []Row { rs[2].Commit = 1; return rs }), goodDL, -1, nil,
			func(r *Result) bool { return !r.OK() && r.OrderErrors == 1 }},
		{"shard committed out of order", with(func(rs []Row) []Row { rs[0].Commit = 2; rs[2].Commit = 3; return rs }), goodDL, -1, nil,
			func(r *Result) bool { return !r.OK() && r.OrderErrors == 1 }},
		{"scan disagrees with the files", good, goodDL, 2, nil, func(r *Result) bool { return !r.OK() }},
		{"aged-out shard's records and dead letters missing", []Row{{EventID: "e1", Customer: "k1", Shard: "c", Seq: "1", Commit: 1}, good[2]},
			nil, -1, map[string]bool{"p": true}, func(r *Result) bool { return r.OK() && r.Aged == 1 && r.Missing == 0 }}, // e2 aged out; e1 from its copy in c
		{"aged-out shard: an event with a copy elsewhere is still missed", good[1:2], nil, -1, map[string]bool{"p": true},
			func(r *Result) bool { return !r.OK() && r.Missing == 2 && r.Aged == 0 }},
		{"aged-out shard: still no duplicates", append(append([]Row(nil), good...), good[1]), goodDL, -1, map[string]bool{"p": true},
			func(r *Result) bool { return !r.OK() && r.Duplicated == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scan := tc.scan
			if scan < 0 {
				scan = int64(len(tc.rows))
			}
			r := Check(sent, &TableState{Rows: tc.rows, ScanRows: scan}, tc.dls, shards, tc.aged)
			if !tc.check(r) {
				t.Errorf("verdict %+v", r)
			}
		})
	}
}

func TestDrainTargetAndBehind(t *testing.T) {
	target := DrainTarget([]Sent{{ShardID: "a", SequenceNumber: "9"}, {ShardID: "a", SequenceNumber: "10"}, {ShardID: "b", SequenceNumber: "3"}, {ShardID: "old", SequenceNumber: "4"}},
		map[string]bool{"old": true})
	if _, ok := target["old"]; ok {
		t.Errorf("target %v holds the aged-out shard", target)
	}
	if target["a"] != "10" || target["b"] != "3" {
		t.Fatalf("target %v", target)
	}
	if got := Behind(map[string]string{"a": "10", "b": "2"}, target); len(got) != 1 || got[0] != "b" {
		t.Errorf("behind %v, want [b]", got)
	}
	if got := Behind(map[string]string{"a": "10", "b": "3"}, target); len(got) != 0 {
		t.Errorf("behind %v, want none", got)
	}
}

// With KPL aggregates, user records are told apart by their sub-sequence
// numbers: a row or dead letter at another user record of the same
// aggregate is wrong lineage or a foreign dead letter, and a table
// position inside the last aggregate is still behind.
func TestCheckAggregates(t *testing.T) {
	sub := func(n int64) *int64 { return &n }
	sent := []Sent{
		{EventID: "e1", Kind: "valid", ShardID: "p", SequenceNumber: "1", SubSequenceNumber: sub(0)},
		{Kind: "invalid", ShardID: "p", SequenceNumber: "1", SubSequenceNumber: sub(1)},
		{EventID: "e2", Kind: "valid", ShardID: "p", SequenceNumber: "1", SubSequenceNumber: sub(2)},
		{EventID: "e1", Kind: "duplicate", ShardID: "p", SequenceNumber: "2", SubSequenceNumber: sub(0)},
	}
	shards := []Shard{{ID: "p"}}
	good := []Row{
		{EventID: "e1", Customer: "k", Shard: "p", Seq: "1:0", Commit: 1},
		{EventID: "e2", Customer: "k", Shard: "p", Seq: "1:2", Commit: 2},
	}
	goodDL := []DeadLetter{{Shard: "p", Sequence: "1:1", Object: "p/1:1-1:1"}}
	for _, tc := range []struct {
		name  string
		rows  []Row
		dls   []DeadLetter
		check func(r *Result) bool
	}{
		{"all good", good, goodDL, func(r *Result) bool { return r.OK() && r.DeadLettered == 1 }},
		{"row at another user record", []Row{good[0], {EventID: "e2", Customer: "k", Shard: "p", Seq: "1:1", Commit: 2}}, goodDL,
			func(r *Result) bool { return !r.OK() && r.BadLineage == 1 }},
		{"row without its sub-sequence", []Row{good[0], {EventID: "e2", Customer: "k", Shard: "p", Seq: "1", Commit: 2}}, goodDL,
			func(r *Result) bool { return !r.OK() && r.BadLineage == 1 }},
		{"dead letter at the aggregate", good, []DeadLetter{{Shard: "p", Sequence: "1", Object: "p/1-1"}},
			func(r *Result) bool { return !r.OK() && r.DeadExtra == 1 && r.DeadMissing == 1 }},
		{"user records out of order", []Row{{EventID: "e1", Customer: "k", Shard: "p", Seq: "1:0", Commit: 2}, {EventID: "e2", Customer: "k", Shard: "p", Seq: "1:2", Commit: 1}}, goodDL,
			func(r *Result) bool { return !r.OK() && r.OrderErrors == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(sent, &TableState{Rows: tc.rows, ScanRows: int64(len(tc.rows))}, tc.dls, shards, nil)
			if !tc.check(r) {
				t.Errorf("verdict %+v", r)
			}
		})
	}
	if got := Behind(map[string]string{"p": "2:0"}, DrainTarget(sent, nil)); len(got) != 1 {
		t.Errorf("a position inside the last aggregate is not behind: %v", got)
	}
	if got := Behind(map[string]string{"p": "2"}, DrainTarget(sent, nil)); len(got) != 0 {
		t.Errorf("behind %v at the last aggregate's whole position", got)
	}
	// A dead-letter line's sub_sequence_number is part of its position.
	dls, err := parseDeadLetters("p/1:1-1:1", strings.NewReader(`{"shard_id":"p","sequence_number":"1","sub_sequence_number":1,"raw":"x"}`+"\n"+`{"shard_id":"p","sequence_number":"3","raw":"y"}`+"\n"))
	if err != nil || len(dls) != 2 || dls[0].Sequence != "1:1" || dls[1].Sequence != "3" {
		t.Errorf("parsed dead letters %+v, %v; want positions 1:1 and 3", dls, err)
	}
}

//go:build linux

package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

// ResentCopies reads every shard of the stream and returns an entry for
// each record (or user record of a KPL aggregate) at a position the sent
// log does not name. Those are the copies written by a producer call whose
// outcome was unknown (no answer in time) and that had in fact landed
// before the producer sent its records again: the sent log holds only the
// positions of the call that was answered. A copy whose event_id the sent
// log knows is returned as a "duplicate" of it; one that does not decode
// as an event as "invalid" (the consumers dead-letter it); any other is
// left out, so a row of it counts as never sent. Entries have Resent set.
func ResentCopies(ctx context.Context, e *Env, shards []Shard, sent []Sent) ([]Sent, error) {
	known := map[loc]bool{}
	ids := map[string]bool{}
	for _, s := range sent {
		known[loc{s.ShardID, s.Position()}] = true
		if s.Kind != "invalid" && s.EventID != "" {
			ids[s.EventID] = true
		}
	}
	now := time.Now()
	var extra []Sent
	add := func(shard, seq string, sub *int64, data []byte) {
		s := Sent{ShardID: shard, SequenceNumber: seq, SubSequenceNumber: sub, Resent: true}
		if known[loc{shard, s.Position()}] {
			return
		}
		ev, err := schema.Decode(data, now)
		switch {
		case err != nil:
			s.Kind = "invalid"
		case ids[ev.EventID]:
			s.Kind, s.EventID = "duplicate", ev.EventID
		default:
			return
		}
		extra = append(extra, s)
	}
	for _, sh := range shards {
		err := e.readShard(ctx, sh.ID, func(r ktypes.Record) error {
			seq := aws.ToString(r.SequenceNumber)
			if !kpl.IsAggregated(r.Data) {
				add(sh.ID, seq, nil, r.Data)
				return nil
			}
			urs, err := kpl.Deaggregate(r.Data)
			if err != nil {
				return fmt.Errorf("record %s/%s: %w", sh.ID, seq, err)
			}
			for _, u := range urs {
				sub := int64(u.SubSequence)
				add(sh.ID, seq, &sub, u.Data)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return extra, nil
}

// readShard calls fn for every record of shard id, from its oldest.
func (e *Env) readShard(ctx context.Context, id string, fn func(ktypes.Record) error) error {
	it, err := e.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(e.Stream), ShardId: aws.String(id), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return fmt.Errorf("iterator for %s: %w", id, err)
	}
	iter := it.ShardIterator
	for iter != nil {
		res, err := e.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			return fmt.Errorf("read %s: %w", id, err)
		}
		for _, r := range res.Records {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(res.Records) == 0 {
			break
		}
		iter = res.NextShardIterator
	}
	return nil
}

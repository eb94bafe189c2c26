package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// RoleCommitter names the role of the one worker that commits the table's
// batches when workers stage them (commit mode "single").
const RoleCommitter = "committer"

// StagedKeyPrefix starts the leaseKey of a staged batch: a role key (so
// the Coordinator, Sync and status skip it like every role lease) of the
// committer role, followed by the batch's commit id.
const StagedKeyPrefix = RoleKeyPrefix + RoleCommitter + "#batch#"

// StagedKey returns the leaseKey of the staged batch commitID.
func StagedKey(commitID string) string { return StagedKeyPrefix + commitID }

// StagedState is where a staged batch is in its life:
// staged → committed | refused → (deleted).
type StagedState string

// The states of a staged batch (DESIGN.md in pkg/ingest).
const (
	StateStaged    StagedState = "staged"
	StateCommitted StagedState = "committed"
	StateRefused   StagedState = "refused"
)

// Staged is a batch a worker wrote and handed to the table's committer:
// one item of the lease table under StagedKey(CommitID).
type Staged struct {
	CommitID string
	Worker   string   // the staging worker's id (leaseOwner of its shards when staged)
	Shards   []string // the shards whose leases conditioned the write
	StagedAt time.Time
	Payload  []byte // the batch (iceberg.Prepared, encoded); opaque here

	State      StagedState
	SnapshotID int64     // committed: the snapshot holding the batch
	Reason     string    // refused: why
	SettledAt  time.Time // when it was committed or refused (committer's clock)
}

// Staged item attributes (besides leaseKey).
const (
	attrStWorker   = "stagedBy"
	attrStShards   = "stagedShards"
	attrStAt       = "stagedAt"
	attrStPayload  = "payload"
	attrStState    = "state"
	attrStSnapshot = "snapshotId"
	attrStReason   = "reason"
	attrStSettled  = "settledAt"
)

// ErrNotStaged means SettleStaged found the batch no longer staged (already
// settled by another committer, or deleted), or DeleteStaged found it
// still staged. Nothing was written.
var ErrNotStaged = errors.New("batch no longer staged")

// Stage writes st (State staged) in one transaction with a condition on
// every shard's lease: its leaseOwner is st.Worker. The condition is on the
// owner, not on leaseCounter: the counter moves on every renewal, so the
// worker's copy is stale most of the time and would refuse good batches,
// while the owner changes exactly when the lease moves — a zombie, whose
// lease another worker took, cannot stage. nil: staged, also when an
// earlier attempt of the same call wrote the item (its commit id is the
// batch's alone). ErrLost: a shard's lease is not the worker's and the
// batch is not staged; nothing was written. Any other error: outcome
// unknown.
func (s *DynamoStore) Stage(ctx context.Context, st Staged) error {
	if st.CommitID == "" || st.Worker == "" || len(st.Shards) == 0 {
		return fmt.Errorf("stage batch %q of %q: empty commit id, worker or shards", st.CommitID, st.Worker)
	}
	st.State = StateStaged
	items := make([]types.TransactWriteItem, 0, len(st.Shards)+1)
	items = append(items, types.TransactWriteItem{Put: &types.Put{
		TableName:                aws.String(s.cfg.Table),
		Item:                     marshalStaged(st),
		ConditionExpression:      aws.String("attribute_not_exists(#key)"),
		ExpressionAttributeNames: map[string]string{"#key": attrKey},
	}})
	for _, shard := range st.Shards {
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:                 aws.String(s.cfg.Table),
			Key:                       itemKey(shard),
			ConditionExpression:       aws.String("#owner = :owner"),
			ExpressionAttributeNames:  map[string]string{"#owner": attrOwner},
			ExpressionAttributeValues: map[string]types.AttributeValue{":owner": attrS(st.Worker)},
		}})
	}
	_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && conditionFailed(tce) {
		// The SDK resends a transaction whose answer was lost; AWS answers
		// the resend from its idempotency token, but after the token's
		// 10 minutes (or on an emulator without it) the resend fails the
		// Put's condition on the item the first attempt wrote. The commit
		// id is this batch's alone: if the item is there, it is staged.
		got, gerr := s.GetStaged(ctx, st.CommitID)
		switch {
		case gerr == nil && got.Worker == st.Worker:
			return nil
		case gerr != nil && !errors.Is(gerr, ErrNotFound):
			return fmt.Errorf("stage batch %s: a condition failed and the item could not be read back (outcome unknown): %w", st.CommitID, gerr)
		}
		return fmt.Errorf("stage batch %s: a lease of %s is not %s's: %w", st.CommitID, strings.Join(st.Shards, ","), st.Worker, ErrLost)
	}
	if err != nil {
		return fmt.Errorf("stage batch %s in %q: %w", st.CommitID, s.cfg.Table, err)
	}
	return nil
}

// conditionFailed reports a transaction cancelled only because conditions
// failed (nothing written, certainly), not for a conflict or throttle.
func conditionFailed(tce *types.TransactionCanceledException) bool {
	failed := false
	for _, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "ConditionalCheckFailed":
			failed = true
		case "", "None":
		default:
			return false
		}
	}
	return failed
}

// GetStaged reads one staged batch (strongly consistent); ErrNotFound if
// absent.
func (s *DynamoStore) GetStaged(ctx context.Context, commitID string) (Staged, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.cfg.Table),
		Key:            itemKey(StagedKey(commitID)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Staged{}, fmt.Errorf("get staged batch %s from %q: %w", commitID, s.cfg.Table, err)
	}
	if out.Item == nil {
		return Staged{}, fmt.Errorf("get staged batch %s: %w", commitID, ErrNotFound)
	}
	return unmarshalStaged(out.Item)
}

// ListStaged reads every staged batch, settled or not (a strongly
// consistent scan of the lease table filtered to StagedKeyPrefix).
func (s *DynamoStore) ListStaged(ctx context.Context) ([]Staged, error) {
	in := &dynamodb.ScanInput{
		TableName:                 aws.String(s.cfg.Table),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("begins_with(#key, :prefix)"),
		ExpressionAttributeNames:  map[string]string{"#key": attrKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":prefix": attrS(StagedKeyPrefix)},
	}
	if s.cfg.scanLimit > 0 {
		in.Limit = aws.Int32(s.cfg.scanLimit)
	}
	var out []Staged
	p := dynamodb.NewScanPaginator(s.api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan staged batches in %q: %w", s.cfg.Table, err)
		}
		for _, item := range page.Items {
			st, err := unmarshalStaged(item)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// SettleStaged moves a staged batch to state (committed, with its
// snapshot, or refused, with a reason), on condition that it is still
// staged. ErrNotStaged: it is not (settled already, or gone); a resend by
// the SDK that fails on this same settlement's first attempt is success.
func (s *DynamoStore) SettleStaged(ctx context.Context, commitID string, state StagedState, snapshotID int64, reason string, at time.Time) error {
	if state != StateCommitted && state != StateRefused {
		return fmt.Errorf("settle staged batch %s: bad state %q", commitID, state)
	}
	var attempts int
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.cfg.Table),
		Key:                 itemKey(StagedKey(commitID)),
		ConditionExpression: aws.String("#state = :staged"),
		UpdateExpression:    aws.String("SET #state = :state, #snap = :snap, #reason = :reason, #at = :at"),
		ExpressionAttributeNames: map[string]string{
			"#state": attrStState, "#snap": attrStSnapshot, "#reason": attrStReason, "#at": attrStSettled,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":staged": attrS(string(StateStaged)), ":state": attrS(string(state)), ":snap": attrN(snapshotID),
			":reason": attrS(reason), ":at": attrN(at.UnixMilli()),
		},
	}, countAttempts(&attempts))
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		// After a resend the failed condition may be the first attempt's
		// own result: the item then holds exactly this settlement.
		if attempts > 1 {
			got, gerr := s.GetStaged(ctx, commitID)
			if gerr == nil && got.State == state && got.SnapshotID == snapshotID && got.SettledAt.UnixMilli() == at.UnixMilli() {
				return nil
			}
		}
		return fmt.Errorf("settle staged batch %s: %w", commitID, ErrNotStaged)
	}
	if err != nil {
		return fmt.Errorf("settle staged batch %s in %q: %w", commitID, s.cfg.Table, err)
	}
	return nil
}

// DeleteStaged removes a staged batch's item; deleting an absent one
// succeeds. Only settled batches are deleted: by their worker once it has
// seen the outcome, by the committer after a grace period.
func (s *DynamoStore) DeleteStaged(ctx context.Context, commitID string) error {
	_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.cfg.Table),
		Key:                       itemKey(StagedKey(commitID)),
		ConditionExpression:       aws.String("attribute_not_exists(#key) OR #state <> :staged"),
		ExpressionAttributeNames:  map[string]string{"#key": attrKey, "#state": attrStState},
		ExpressionAttributeValues: map[string]types.AttributeValue{":staged": attrS(string(StateStaged))},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("delete staged batch %s: still staged: %w", commitID, ErrNotStaged)
	}
	if err != nil {
		return fmt.Errorf("delete staged batch %s in %q: %w", commitID, s.cfg.Table, err)
	}
	return nil
}

func marshalStaged(st Staged) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrKey:       attrS(StagedKey(st.CommitID)),
		attrStWorker:  attrS(st.Worker),
		attrStShards:  &types.AttributeValueMemberSS{Value: st.Shards},
		attrStAt:      attrN(st.StagedAt.UnixMilli()),
		attrStPayload: &types.AttributeValueMemberB{Value: st.Payload},
		attrStState:   attrS(string(st.State)),
	}
	return item
}

func unmarshalStaged(item map[string]types.AttributeValue) (Staged, error) {
	key, _ := item[attrKey].(*types.AttributeValueMemberS)
	if key == nil || !strings.HasPrefix(key.Value, StagedKeyPrefix) {
		return Staged{}, errors.New("decode staged batch: not a staged batch's item")
	}
	st := Staged{CommitID: strings.TrimPrefix(key.Value, StagedKeyPrefix)}
	if v, ok := item[attrStWorker].(*types.AttributeValueMemberS); ok {
		st.Worker = v.Value
	}
	if v, ok := item[attrStShards].(*types.AttributeValueMemberSS); ok {
		st.Shards = v.Value
	}
	if v, ok := item[attrStPayload].(*types.AttributeValueMemberB); ok {
		st.Payload = v.Value
	}
	if v, ok := item[attrStState].(*types.AttributeValueMemberS); ok {
		st.State = StagedState(v.Value)
	}
	if v, ok := item[attrStReason].(*types.AttributeValueMemberS); ok {
		st.Reason = v.Value
	}
	st.StagedAt = time.UnixMilli(numAttr(item[attrStAt]))
	st.SnapshotID = numAttr(item[attrStSnapshot])
	if ms := numAttr(item[attrStSettled]); ms != 0 {
		st.SettledAt = time.UnixMilli(ms)
	}
	if st.Worker == "" || len(st.Shards) == 0 || st.State == "" {
		return Staged{}, fmt.Errorf("decode staged batch %s: worker, shards or state missing", st.CommitID)
	}
	return st, nil
}

// numAttr reads a number attribute; 0 when absent or malformed.
func numAttr(v types.AttributeValue) int64 {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	i, _ := strconv.ParseInt(n.Value, 10, 64)
	return i
}

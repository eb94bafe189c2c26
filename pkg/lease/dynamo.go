package lease

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

var _ Store = (*DynamoStore)(nil)

// KCL attribute names of the lease table.
const (
	attrKey            = "leaseKey"
	attrOwner          = "leaseOwner"
	attrCounter        = "leaseCounter"
	attrCheckpoint     = "checkpoint"
	attrCheckpointSub  = "checkpointSubSequenceNumber"
	attrOwnerSwitches  = "ownerSwitchesSinceCheckpoint"
	attrParentShardIDs = "parentShardId"
	attrChildShardIDs  = "childShardIds"
)

// dynamoAPI is the part of *dynamodb.Client the lease store uses.
type dynamoAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ dynamoAPI = (*dynamodb.Client)(nil)

// DynamoStoreConfig configures a DynamoStore.
type DynamoStoreConfig struct {
	// Table (--lease-table) is the lease table name; by default, and by KCL
	// convention, the application name (--app-name, default "paystream").
	Table string
	// CreateTable (--create-lease-table) lets EnsureTable create the table
	// (hash key leaseKey, on-demand billing) when it does not exist. Off in
	// AWS, where Terraform creates it; on locally.
	CreateTable bool

	// scanLimit caps items per Scan page; 0 lets DynamoDB decide (1 MB
	// pages). Set by tests to exercise paging.
	scanLimit int32
}

var tableNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// Validate reports a table name DynamoDB would reject, naming the flags it
// comes from.
func (c DynamoStoreConfig) Validate() error {
	if !tableNameRE.MatchString(c.Table) {
		return fmt.Errorf("lease table name %q (--lease-table, which defaults to --app-name) is not a valid DynamoDB table name: use 3-255 characters from a-z, A-Z, 0-9, '_', '-', '.'", c.Table)
	}
	return nil
}

// DynamoStore is the Store on a DynamoDB table with KCL's item
// layout: leaseKey (S, hash key), leaseOwner (S, absent when unowned),
// leaseCounter (N), checkpoint (S), checkpointSubSequenceNumber (N, the
// index of the last user record of a KPL aggregate, else 0), ownerSwitchesSinceCheckpoint (N), parentShardId (SS), childShardIds
// (SS). Attributes it does not know are left alone. Reads are strongly
// consistent. A ConditionalCheckFailedException becomes ErrLost,
// ErrHeld or ErrExists, except when it answers the SDK's resend of a
// holder write whose first attempt applied (resentApplied): that write
// succeeded. Every other error is returned wrapped and means the outcome
// is unknown (the SDK retries throttling and 5xx first).
//
// IAM: dynamodb:DescribeTable, GetItem, PutItem, UpdateItem, DeleteItem,
// Scan and ConditionCheckItem on the table (TransactWriteItems, for
// staged batches: stage.go), plus CreateTable when CreateTable is set.
type DynamoStore struct {
	api dynamoAPI
	cfg DynamoStoreConfig
}

// NewDynamoStore returns a store on cfg.Table using client. It does no
// I/O; call EnsureTable before use.
func NewDynamoStore(client *dynamodb.Client, cfg DynamoStoreConfig) (*DynamoStore, error) {
	return newDynamoStore(client, cfg)
}

func newDynamoStore(api dynamoAPI, cfg DynamoStoreConfig) (*DynamoStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &DynamoStore{api: api, cfg: cfg}, nil
}

// EnsureTable implements Store. It waits (up to ctx) for a table being
// created to become ACTIVE, and rejects a table whose hash key is not
// leaseKey.
func (s *DynamoStore) EnsureTable(ctx context.Context) error {
	out, err := s.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.cfg.Table)})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		if !s.cfg.CreateTable {
			return fmt.Errorf("lease table %q does not exist: create it (deploy/terraform does) or enable lease table creation", s.cfg.Table)
		}
		if err := s.createTable(ctx); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("describe lease table %q: %w", s.cfg.Table, err)
	default:
		if err := checkLeaseKeySchema(s.cfg.Table, out.Table); err != nil {
			return err
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
	}
	return s.waitActive(ctx)
}

func (s *DynamoStore) createTable(ctx context.Context) error {
	_, err := s.api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(s.cfg.Table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) { // in use: another worker created it first
		return fmt.Errorf("create lease table %q: %w", s.cfg.Table, err)
	}
	return nil
}

func (s *DynamoStore) waitActive(ctx context.Context) error {
	delay := 500 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for lease table %q to become active: %w", s.cfg.Table, ctx.Err())
		case <-t.C:
		}
		out, err := s.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.cfg.Table)})
		var notFound *types.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound): // eventual consistency right after CreateTable
		case err != nil:
			return fmt.Errorf("describe lease table %q: %w", s.cfg.Table, err)
		case out.Table.TableStatus == types.TableStatusActive:
			return checkLeaseKeySchema(s.cfg.Table, out.Table)
		}
		t.Reset(delay)
		delay = min(2*delay, 5*time.Second)
	}
}

func checkLeaseKeySchema(table string, d *types.TableDescription) error {
	if d == nil {
		return fmt.Errorf("describe lease table %q: empty description", table)
	}
	for _, k := range d.KeySchema {
		if k.KeyType == types.KeyTypeHash && aws.ToString(k.AttributeName) == attrKey && len(d.KeySchema) == 1 {
			return nil
		}
	}
	return fmt.Errorf("table %q is not a lease table: its key must be the single hash key %q; use another --app-name or delete the table", table, attrKey)
}

// Create implements Store.
func (s *DynamoStore) Create(ctx context.Context, l Lease) error {
	if l.Key == "" {
		return errors.New("create lease: empty key")
	}
	_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.cfg.Table),
		Item:                     marshalLease(l),
		ConditionExpression:      aws.String("attribute_not_exists(#key)"),
		ExpressionAttributeNames: map[string]string{"#key": attrKey},
	})
	return s.translate("create", l.Key, err, ErrExists)
}

// Get implements Store.
func (s *DynamoStore) Get(ctx context.Context, key string) (Lease, error) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.cfg.Table),
		Key:            itemKey(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s from %q: %w", key, s.cfg.Table, err)
	}
	if out.Item == nil {
		return Lease{}, fmt.Errorf("get lease %s: %w", key, ErrNotFound)
	}
	return unmarshalLease(out.Item)
}

// List implements Store.
func (s *DynamoStore) List(ctx context.Context) ([]Lease, error) {
	in := &dynamodb.ScanInput{TableName: aws.String(s.cfg.Table), ConsistentRead: aws.Bool(true)}
	if s.cfg.scanLimit > 0 {
		in.Limit = aws.Int32(s.cfg.scanLimit)
	}
	var out []Lease
	p := dynamodb.NewScanPaginator(s.api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan lease table %q: %w", s.cfg.Table, err)
		}
		for _, item := range page.Items {
			l, err := unmarshalLease(item)
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// holderCondition is the condition of the holder's writes: counter and owner
// unchanged.
const holderCondition = "#counter = :counter AND #owner = :owner"

// counterWrite is one conditional write of a lease item that moves its
// counter from :counter to :next (the lease's Counter and Counter+1, which
// write fills in with "#counter").
type counterWrite struct {
	op        string // for errors: renew, take, release, checkpoint
	condition string
	update    string
	names     map[string]string
	values    map[string]types.AttributeValue
	// applied tells from the item as read back whether the write took
	// effect: after the SDK resent it, a failed condition may be the
	// first attempt's own success (resentApplied).
	applied func(cur Lease) bool
	refused error // what a failed condition means: ErrLost or ErrHeld
}

func (s *DynamoStore) write(ctx context.Context, l Lease, w counterWrite) error {
	w.names["#counter"] = attrCounter
	w.values[":counter"], w.values[":next"] = attrN(l.Counter), attrN(l.Counter+1)
	var attempts int
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.cfg.Table),
		Key:                       itemKey(l.Key),
		ConditionExpression:       aws.String(w.condition),
		UpdateExpression:          aws.String(w.update),
		ExpressionAttributeNames:  w.names,
		ExpressionAttributeValues: w.values,
	}, countAttempts(&attempts))
	if s.resentApplied(ctx, err, attempts, l.Key, w.applied) {
		err = nil
	}
	return s.translate(w.op, l.Key, err, w.refused)
}

// heldWrite is a counterWrite conditioned on l's owner still holding it.
func heldWrite(op string, l Lease, update string, names map[string]string, values map[string]types.AttributeValue, applied func(Lease) bool) counterWrite {
	names["#owner"] = attrOwner
	values[":owner"] = attrS(l.Owner)
	return counterWrite{op: op, condition: holderCondition, update: update, names: names, values: values, applied: applied, refused: ErrLost}
}

// Renew implements Store.
func (s *DynamoStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	if err := CheckHolderWrite("renew", l); err != nil {
		return Lease{}, err
	}
	err := s.write(ctx, l, heldWrite("renew", l, "SET #counter = :next",
		map[string]string{}, map[string]types.AttributeValue{},
		func(cur Lease) bool { return cur.Owner == l.Owner && cur.Counter == l.Counter+1 }))
	if err != nil {
		return Lease{}, err
	}
	l = l.Clone()
	l.Counter++
	return l, nil
}

// Take implements Store.
func (s *DynamoStore) Take(ctx context.Context, l Lease, newOwner string) (Lease, error) {
	if l.Key == "" || newOwner == "" {
		return Lease{}, fmt.Errorf("take lease %q for %q: empty key or owner", l.Key, newOwner)
	}
	l = l.Clone()
	if l.Owner != newOwner {
		l.OwnerSwitchesSinceCheckpoint++
	}
	err := s.write(ctx, l, counterWrite{
		op:        "take",
		condition: "#counter = :counter",
		update:    "SET #counter = :next, #owner = :owner, #switches = :switches",
		names:     map[string]string{"#owner": attrOwner, "#switches": attrOwnerSwitches},
		values: map[string]types.AttributeValue{
			":owner": attrS(newOwner), ":switches": attrN(l.OwnerSwitchesSinceCheckpoint),
		},
		applied: func(cur Lease) bool { return cur.Owner == newOwner && cur.Counter == l.Counter+1 },
		refused: ErrHeld,
	})
	if err != nil {
		return Lease{}, err
	}
	l.Owner = newOwner
	l.Counter++
	return l, nil
}

// Release implements Store.
func (s *DynamoStore) Release(ctx context.Context, l Lease) error {
	if err := CheckHolderWrite("release", l); err != nil {
		return err
	}
	return s.write(ctx, l, heldWrite("release", l, "SET #counter = :next REMOVE #owner",
		map[string]string{}, map[string]types.AttributeValue{},
		func(cur Lease) bool { return cur.Owner == "" && cur.Counter == l.Counter+1 }))
}

// UpdateCheckpoint implements Store.
func (s *DynamoStore) UpdateCheckpoint(ctx context.Context, l Lease, checkpoint string) (Lease, error) {
	if err := CheckHolderWrite("checkpoint", l); err != nil {
		return Lease{}, err
	}
	if checkpoint == "" {
		return Lease{}, fmt.Errorf("checkpoint lease %s: empty checkpoint", l.Key)
	}
	cp, cpsub, err := SplitCheckpoint(checkpoint)
	if err != nil {
		return Lease{}, fmt.Errorf("checkpoint lease %s: %w", l.Key, err)
	}
	err = s.write(ctx, l, heldWrite("checkpoint", l, "SET #counter = :next, #cp = :cp, #cpsub = :cpsub, #switches = :zero",
		map[string]string{"#cp": attrCheckpoint, "#cpsub": attrCheckpointSub, "#switches": attrOwnerSwitches},
		map[string]types.AttributeValue{":cp": attrS(cp), ":cpsub": attrN(cpsub), ":zero": attrN(0)},
		func(cur Lease) bool {
			return cur.Owner == l.Owner && cur.Counter == l.Counter+1 && cur.Checkpoint == cp && cur.CheckpointSubSequence == cpsub
		}))
	if err != nil {
		return Lease{}, err
	}
	l = l.Clone()
	l.Counter++
	l.Checkpoint, l.CheckpointSubSequence = cp, cpsub
	l.OwnerSwitchesSinceCheckpoint = 0
	return l, nil
}

// Delete implements Store.
func (s *DynamoStore) Delete(ctx context.Context, l Lease) error {
	_, err := s.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.cfg.Table),
		Key:                       itemKey(l.Key),
		ConditionExpression:       aws.String("attribute_not_exists(#key) OR #counter = :counter"),
		ExpressionAttributeNames:  map[string]string{"#key": attrKey, "#counter": attrCounter},
		ExpressionAttributeValues: map[string]types.AttributeValue{":counter": attrN(l.Counter)},
	})
	return s.translate("delete", l.Key, err, ErrLost)
}

// countAttempts counts the HTTP attempts the SDK makes for one call: its
// retry middleware resends a call whose answer failed (a 5xx, a reset, a
// response that does not match its checksum), and the first attempt may
// have applied.
func countAttempts(n *int) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("paystreamCountAttempts",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					*n++
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

// resentApplied reports whether a conditional write that failed its
// condition after more than one attempt failed it on its own earlier
// attempt: the SDK resent a write whose answer was lost after it applied,
// and the resend's condition no longer held. It reads the lease back and
// asks applied whether it is what the write makes. Without this every
// holder write lost that way was a lost lease, and the holder dropped a
// lease it held (and logged that a second process shares its worker id).
// A read that fails leaves the failure as it was.
func (s *DynamoStore) resentApplied(ctx context.Context, err error, attempts int, key string, applied func(Lease) bool) bool {
	var ccf *types.ConditionalCheckFailedException
	if attempts < 2 || !errors.As(err, &ccf) {
		return false
	}
	cur, gerr := s.Get(ctx, key)
	return gerr == nil && applied(cur)
}

// translate maps a failed condition to sentinel and wraps everything else
// with context.
func (s *DynamoStore) translate(op, key string, err error, sentinel error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("%s lease %s: %w", op, key, sentinel)
	}
	return fmt.Errorf("%s lease %s in %q: %w", op, key, s.cfg.Table, err)
}

func itemKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrKey: attrS(key)}
}

func attrS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func attrN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func marshalLease(l Lease) map[string]types.AttributeValue {
	l = l.Normalized()
	item := map[string]types.AttributeValue{
		attrKey:           attrS(l.Key),
		attrCounter:       attrN(l.Counter),
		attrOwnerSwitches: attrN(l.OwnerSwitchesSinceCheckpoint),
	}
	if l.Owner != "" {
		item[attrOwner] = attrS(l.Owner)
	}
	if l.Checkpoint != "" {
		item[attrCheckpoint] = attrS(l.Checkpoint)
		item[attrCheckpointSub] = attrN(l.CheckpointSubSequence)
	}
	if len(l.ParentShardIDs) > 0 {
		item[attrParentShardIDs] = &types.AttributeValueMemberSS{Value: l.ParentShardIDs}
	}
	if len(l.ChildShardIDs) > 0 {
		item[attrChildShardIDs] = &types.AttributeValueMemberSS{Value: l.ChildShardIDs}
	}
	return item
}

func unmarshalLease(item map[string]types.AttributeValue) (Lease, error) {
	var l Lease
	var err error
	getS := func(name string) string {
		v, ok := item[name].(*types.AttributeValueMemberS)
		if !ok {
			if item[name] != nil && err == nil {
				err = fmt.Errorf("attribute %s is %T, want a string", name, item[name])
			}
			return ""
		}
		return v.Value
	}
	getN := func(name string) int64 {
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			if item[name] != nil && err == nil {
				err = fmt.Errorf("attribute %s is %T, want a number", name, item[name])
			}
			return 0
		}
		n, perr := strconv.ParseInt(v.Value, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("attribute %s: %w", name, perr)
		}
		return n
	}
	getSS := func(name string) []string {
		switch v := item[name].(type) {
		case nil:
			return nil
		case *types.AttributeValueMemberSS:
			return v.Value
		case *types.AttributeValueMemberL: // tolerate a list of strings
			var out []string
			for _, e := range v.Value {
				if s, ok := e.(*types.AttributeValueMemberS); ok {
					out = append(out, s.Value)
				}
			}
			return out
		default:
			if err == nil {
				err = fmt.Errorf("attribute %s is %T, want a string set", name, v)
			}
			return nil
		}
	}
	l.Key = getS(attrKey)
	l.Owner = getS(attrOwner)
	l.Counter = getN(attrCounter)
	l.Checkpoint = getS(attrCheckpoint)
	l.CheckpointSubSequence = getN(attrCheckpointSub)
	l.OwnerSwitchesSinceCheckpoint = getN(attrOwnerSwitches)
	l.ParentShardIDs = getSS(attrParentShardIDs)
	l.ChildShardIDs = getSS(attrChildShardIDs)
	if err != nil {
		return Lease{}, fmt.Errorf("decode lease %q: %w", l.Key, err)
	}
	return l.Normalized(), nil
}

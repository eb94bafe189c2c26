package lease

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// errDynamo answers every write with err, wrapped as the SDK wraps service
// errors.
type errDynamo struct {
	dynamoAPI
	err error
}

func (e errDynamo) wrap() error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "UpdateItem", Err: e.err}
}

func (e errDynamo) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, e.wrap()
}

func (e errDynamo) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, e.wrap()
}

func (e errDynamo) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return nil, e.wrap()
}

// Only a failed condition is a conflict; a throttle or timeout leaves the
// outcome unknown and must not look like one.
func TestDynamoStoreErrorTranslation(t *testing.T) {
	held := Lease{Key: "s1", Owner: "a", Counter: 3}
	ops := map[string]func(s *DynamoStore) error{
		"Create":           func(s *DynamoStore) error { return s.Create(t.Context(), held) },
		"Renew":            func(s *DynamoStore) error { _, err := s.Renew(t.Context(), held); return err },
		"Take":             func(s *DynamoStore) error { _, err := s.Take(t.Context(), held, "b"); return err },
		"Release":          func(s *DynamoStore) error { return s.Release(t.Context(), held) },
		"UpdateCheckpoint": func(s *DynamoStore) error { _, err := s.UpdateCheckpoint(t.Context(), held, "9"); return err },
		"Delete":           func(s *DynamoStore) error { return s.Delete(t.Context(), held) },
	}
	conflict := map[string]error{
		"Create": ErrExists, "Renew": ErrLost, "Take": ErrHeld,
		"Release": ErrLost, "UpdateCheckpoint": ErrLost, "Delete": ErrLost,
	}
	sentinels := []error{ErrLost, ErrHeld, ErrExists, ErrNotFound}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			s, err := newDynamoStore(errDynamo{err: &types.ConditionalCheckFailedException{Message: new(string)}}, DynamoStoreConfig{Table: "paystream"})
			if err != nil {
				t.Fatal(err)
			}
			if err := op(s); !errors.Is(err, conflict[name]) {
				t.Fatalf("conditional check failure: err = %v, want %v", err, conflict[name])
			}
			throttle := &types.ProvisionedThroughputExceededException{}
			s, _ = newDynamoStore(errDynamo{err: throttle}, DynamoStoreConfig{Table: "paystream"})
			err = op(s)
			if !errors.As(err, &throttle) {
				t.Fatalf("throttle: err = %v, want it wrapped", err)
			}
			for _, sentinel := range sentinels {
				if errors.Is(err, sentinel) {
					t.Fatalf("throttle reported as %v", sentinel)
				}
			}
		})
	}
}

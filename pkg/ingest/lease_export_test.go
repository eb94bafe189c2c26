package ingest

import "github.com/aws/aws-sdk-go-v2/service/dynamodb"

// NewDynamoLeaseStoreWithScanLimit is NewDynamoLeaseStore with small Scan
// pages, for tests of paging.
func NewDynamoLeaseStoreWithScanLimit(client *dynamodb.Client, cfg DynamoLeaseStoreConfig, limit int32) (*DynamoLeaseStore, error) {
	cfg.scanLimit = limit
	return newDynamoLeaseStore(client, cfg)
}

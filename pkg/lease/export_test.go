package lease

import "github.com/aws/aws-sdk-go-v2/service/dynamodb"

// NewDynamoStoreWithScanLimit is NewDynamoStore with small Scan
// pages, for tests of paging.
func NewDynamoStoreWithScanLimit(client *dynamodb.Client, cfg DynamoStoreConfig, limit int32) (*DynamoStore, error) {
	cfg.scanLimit = limit
	return newDynamoStore(client, cfg)
}

package schema

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	iceberggo "github.com/apache/iceberg-go"
)

// Column kinds. Each maps to one Arrow type and one Iceberg type.
type kind int

const (
	kindString kind = iota
	kindDecimal
	kindTimestamp
	kindLong
)

// Column describes one column of the payment table.
type Column struct {
	ID       int    // Iceberg field id, stable forever
	Name     string // column and JSON field name
	kind     kind
	Required bool // NOT NULL in the table
	Doc      string
}

// Column names, for code that refers to one column.
const (
	ColEventID          = "event_id"
	ColEventType        = "event_type"
	ColCustomerID       = "customer_id"
	ColAmountUSD        = "amount_usd"
	ColCurrency         = "currency"
	ColSubscriptionTier = "subscription_tier"
	ColStatus           = "status"
	ColCountryCode      = "country_code"
	ColPaymentProcessor = "payment_processor"
	ColEventTS          = "event_ts"
	ColShardID          = "shard_id"
	ColSequenceNumber   = "sequence_number"
	ColIngestedAt       = "ingested_at"
	ColSubSequence      = "sub_sequence_number"
)

// Decimal precision and scale of amount_usd.
const (
	AmountPrecision = 12
	AmountScale     = 2
)

// Columns is the table layout, in order. New columns are appended with new
// ids and Required false, so existing tables can gain them without downtime.
var Columns = []Column{
	{1, ColEventID, kindString, true, "unique id of the payment event, set by the producer"},
	{2, ColEventType, kindString, false, "payment.succeeded | payment.failed | payment.refunded"},
	{3, ColCustomerID, kindString, false, "customer id; also the Kinesis partition key"},
	{4, ColAmountUSD, kindDecimal, false, "amount in USD, decimal(12,2); refunds are negative"},
	{5, ColCurrency, kindString, false, "ISO 4217 code of the customer's currency"},
	{6, ColSubscriptionTier, kindString, false, "basic | standard_with_ads | standard | premium"},
	{7, ColStatus, kindString, false, "succeeded | failed | refunded"},
	{8, ColCountryCode, kindString, false, "ISO 3166-1 alpha-2 country code"},
	{9, ColPaymentProcessor, kindString, false, "payment processor that handled the payment"},
	{10, ColEventTS, kindTimestamp, false, "when the payment happened (UTC, microseconds)"},
	{11, ColShardID, kindString, false, "Kinesis shard the record was read from (lineage)"},
	{12, ColSequenceNumber, kindString, false, "Kinesis sequence number of the record (lineage)"},
	{13, ColIngestedAt, kindTimestamp, false, "when the consumer read the record (lineage)"},
	{14, ColSubSequence, kindLong, false, "index of the user record in the KPL aggregate sequence_number, NULL for a plain record (lineage)"},
}

func (c Column) icebergType() iceberggo.Type {
	switch c.kind {
	case kindDecimal:
		return iceberggo.DecimalTypeOf(AmountPrecision, AmountScale)
	case kindTimestamp:
		return iceberggo.PrimitiveTypes.TimestampTz
	case kindLong:
		return iceberggo.PrimitiveTypes.Int64
	default:
		return iceberggo.PrimitiveTypes.String
	}
}

func (c Column) arrowType() arrow.DataType {
	switch c.kind {
	case kindDecimal:
		return &arrow.Decimal128Type{Precision: AmountPrecision, Scale: AmountScale}
	case kindTimestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case kindLong:
		return arrow.PrimitiveTypes.Int64
	default:
		return arrow.BinaryTypes.String
	}
}

// IcebergSchema returns the table schema (schema id 0).
func IcebergSchema() *iceberggo.Schema {
	fields := make([]iceberggo.NestedField, len(Columns))
	for i, c := range Columns {
		fields[i] = iceberggo.NestedField{ID: c.ID, Name: c.Name, Type: c.icebergType(), Required: c.Required, Doc: c.Doc}
	}
	return iceberggo.NewSchema(0, fields...)
}

var arrowSchema = func() *arrow.Schema {
	fields := make([]arrow.Field, len(Columns))
	for i, c := range Columns {
		fields[i] = arrow.Field{
			Name:     c.Name,
			Type:     c.arrowType(),
			Nullable: !c.Required,
			Metadata: arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{strconv.Itoa(c.ID)}),
		}
	}
	return arrow.NewSchema(fields, nil)
}()

// ArrowSchema returns the Arrow schema of record batches built by
// RecordBuilder. Field ids are in each field's "PARQUET:field_id" metadata.
func ArrowSchema() *arrow.Schema { return arrowSchema }

// Package schema defines the payment event once: its Go type, its JSON
// decoding, its validation rules, its Arrow schema and its Iceberg schema,
// and a generator of realistic events for load tests.
//
// Everything that stores or checks an event derives from the column table
// in columns.go, so the Go struct, the Arrow record layout and the Iceberg
// table schema cannot drift apart.
//
// Decode (or DecodeWith, or EventColumns.Decode) is the single entry point
// for raw records (Kinesis payloads, NDJSON lines). It never panics, is safe for concurrent use, and returns either a
// valid Event or an *InvalidError listing every problem found, each with the
// field name and a reason a person can act on. Unknown fields are ignored so
// producers can add fields before the table has them.
//
// Decode reads a record with a scanner written for the event's fields
// (scan.go) and allocates once per valid event; DecodeWith (the stream
// path's shard reader) puts the event's ids in an IDArena's shared blocks
// instead; EventColumns.Decode (file ingest's) appends the valid event
// straight to the columns of a record batch. All three are the same
// decoder, held to decodeReference, the encoding/json decoder it
// replaced, by TestDecodeMatchesReference and FuzzDecodeMatchesReference:
// same events, same rejection reasons, on any bytes.
//
// Money is never a float: Amount holds hundredths of a dollar in an int64 and
// is written to Arrow/Iceberg as decimal(12,2).
package schema

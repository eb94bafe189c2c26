// Package kinesistest is a small, faithful Amazon Kinesis Data Streams
// emulator for tests: an in-process HTTP server speaking the JSON 1.1
// protocol (X-Amz-Target: Kinesis_20131202.<Operation>, Content-Type
// application/x-amz-json-1.1) that the aws-sdk-go-v2 Kinesis client uses,
// so the real SDK client talks to it over a real socket.
//
// It exists because the other local stand-ins cannot test a resharding
// consumer: moto 5.x moves a parent's records into the children with new
// sequence numbers on SplitShard/MergeShards, keeps writing to the closed
// parent and never ends a closed shard (GetRecords always returns a next
// iterator), and its PutRecords is not safe for concurrent calls; kumo has
// no resharding at all.
//
// # Use
//
//	srv := kinesistest.Start(t)                        // stopped by t.Cleanup
//	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL)      // or o.BaseEndpoint = &srv.URL
//
// Outside a test (a chaos harness handing the URL to subprocesses):
//
//	srv, err := kinesistest.NewServer(kinesistest.WithAddr("127.0.0.1:0"))
//	defer srv.Close()
//
// NewServer listens and serves at once (like net/http/httptest); Close
// stops it and drops all streams. A Server is safe for concurrent use.
// internal/cmd/kinesistest runs one as a process of its own (the chaos
// harness's Kinesis in read mode efo); clients in other processes want
// WithAnswerDelay (see there).
//
// # Semantics (as in AWS)
//
//   - CreateStream makes ShardCount shards with uniform hash key ranges
//     (shard i starts at floor(i·2^128/n)); the stream is ACTIVE at once or
//     after WithCreateDelay.
//   - PutRecord/PutRecords route a record by the MD5 of its partition key
//     (or its ExplicitHashKey) to the OPEN shard whose range holds it.
//     Sequence numbers are 56-digit decimal strings, unique in the stream
//     and strictly increasing per shard (and across a stream over time, so
//     a child's numbers are above its parents'). Concurrent calls are safe;
//     the entries of one PutRecords call get consecutive numbers in order.
//   - GetShardIterator supports TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER,
//     AFTER_SEQUENCE_NUMBER (a number of another shard is an
//     InvalidArgumentException, as in AWS) and AT_TIMESTAMP. Iterators are
//     reusable until they expire (WithIteratorTTL, default 5 min), then
//     GetRecords fails with ExpiredIteratorException.
//   - GetRecords returns up to Limit (default and at most 10,000) records
//     and at most 10 MiB, MillisBehindLatest and ApproximateArrivalTimestamp.
//     On a closed shard, the response that returns its last records (or any
//     later one) has no NextShardIterator and lists ChildShards.
//   - SplitShard and MergeShards close the parent(s) with an
//     EndingSequenceNumber; parents keep their records; children carry
//     ParentShardId / AdjacentParentShardId and the new hash ranges; new
//     writes go to the children. The stream is UPDATING for
//     WithReshardDelay (default 0: the change is immediate); during that
//     time writes still go to the parents and another reshard is a
//     ResourceInUseException.
//   - UpdateShardCount (UNIFORM_SCALING, between half and double the open
//     shard count) is carried out as splits and then merges, so every new
//     shard has at most two parents and its lineage is complete.
//   - ListShards pages with MaxResults (default 1,000) and NextToken (valid
//     5 min; NextToken together with StreamName is an
//     InvalidArgumentException) and supports ExclusiveStartShardId and the
//     AT_LATEST / AT_TRIM_HORIZON / FROM_TRIM_HORIZON filters.
//     DescribeStream (Limit, ExclusiveStartShardId), DescribeStreamSummary,
//     ListStreams and DeleteStream are there too.
//   - Errors have the AWS JSON shape ({"__type": ..., "message": ...}, HTTP
//     400), so the SDK returns its typed errors
//     (*types.ResourceNotFoundException, InvalidArgumentException,
//     ExpiredIteratorException, ProvisionedThroughputExceededException,
//     ResourceInUseException, ExpiredNextTokenException). Operations it does
//     not implement answer UnknownOperationException.
//
// # Enhanced fan-out
//
//   - RegisterStreamConsumer, DescribeStreamConsumer (by ConsumerARN, or by
//     StreamARN and ConsumerName), ListStreamConsumers (MaxResults,
//     NextToken) and DeregisterStreamConsumer. A consumer is CREATING, then
//     ACTIVE, after WithConsumerDelay (default 0); deregistered, it is
//     DELETING for as long, then gone. ARNs have AWS's shape,
//     <stream ARN>/consumer/<name>:<creation epoch seconds>. A name taken
//     (or still DELETING) is a ResourceInUseException, an unknown one a
//     ResourceNotFoundException, a consumer past WithConsumerLimit
//     (default 20, as in AWS) a LimitExceededException. Deleting a stream
//     deletes its consumers.
//   - SubscribeToShard answers with an application/vnd.amazon.eventstream
//     body: the initial-response event, then SubscribeToShardEvent events
//     {Records, ContinuationSequenceNumber, MillisBehindLatest} — one at
//     once, one whenever records are appended to the shard (pushed, not
//     polled), and an empty one after 5 s without any. Starting positions
//     are those of GetShardIterator. The continuation is the last record
//     sent (before any, the shard's starting sequence number), so
//     AFTER_SEQUENCE_NUMBER of it resumes without gap or duplicate. At the
//     end of a closed shard the last event carries ChildShards and no
//     continuation, and the stream ends. A stream ends cleanly after
//     WithSubscriptionLifetime (default 5 min, real time).
//   - SubscribeToShard errors: an unknown consumer or shard is a
//     ResourceNotFoundException; a consumer that is not ACTIVE, or a call
//     for the same consumer and shard within WithResubscribeWindow (default
//     5 s of the clock, as in AWS) of the last successful one, whether its
//     stream is still open or not, is a ResourceInUseException.
//     A later call takes over: the old stream ends with a
//     ResourceInUseException event. Deregistering the consumer or deleting
//     the stream ends its streams with a ResourceNotFoundException event.
//
// The unmodified aws-sdk-go-v2 client reads these streams over plain
// HTTP/1.1: it requires HTTP/2 only for event streams in both directions,
// and SubscribeToShard's input is not one. Two client defects matter to
// anyone using it (smithy-go v1.28.9):
//
//   - The client closes the request body as soon as the response headers
//     arrive. If net/http has not yet made its final read of the body, that
//     read fails and the transport closes the connection, ending the event
//     stream. The server therefore holds a subscription's headers back
//     25 ms (without that, 4 of 150 runs of TestSubscribeChildShards lost
//     their stream on loopback).
//   - A client's protocol decodes all event streams with one shared
//     decoder and payload buffer: two subscriptions open on one client are
//     a data race. Give each SubscribeToShard call its own protocol,
//     func(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }.
//
// # Faults and limits
//
// SetFaults (or WithFaults) throttles GetRecords calls and PutRecords
// entries with ProvisionedThroughputExceededException: the last Burst of
// every Every calls, and/or each call with a Probability drawn from an RNG
// seeded with Faults.Seed, optionally only on some shards
// (Throttle.Shards: stall one parent while its children fill). A throttled PutRecords entry fails on its own
// (ErrorCode in the result, FailedRecordCount counts it), as in AWS; a
// throttled PutRecord or GetRecords call fails as a whole. WithReadLimit and
// WithWriteLimit enforce per-shard rates (AWS: 5 GetRecords calls/s,
// 1,000 records/s) the same way. Stats reports what was served and
// throttled.
//
// # Not modelled
//
// Retention (records are never trimmed), tags, encryption, on-demand
// mode, byte rate limits (including the 2 MiB/s per shard per consumer of
// enhanced fan-out), the one SubscribeToShard call per second per
// consumer and shard, request signatures (any credentials are accepted),
// and the account-wide limits on resharding frequency and consumer
// registration.
package kinesistest

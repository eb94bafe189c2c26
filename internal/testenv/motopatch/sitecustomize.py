# Loaded by Python at start-up when this folder is on PYTHONPATH: the moto
# launchers (internal/testenv and the chaos harness) write it to a temporary
# folder and start moto_server with that folder on PYTHONPATH. Each patch is
# switched on by its own environment variable and prints a marker line the
# launcher checks, so a shadowed or broken sitecustomize cannot go unnoticed.
#
# PAYSTREAM_MOTO_KINESIS_RESHARD=1 makes moto 5.x's Kinesis resharding
# behave like Kinesis:
#
#   1. PutRecord(s) route only to OPEN shards. moto picks the first shard in
#      creation order whose hash range matches, so after a split or merge
#      every new record still lands on the closed parent and the children
#      stay empty.
#   2. SplitShard leaves the parent's records alone (moto re-puts them) and
#      MergeShards does not copy both parents' records into the child (moto
#      does: every record of the parents appears a second time in the child,
#      under new sequence numbers).
#   3. GetRecords on a closed shard read to its end returns no
#      NextShardIterator, which is how Kinesis says "this shard is finished"
#      (moto always returns one, so a reader can never finish a parent).
#
# Without these, split and merge are invisible to a consumer on moto: the
# parent keeps receiving records and children never get any.
#
# PAYSTREAM_MOTO_KINESIS_ATOMIC=1 makes moto's Kinesis calls on a shard's
# records atomic with respect to each other. moto_server serves requests
# on threads; each shard keeps its records in an OrderedDict that
# GetRecords (and GetShardIterator, ListShards, DescribeStream, through the
# first and last sequence numbers) iterates while PutRecord(s) insert into
# it, so a GetRecords under concurrent PutRecords fails with HTTP 500
# "RuntimeError: OrderedDict mutated during iteration", and two concurrent
# PutRecords can even pick the same sequence number. Kinesis serves both
# at once; one lock over every call that reads or writes a shard's records
# (or the stream's shard map) does the same here. It is applied after the
# resharding patch, so it wraps the patched calls too.
#
# PAYSTREAM_MOTO_DYNAMODB_ATOMIC=1 makes each DynamoDB item operation atomic
# with respect to the others. moto_server serves requests on threads and
# moto's conditional writes check the condition, then write: two concurrent
# conditional writes on one item could both pass (seen as "2 concurrent
# takes won" in the lease store's conformance suite under load). DynamoDB
# applies a conditional write atomically; one lock over every item call
# does the same here.
#
# PAYSTREAM_MOTO_GLUE_VERSIONID=1 makes Glue's UpdateTable a compare-and-swap
# on the table's VersionId, as AWS Glue does (moto 5.x reads the VersionId
# parameter nowhere):
#
#   1. An UpdateTable that carries a VersionId other than the table's current
#      one fails with ConcurrentModificationException (HTTP 400, JSON body
#      {"__type": "ConcurrentModificationException", "message": ...}), and
#      the table is left as it was. Without VersionId it applies
#      unconditionally, as on AWS.
#   2. Every applied UpdateTable makes a new current version (moto numbers
#      them "1", "2", ... per table; GetTable returns the current one as
#      VersionId). With SkipArchive=true the superseded version is not kept
#      for GetTableVersions, as on AWS; without it, it is.
#   3. The check and the update happen under one lock: moto_server serves
#      requests on threads, and without it two UpdateTables carrying the same
#      VersionId could both pass the check. Readers of table versions take
#      the same lock, so none sees a version id whose body is gone.
import os
import sys

if os.environ.get("PAYSTREAM_MOTO_KINESIS_RESHARD") == "1":
    try:
        from moto.kinesis import models as _m

        def _get_shard_for_key(self, partition_key, explicit_hash_key):
            if not isinstance(partition_key, str) or len(partition_key) > 256:
                raise _m.InvalidArgumentError("partition_key")
            if explicit_hash_key:
                int_key = int(explicit_hash_key)
                if int_key >= 2**128:
                    raise _m.InvalidArgumentError("explicit_hash_key")
            else:
                int_key = int(_m.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
            for shard in self.shards.values():
                if shard.is_open and shard.starting_hash <= int_key <= shard.ending_hash:
                    return shard
            return None

        def _split_shard(self, shard_to_split, new_starting_hash_key):
            new_start = int(new_starting_hash_key)
            shard = self.shards[shard_to_split]
            if not (shard.starting_hash < new_start < shard.ending_hash):
                raise _m.InvalidArgumentError(
                    message=f"NewStartingHashKey {new_start} is not inside the hash range of {shard_to_split}"
                )
            if not shard.is_open:
                raise _m.InvalidArgumentError(
                    message=f"Shard {shard.shard_id} has already been merged or split"
                )
            last_id = max(s._shard_id for s in self.shards.values())
            a = _m.Shard(last_id + 1, starting_hash=shard.starting_hash, ending_hash=new_start - 1, parent=shard.shard_id)
            b = _m.Shard(last_id + 2, starting_hash=new_start, ending_hash=shard.ending_hash, parent=shard.shard_id)
            self.shards[a.shard_id] = a
            self.shards[b.shard_id] = b
            shard.is_open = False

        def _merge_shards(self, shard_to_merge, adjacent_shard_to_merge):
            s1 = self.shards[shard_to_merge]
            s2 = self.shards[adjacent_shard_to_merge]
            if not (s1.is_open and s2.is_open):
                raise _m.InvalidArgumentError(message="a shard to merge is closed")
            if s1.ending_hash + 1 == s2.starting_hash:
                lo, hi = s1, s2
            elif s2.ending_hash + 1 == s1.starting_hash:
                lo, hi = s2, s1
            else:
                raise _m.InvalidArgumentError(adjacent_shard_to_merge)
            last_id = max(s._shard_id for s in self.shards.values())
            child = _m.Shard(last_id + 1, starting_hash=lo.starting_hash, ending_hash=hi.ending_hash,
                             parent=s1.shard_id, adjacent_parent=s2.shard_id)
            self.shards[child.shard_id] = child
            s1.is_open = False
            s2.is_open = False

        _orig_get_records = _m.KinesisBackend.get_records

        def _get_records(self, stream_arn, shard_iterator, limit):
            nxt, records, millis = _orig_get_records(self, stream_arn, shard_iterator, limit)
            stream_name, shard_id, last = _m.decompose_shard_iterator(shard_iterator)
            stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
            shard = stream.get_shard(shard_id)
            if not shard.is_open:
                at = int(records[-1].sequence_number) if records else int(last)
                if at >= shard.get_max_sequence_number():
                    nxt = None
            return nxt, records, millis

        _m.Stream.get_shard_for_key = _get_shard_for_key
        _m.Stream.split_shard = _split_shard
        _m.Stream.merge_shards = _merge_shards
        _m.KinesisBackend.get_records = _get_records
        print("paystream-motopatch: kinesis resharding patched", file=sys.stderr, flush=True)
    except Exception as e:  # the launcher refuses to run when the marker is missing
        print(f"paystream-motopatch: kinesis resharding patch FAILED: {e!r}", file=sys.stderr, flush=True)

if os.environ.get("PAYSTREAM_MOTO_KINESIS_ATOMIC") == "1":
    try:
        import functools
        import threading

        from moto.kinesis import models as _km

        _kinesis_lock = threading.RLock()

        def _kinesis_locked(fn):
            @functools.wraps(fn)
            def locked(*args, **kwargs):
                with _kinesis_lock:
                    return fn(*args, **kwargs)
            return locked

        # moto finds a shard's first and last sequence numbers by copying
        # every key into a list, once per record put, and GetRecords walks
        # the shard from its first record: both grow with the shard (1.2 ms
        # per record put at 60,000 records), and under the lock every
        # other call waits for them. A shard's keys are the sequence
        # numbers 1, 2, ... in insertion order (moto numbers each record
        # last + 1, also when it re-puts records on a split), so the first
        # and last keys are the OrderedDict's ends, and GetRecords can step
        # through the keys after the iterator's position. The fast path is
        # taken only when the keys are consecutive (count = last - first +
        # 1); otherwise moto's own code runs.
        def _first_key(self):
            return next(iter(self.records)) if self.records else 0

        def _last_key(self):
            return next(reversed(self.records)) if self.records else 0

        _orig_shard_get_records = _km.Shard.get_records

        def _shard_get_records(self, last_sequence_id, limit):
            recs = self.records
            if not recs:
                return _orig_shard_get_records(self, last_sequence_id, limit)
            first, last = next(iter(recs)), next(reversed(recs))
            if len(recs) != last - first + 1:
                return _orig_shard_get_records(self, last_sequence_id, limit)
            at = max(int(last_sequence_id) + 1, first)
            end = last if limit is None else min(last, at + int(limit) - 1)
            results = [recs[n] for n in range(at, end + 1)]
            if not results:
                return results, int(last_sequence_id), 0
            behind = recs[last].created_at - results[-1].created_at
            return results, results[-1].sequence_number, int(behind * 1000)

        _km.Shard.get_min_sequence_number = _first_key
        _km.Shard.get_max_sequence_number = _last_key
        _km.Shard.get_records = _shard_get_records

        # Every method that iterates or changes a shard's records or the
        # stream's shard map. Shard.to_json and Stream.to_json run in the
        # response layer, after the backend call returned, so they are
        # locked themselves.
        for _cls, _names in (
            (_km.Shard, ("get_records", "put_record", "get_min_sequence_number",
                         "get_max_sequence_number", "get_sequence_number_at", "to_json")),
            (_km.Stream, ("put_record", "split_shard", "merge_shards", "update_shard_count",
                          "get_shard_for_key", "to_json")),
            (_km.KinesisBackend, ("get_shard_iterator", "get_records", "put_record", "put_records",
                                  "split_shard", "merge_shards", "update_shard_count", "list_shards")),
        ):
            for _name in _names:
                setattr(_cls, _name, _kinesis_locked(getattr(_cls, _name)))
        print("paystream-motopatch: kinesis record operations atomic", file=sys.stderr, flush=True)
    except Exception as e:  # the launcher refuses to run when the marker is missing
        print(f"paystream-motopatch: kinesis atomic patch FAILED: {e!r}", file=sys.stderr, flush=True)

if os.environ.get("PAYSTREAM_MOTO_GLUE_VERSIONID") == "1":
    try:
        import threading

        from moto.core.responses import EmptyResult as _EmptyResult
        from moto.glue import models as _gm
        from moto.glue import responses as _gr
        from moto.glue.exceptions import GlueClientError as _GlueClientError

        class _ConcurrentModificationException(_GlueClientError):
            def __init__(self, message):
                super().__init__("ConcurrentModificationException", message)

        # One lock for every table of every backend: UpdateTable is rare
        # enough that finer locks would buy nothing.
        _glue_lock = threading.RLock()

        def _glue_update_table(self, database_name, table_name, table_input,
                               version_id=None, skip_archive=False):
            with _glue_lock:
                table = self.get_table(database_name, table_name)
                current = str(table._current_version)
                if version_id is not None and str(version_id) != current:
                    raise _ConcurrentModificationException(
                        f"Table {database_name}.{table_name} was modified: "
                        f"VersionId {version_id} is not the current version {current}."
                    )
                table.update(table_input)
                if skip_archive:
                    table.versions.pop(current, None)

        def _glue_update_table_response(self):
            params = self.parameters
            table_input = params.get("TableInput") or {}
            self.glue_backend.update_table(
                params.get("DatabaseName"),
                table_input.get("Name"),
                table_input,
                version_id=params.get("VersionId"),
                skip_archive=params.get("SkipArchive") is True,
            )
            return _EmptyResult()

        def _locked(fn):
            def locked(*args, **kwargs):
                with _glue_lock:
                    return fn(*args, **kwargs)
            return locked

        _gm.GlueBackend.update_table = _glue_update_table
        _gr.GlueResponse.update_table = _glue_update_table_response
        _gm.GlueBackend.get_table_version = _locked(_gm.GlueBackend.get_table_version)
        _gm.GlueBackend.get_table_versions = _locked(_gm.GlueBackend.get_table_versions)
        _gm.GlueBackend.delete_table_version = _locked(_gm.GlueBackend.delete_table_version)
        _gm.FakeTable.as_dict = _locked(_gm.FakeTable.as_dict)
        print("paystream-motopatch: glue UpdateTable VersionId enforced", file=sys.stderr, flush=True)
    except Exception as e:  # the launcher refuses to run when the marker is missing
        print(f"paystream-motopatch: glue VersionId patch FAILED: {e!r}", file=sys.stderr, flush=True)

if os.environ.get("PAYSTREAM_MOTO_DYNAMODB_ATOMIC") == "1":
    try:
        import functools
        import threading

        from moto.dynamodb import models as _dm

        _dynamo_lock = threading.RLock()

        def _dynamo_locked(fn):
            @functools.wraps(fn)
            def locked(*args, **kwargs):
                with _dynamo_lock:
                    return fn(*args, **kwargs)
            return locked

        for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items"):
            setattr(_dm.DynamoDBBackend, _name, _dynamo_locked(getattr(_dm.DynamoDBBackend, _name)))
        print("paystream-motopatch: dynamodb item operations atomic", file=sys.stderr, flush=True)
    except Exception as e:  # the launcher refuses to run when the marker is missing
        print(f"paystream-motopatch: dynamodb atomic patch FAILED: {e!r}", file=sys.stderr, flush=True)

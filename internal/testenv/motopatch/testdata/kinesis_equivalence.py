# Run by TestKinesisFastPath: sitecustomize.py's Kinesis fast path (first
# and last sequence numbers, GetRecords) must answer exactly as moto's own
# code on the same shard. argv[1] is the folder holding sitecustomize.py.
import os
import random
import sys

from moto.kinesis import models as km

orig_get = km.Shard.get_records
orig_min = km.Shard.get_min_sequence_number
orig_max = km.Shard.get_max_sequence_number
os.environ["PAYSTREAM_MOTO_KINESIS_ATOMIC"] = "1"
sys.path.insert(0, sys.argv[1])
import sitecustomize  # noqa: E402,F401  applies the patch

assert km.Shard.get_records is not orig_get, "the patch did not replace Shard.get_records"


def same(shard, last, limit):
    a, b = orig_get(shard, last, limit), shard.get_records(last, limit)
    got = ([r.sequence_number for r in b[0]], b[1], b[2])
    want = ([r.sequence_number for r in a[0]], a[1], a[2])
    assert got == want, f"get_records({last!r}, {limit!r}) = {got[1:]}, moto {want[1:]}"


shard = km.Shard(0, 0, 2**128)
same(shard, "0", 10)
assert shard.get_min_sequence_number() == orig_min(shard) == 0
for i in range(2000):
    shard.put_record(f"k{i}", "ZGF0YQ==", None)
rng = random.Random(1)
for _ in range(3000):
    same(shard, str(rng.randint(-1, 2100)), rng.choice([None, 1, 5, 100, 10000, rng.randint(1, 3000)]))
assert shard.get_min_sequence_number() == orig_min(shard) == 1
assert shard.get_max_sequence_number() == orig_max(shard) == 2000
del shard.records[500]  # keys no longer consecutive: moto's own code answers
for last in ("0", "400", "499", "500", "1999"):
    same(shard, last, 200)
print("kinesis fast path matches moto")

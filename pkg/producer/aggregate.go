package producer

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
)

// entry is one PutRecords entry: a plain record, or a KPL aggregate of
// several user records (--aggregate).
type entry struct {
	data       []byte
	key        string    // partition key
	recs       []*record // the user records it carries, in sub-sequence order
	aggregated bool

	// With --aggregate (router.entries): the explicit hash key the entry
	// is put with ("": Kinesis hashes key), that hash key, and the shard
	// the map predicted for it.
	ehk   string
	route hash128
	shard string
}

// size is what the entry counts against the PutRecords limits.
func (e *entry) size() int { return len(e.data) + len(e.key) }

// userRecords counts the user records carried by es.
func userRecords(es []*entry) int {
	n := 0
	for _, e := range es {
		n += len(e.recs)
	}
	return n
}

// plainEntries makes one entry per record.
func plainEntries(recs []*record) []*entry {
	es := make([]*entry, len(recs))
	for i, r := range recs {
		es[i] = &entry{data: r.data, key: r.key, recs: []*record{r}}
	}
	return es
}

// hash128 is a Kinesis hash key: a 128-bit unsigned integer.
type hash128 struct{ hi, lo uint64 }

func (h hash128) less(o hash128) bool { return h.hi < o.hi || (h.hi == o.hi && h.lo < o.lo) }

// String is h in decimal, as ExplicitHashKey takes it.
func (h hash128) String() string {
	b := new(big.Int).SetUint64(h.hi)
	return b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(h.lo)).String()
}

// hashKey is the hash key Kinesis gives a partition key: its MD5 read as a
// big-endian 128-bit integer.
func hashKey(pk string) hash128 {
	s := md5.Sum([]byte(pk))
	return hash128{binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])}
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// parseHash reads a decimal hash key as ListShards gives it.
func parseHash(s string) (hash128, error) {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || b.Sign() < 0 || b.Cmp(maxHash) > 0 {
		return hash128{}, fmt.Errorf("hash key %q is not a decimal between 0 and 2^128-1", s)
	}
	var buf [16]byte
	b.FillBytes(buf[:])
	return hash128{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}, nil
}

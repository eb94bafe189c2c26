package iceberg

import (
	"hash/maphash"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// dictSeed seeds the hash of dictionaryOf's table. Only this process
// uses the hashes, so any seed does.
var dictSeed = maphash.MakeSeed()

// dictType is the type of the dictionary columns handed to the Parquet
// writer.
var dictType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

// dictionaryOf returns col as a dictionary<int32, utf8> array whose
// dictionary holds its distinct values in the order first seen (the order
// arrow-go's own dictionary encoder gives them, so the Parquet pages are
// the same), or nil when col is not worth it: no non-NULL value, more
// distinct values than a quarter of its rows (plus a few), or distinct
// values of more than limit bytes (the writer would fall back to plain
// encoding for the column part way through anyway).
//
// It costs one hash per value, with no allocation per value; the Parquet
// writer then writes the indices without looking at the values again.
// The caller releases the result.
func dictionaryOf(col *array.String, limit int) arrow.Array {
	n := col.Len()
	if n == 0 || col.NullN() == n {
		return nil
	}
	maxDistinct := n/4 + 16
	idx := memory.NewResizableBuffer(memory.DefaultAllocator)
	idx.Resize(n * arrow.Int32SizeBytes)
	indices := arrow.Int32Traits.CastFromBytes(idx.Bytes())

	var (
		table   = make([]int32, 64) // slot: 0 empty, else value index + 1
		mask    = uint64(len(table) - 1)
		offsets = []int32{0}
		data    []byte
		prev    string // the last value looked up and its index: runs and constant columns skip the hash
		prevK   int32  = -1
	)
	for i := range n {
		if col.IsNull(i) {
			indices[i] = 0
			continue
		}
		v := col.Value(i)
		if prevK >= 0 && len(v) == len(prev) && v == prev {
			indices[i] = prevK
			continue
		}
		slot := maphash.String(dictSeed, v) & mask
		for {
			e := table[slot]
			if e == 0 {
				k := int32(len(offsets) - 1)
				if int(k) >= maxDistinct || len(data)+len(v) > limit {
					idx.Release()
					return nil
				}
				data = append(data, v...)
				offsets = append(offsets, int32(len(data)))
				table[slot] = k + 1
				indices[i] = k
				if 2*int(k+1) > len(table) {
					table, mask = regrow(table, offsets, data)
				}
				break
			}
			if k := e - 1; string(data[offsets[k]:offsets[k+1]]) == v {
				indices[i] = k
				break
			}
			slot = (slot + 1) & mask
		}
		prev, prevK = v, indices[i]
	}

	distinct := len(offsets) - 1
	valueData := array.NewData(arrow.BinaryTypes.String, distinct, []*memory.Buffer{
		nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)), memory.NewBufferBytes(data),
	}, nil, 0, 0)
	values := array.MakeFromData(valueData)
	valueData.Release()
	return newDictionary(idx, col, values, dictType)
}

// regrow doubles a dictionary hash table and re-inserts its values.
func regrow(table []int32, offsets []int32, data []byte) ([]int32, uint64) {
	table = make([]int32, 2*len(table))
	mask := uint64(len(table) - 1)
	for k := range len(offsets) - 1 {
		slot := maphash.String(dictSeed, string(data[offsets[k]:offsets[k+1]])) & mask
		for table[slot] != 0 {
			slot = (slot + 1) & mask
		}
		table[slot] = int32(k + 1)
	}
	return table, mask
}

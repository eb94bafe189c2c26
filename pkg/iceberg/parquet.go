package iceberg

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"
)

// parquetLayout is what every file of a filePlan shares: the Parquet
// schema, the footer's key-value metadata (the stored Arrow schema) and
// the Arrow writer settings, as pqarrow.NewFileWriter derives them.
type parquetLayout struct {
	schema   *pqschema.Schema
	kv       metadata.KeyValueMetadata
	arrProps pqarrow.ArrowWriterProperties
}

func newParquetLayout(sc *arrow.Schema, wp *parquet.WriterProperties) (parquetLayout, error) {
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(memory.DefaultAllocator))
	ps, err := pqarrow.ToParquet(sc, wp, arrProps)
	if err != nil {
		return parquetLayout{}, err
	}
	kv := make(metadata.KeyValueMetadata, 0, sc.Metadata().Len()+1)
	md := sc.Metadata()
	for i := range md.Len() {
		if err := kv.Append(md.Keys()[i], md.Values()[i]); err != nil {
			return parquetLayout{}, err
		}
	}
	// The schema the readers see: plain types (the dictionary arrays are
	// how the writer is fed, not what the file holds).
	if err := kv.Append("ARROW:schema", base64.StdEncoding.EncodeToString(flight.SerializeSchema(sc, memory.DefaultAllocator))); err != nil {
		return parquetLayout{}, err
	}
	return parquetLayout{schema: ps, kv: kv, arrProps: arrProps}, nil
}

// writeParquet writes one Parquet file of rows rows to out, in row groups
// of at most the writer's row-group limit, each column in turn (a serial
// row group: a column's pages are finished before the next column
// starts), and returns its footer.
func (p *filePlan) writeParquet(out io.Writer, cols []arrow.Array, rows int64) (*metadata.FileMetaData, error) {
	w, err := file.NewParquetWriterWithError(out, p.layout.schema.Root(), file.WithWriterProps(p.wp), file.WithWriteMetadata(p.layout.kv))
	if err != nil {
		return nil, err
	}
	ctx := pqarrow.NewArrowWriteContext(context.Background(), &p.layout.arrProps)
	var def []int16 // definition levels of a nullable column, reused
	maxRows := p.wp.MaxRowGroupLength()
	for off := int64(0); off == 0 || off < rows; off += maxRows {
		n := min(maxRows, rows-off)
		rg, err := w.AppendRowGroupChecked()
		if err != nil {
			return nil, err
		}
		for i, c := range cols {
			cw, err := rg.NextColumn()
			if err != nil {
				return nil, err
			}
			col := c
			if off > 0 || n != int64(c.Len()) {
				col = array.NewSlice(c, off, off+n)
			}
			var levels []int16
			if p.fileSchema.Field(i).Nullable {
				def = definitionLevels(def, col)
				levels = def
			}
			err = writeColumn(ctx, cw, col, levels, p.fileSchema.Field(i).Nullable)
			if col != c {
				col.Release()
			}
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", p.fileSchema.Field(i).Name, err)
			}
		}
		if err := rg.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return w.FileMetadata()
}

// definitionLevels returns, in buf's memory when it is large enough, the
// definition levels of a flat nullable column: 1 for a value, 0 for NULL.
func definitionLevels(buf []int16, col arrow.Array) []int16 {
	n := col.Len()
	if cap(buf) < n {
		buf = make([]int16, n)
	}
	buf = buf[:n]
	if col.NullN() == 0 {
		for i := range buf {
			buf[i] = 1
		}
		return buf
	}
	for i := range buf {
		if col.IsValid(i) {
			buf[i] = 1
		} else {
			buf[i] = 0
		}
	}
	return buf
}

// dictColumnEncoder is the part of arrow-go's dictionary encoder (its
// type is internal to arrow-go) that writeColumn uses.
type dictColumnEncoder interface {
	Encoding() parquet.Encoding
	PutDictionary(arrow.Array) error
	NumEntries() int
}

// writeColumn writes one column chunk. A dictionary array (from
// dictionaryOf or decimalDictionaryOf) goes in as its dictionary and
// indices: the encoder takes the dictionary as is and writes the indices,
// without hashing any value. This is pqarrow's own path for dictionary
// arrays, less its search for the dictionary values the indices use (a
// hash of every index): these dictionaries hold only values that occur.
// Anything else, or a column writer that is not dictionary-encoding,
// takes pqarrow's path (WriteArrowToColumn).
func writeColumn(ctx context.Context, cw file.ColumnChunkWriter, col arrow.Array, def []int16, nullable bool) error {
	d, ok := col.(*array.Dictionary)
	if !ok {
		return pqarrow.WriteArrowToColumn(ctx, cw, col, def, nil, nullable)
	}
	enc, ok := cw.CurrentEncoder().(dictColumnEncoder)
	if !ok || (enc.Encoding() != parquet.Encodings.PlainDict && enc.Encoding() != parquet.Encodings.RLEDict) ||
		enc.NumEntries() != 0 {
		return writeDense(ctx, cw, d, def, nullable)
	}
	values := d.Dictionary()
	if err := enc.PutDictionary(values); err != nil {
		return err
	}
	if enc.NumEntries() != values.Len() {
		// A repeated value in the dictionary: the encoder's numbering
		// and the indices disagree.
		cw.FallbackToPlain()
		return writeDense(ctx, cw, d, def, nullable)
	}
	if st := cw.PageStatistics(); st != nil {
		st.IncNulls(int64(d.NullN()))
		st.IncNumValues(int64(d.Len() - d.NullN()))
		if err := st.UpdateFromArrow(values, false); err != nil {
			return err
		}
	}
	return cw.WriteDictIndices(d.Indices(), def, nil)
}

// writeDense writes a dictionary column as its values, row by row
// (pqarrow expands it; a decimal dictionary's values are already the
// column's fixed_len_byte_array values).
func writeDense(ctx context.Context, cw file.ColumnChunkWriter, d *array.Dictionary, def []int16, nullable bool) error {
	return pqarrow.WriteArrowToColumn(ctx, cw, d, def, nil, nullable)
}

// decimalDictionaryOf returns a decimal column as a dictionary array whose
// values are the Parquet representation of its distinct values
// (fixed_len_byte_array of width bytes, big-endian two's complement, as
// pqarrow writes decimal(p ≤ 38) columns), in the order first seen; or nil
// when col is not worth it (see dictionaryOf). Amounts repeat: list
// prices, their refunds.
func decimalDictionaryOf(col *array.Decimal128, width, limit int) arrow.Array {
	n := col.Len()
	if n == 0 || col.NullN() == n || width < 1 || width > 16 {
		return nil
	}
	maxDistinct := n/4 + 16
	idx := memory.NewResizableBuffer(memory.DefaultAllocator)
	idx.Resize(n * arrow.Int32SizeBytes)
	indices := arrow.Int32Traits.CastFromBytes(idx.Bytes())
	type key struct{ lo, hi uint64 }
	var (
		table = make([]int32, 64)
		mask  = uint64(len(table) - 1)
		keys  []key
		prev  key
		prevK int32 = -1
	)
	hash := func(k key) uint64 { return (k.lo ^ k.hi*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9 >> 7 }
	for i := range n {
		if col.IsNull(i) {
			indices[i] = 0
			continue
		}
		v := col.Value(i)
		k := key{v.LowBits(), uint64(v.HighBits())}
		if prevK >= 0 && k == prev {
			indices[i] = prevK
			continue
		}
		slot := hash(k) & mask
		for {
			e := table[slot]
			if e == 0 {
				j := int32(len(keys))
				if int(j) >= maxDistinct || (len(keys)+1)*width > limit {
					idx.Release()
					return nil
				}
				keys = append(keys, k)
				table[slot] = j + 1
				indices[i] = j
				if 2*len(keys) > len(table) {
					table = make([]int32, 2*len(table))
					mask = uint64(len(table) - 1)
					for j, k := range keys {
						s := hash(k) & mask
						for table[s] != 0 {
							s = (s + 1) & mask
						}
						table[s] = int32(j + 1)
					}
				}
				break
			}
			if keys[e-1] == k {
				indices[i] = e - 1
				break
			}
			slot = (slot + 1) & mask
		}
		prev, prevK = k, indices[i]
	}
	data := make([]byte, len(keys)*width)
	var be [16]byte
	for j, k := range keys {
		binary.BigEndian.PutUint64(be[:8], k.hi)
		binary.BigEndian.PutUint64(be[8:], k.lo)
		copy(data[j*width:], be[16-width:])
	}
	fsb := &arrow.FixedSizeBinaryType{ByteWidth: width}
	valueData := array.NewData(fsb, len(keys), []*memory.Buffer{nil, memory.NewBufferBytes(data)}, nil, 0, 0)
	values := array.MakeFromData(valueData)
	valueData.Release()
	return newDictionary(idx, col, values, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: fsb})
}

// newDictionary assembles a dictionary array from the index buffer idx
// (taken over), the validity of col, and values (taken over).
func newDictionary(idx *memory.Buffer, col arrow.Array, values arrow.Array, dt *arrow.DictionaryType) arrow.Array {
	n := col.Len()
	var validity *memory.Buffer
	if col.NullN() > 0 {
		validity = memory.NewResizableBuffer(memory.DefaultAllocator)
		validity.Resize(int(bitutil.BytesForBits(int64(n))))
		bitutil.CopyBitmap(col.NullBitmapBytes(), col.Data().Offset(), n, validity.Bytes(), 0)
	}
	indexData := array.NewData(arrow.PrimitiveTypes.Int32, n, []*memory.Buffer{validity, idx}, nil, col.NullN(), 0)
	idx.Release()
	if validity != nil {
		validity.Release()
	}
	indexArr := array.MakeFromData(indexData)
	indexData.Release()
	out := array.NewDictionaryArray(dt, indexArr, values)
	indexArr.Release()
	values.Release()
	return out
}

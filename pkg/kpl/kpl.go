package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// magic opens every aggregated record.
var magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// Sizes of the parts around the protobuf message.
const (
	magicLen = len(magic)
	md5Len   = md5.Size
	// Overhead is the bytes an aggregate adds around its protobuf message:
	// the magic number and the MD5.
	Overhead = magicLen + md5Len
)

// Field numbers of the protobuf messages.
const (
	fieldPartitionKeyTable    protowire.Number = 1 // AggregatedRecord
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldPartitionKeyIndex    protowire.Number = 1 // Record
	fieldExplicitHashKeyIndex protowire.Number = 2
	fieldData                 protowire.Number = 3
	fieldTags                 protowire.Number = 4

	fieldTagKey   protowire.Number = 1 // Tag
	fieldTagValue protowire.Number = 2
)

// Errors of Deaggregate; the returned error wraps one of them with what
// and where.
var (
	// ErrNotAggregated: the data does not start with the KPL magic number.
	ErrNotAggregated = errors.New("not a KPL aggregate (no magic number F3 89 9A C2)")
	// ErrTruncated: the magic number is there but the data is too short
	// to hold the 16-byte MD5 after it.
	ErrTruncated = errors.New("KPL aggregate too short for its MD5")
	// ErrChecksum: the MD5 at the end does not match the protobuf bytes.
	ErrChecksum = errors.New("KPL aggregate MD5 mismatch")
	// ErrMalformed: the protobuf message cannot be parsed, or lacks a
	// required field.
	ErrMalformed = errors.New("malformed KPL aggregate protobuf")
	// ErrKeyIndex: a user record names a partition or explicit hash key
	// beyond its table.
	ErrKeyIndex = errors.New("KPL user record key index out of the key table")
	// ErrEmpty: a well-formed aggregate that holds no user records.
	ErrEmpty = errors.New("KPL aggregate holds no user records")
)

// UserRecord is one user record of an aggregate.
type UserRecord struct {
	PartitionKey    string
	ExplicitHashKey string // "" when the record has none
	// Data is the user record's payload. From Deaggregate it aliases the
	// aggregate's bytes; copy it to keep it beyond them.
	Data []byte
	// SubSequence is the record's index in the aggregate: with the
	// Kinesis record's sequence number it makes the user record's
	// position (the KCL's sub-sequence number).
	SubSequence uint64
}

// IsAggregated reports whether data starts with the KPL magic number. It
// does not check the rest: Deaggregate does.
func IsAggregated(data []byte) bool {
	return len(data) >= magicLen && [4]byte(data[:magicLen]) == magic
}

// Deaggregate returns the user records of the aggregate data, in order,
// with SubSequence 0, 1, 2, …. See AppendDeaggregate.
func Deaggregate(data []byte) ([]UserRecord, error) {
	return AppendDeaggregate(nil, data)
}

// AppendDeaggregate appends the user records of the aggregate data to dst
// and returns the extended slice. On error it returns dst unchanged and an
// error wrapping one of the package's sentinels (ErrNotAggregated,
// ErrTruncated, ErrChecksum, ErrMalformed, ErrKeyIndex, ErrEmpty). Tags
// are checked for well-formedness and otherwise ignored; unknown fields
// are skipped, as protobuf readers do.
//
// The records' Data alias data; their keys are strings shared by the
// records that use the same table entry.
func AppendDeaggregate(dst []UserRecord, data []byte) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return dst, ErrNotAggregated
	}
	if len(data) < Overhead {
		return dst, fmt.Errorf("%w: %d bytes, need at least %d", ErrTruncated, len(data), Overhead)
	}
	msg := data[magicLen : len(data)-md5Len]
	if sum := md5.Sum(msg); !bytes.Equal(sum[:], data[len(data)-md5Len:]) {
		return dst, fmt.Errorf("%w: trailer %x, MD5 of the %d protobuf bytes is %x", ErrChecksum, data[len(data)-md5Len:], len(msg), sum)
	}

	// Pass 1: the key tables (they may follow the records on the wire).
	var pks, ehks []string
	nrec := 0
	err := fields(msg, "AggregatedRecord", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case fieldPartitionKeyTable:
			if typ != protowire.BytesType {
				return wrongType("AggregatedRecord.partition_key_table", typ)
			}
			pks = append(pks, string(v))
		case fieldExplicitHashKeyTable:
			if typ != protowire.BytesType {
				return wrongType("AggregatedRecord.explicit_hash_key_table", typ)
			}
			ehks = append(ehks, string(v))
		case fieldRecords:
			if typ != protowire.BytesType {
				return wrongType("AggregatedRecord.records", typ)
			}
			nrec++
		}
		return nil
	})
	if err != nil {
		return dst, err
	}
	if nrec == 0 {
		return dst, ErrEmpty
	}

	// Pass 2: the records.
	out := dst
	if cap(out)-len(out) < nrec {
		out = append(make([]UserRecord, 0, len(dst)+nrec), dst...)
	}
	var sub uint64
	err = fields(msg, "AggregatedRecord", func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		if num != fieldRecords {
			return nil
		}
		r, err := record(v, sub, pks, ehks)
		if err != nil {
			return err
		}
		out = append(out, r)
		sub++
		return nil
	})
	if err != nil {
		return dst, err
	}
	return out, nil
}

// record decodes the Record message v, the sub-th of its aggregate.
func record(v []byte, sub uint64, pks, ehks []string) (UserRecord, error) {
	var (
		pk, ehk       uint64
		hasPK, hasEHK bool
		data          []byte
		hasData       bool
		errAt         = func(err error) error { return fmt.Errorf("record %d: %w", sub, err) }
	)
	err := fields(v, "Record", func(num protowire.Number, typ protowire.Type, b []byte, x uint64) error {
		switch num {
		case fieldPartitionKeyIndex:
			pk, hasPK = x, true
			return wantType("Record.partition_key_index", typ, protowire.VarintType)
		case fieldExplicitHashKeyIndex:
			ehk, hasEHK = x, true
			return wantType("Record.explicit_hash_key_index", typ, protowire.VarintType)
		case fieldData:
			data, hasData = b, true
			return wantType("Record.data", typ, protowire.BytesType)
		case fieldTags:
			if err := wantType("Record.tags", typ, protowire.BytesType); err != nil {
				return err
			}
			return tag(b)
		}
		return nil
	})
	switch {
	case err != nil:
		return UserRecord{}, errAt(err)
	case !hasPK:
		return UserRecord{}, errAt(fmt.Errorf("%w: required Record.partition_key_index missing", ErrMalformed))
	case !hasData:
		return UserRecord{}, errAt(fmt.Errorf("%w: required Record.data missing", ErrMalformed))
	case pk >= uint64(len(pks)):
		return UserRecord{}, errAt(fmt.Errorf("%w: partition_key_index %d, the partition key table has %d entries", ErrKeyIndex, pk, len(pks)))
	case hasEHK && ehk >= uint64(len(ehks)):
		return UserRecord{}, errAt(fmt.Errorf("%w: explicit_hash_key_index %d, the explicit hash key table has %d entries", ErrKeyIndex, ehk, len(ehks)))
	}
	r := UserRecord{PartitionKey: pks[pk], Data: data, SubSequence: sub}
	if hasEHK {
		r.ExplicitHashKey = ehks[ehk]
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return r, nil
}

// tag checks a Tag message: its required key is there.
func tag(v []byte) error {
	hasKey := false
	err := fields(v, "Tag", func(num protowire.Number, typ protowire.Type, _ []byte, _ uint64) error {
		switch num {
		case fieldTagKey:
			hasKey = true
			if typ != protowire.BytesType {
				return wrongType("Tag.key", typ)
			}
		case fieldTagValue:
			if typ != protowire.BytesType {
				return wrongType("Tag.value", typ)
			}
		}
		return nil
	})
	if err == nil && !hasKey {
		err = fmt.Errorf("%w: required Tag.key missing", ErrMalformed)
	}
	return err
}

// fields calls fn for each field of the message b, in wire order: for a
// length-delimited field with its bytes, for a varint with its value.
// Groups and fixed-width fields are skipped over (fn sees their number and
// type). A parse error names the message and the byte offset.
func fields(b []byte, msg string, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return fmt.Errorf("%w: %s: field tag at byte %d: %w", ErrMalformed, msg, off, protowire.ParseError(n))
		}
		off += n
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b[off:])
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b[off:])
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[off:])
		}
		if n < 0 {
			return fmt.Errorf("%w: %s field %d at byte %d: %w", ErrMalformed, msg, num, off, protowire.ParseError(n))
		}
		off += n
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// wantType checks that field has wire type want.
func wantType(field string, typ, want protowire.Type) error {
	if typ != want {
		return wrongType(field, typ)
	}
	return nil
}

func wrongType(field string, typ protowire.Type) error {
	return fmt.Errorf("%w: %s has wire type %d", ErrMalformed, field, typ)
}

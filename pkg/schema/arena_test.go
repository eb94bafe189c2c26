package schema

import (
	"testing"
	"time"
)

// TestDecodeWithArenaMatchesDecode decodes generated records, valid and
// invalid, with one arena and without, keeping every event, and compares
// them only after the last: a block written twice or shared by two events
// would change an earlier event's ids. Some ids have the longest length
// allowed, so events end at many places in a block.
func TestDecodeWithArenaMatchesDecode(t *testing.T) {
	now := time.Now()
	g := NewGenerator(3, now)
	var records [][]byte
	for i := range 5000 {
		if i%9 == 4 {
			raw, _ := g.NextInvalid(now)
			records = append(records, raw)
			continue
		}
		ev := g.Next(now)
		if i%50 == 7 {
			ev.EventID = "evt_" + string(bytesOf('x', MaxIDBytes-4))
		}
		records = append(records, ev.AppendJSON(nil))
	}
	var arena IDArena
	got := make([]Event, len(records))
	gotErr := make([]error, len(records))
	for i, raw := range records {
		got[i], gotErr[i] = DecodeWith(raw, now, &arena)
	}
	valid := 0
	for i, raw := range records {
		want, wantErr := Decode(raw, now)
		if got[i] != want || (gotErr[i] == nil) != (wantErr == nil) || (wantErr != nil && gotErr[i].Error() != wantErr.Error()) {
			t.Fatalf("record %d: DecodeWith = %+v, %v; Decode = %+v, %v", i, got[i], gotErr[i], want, wantErr)
		}
		if wantErr == nil {
			valid++
		}
	}
	if valid < 4000 {
		t.Fatalf("only %d valid records of %d", valid, len(records))
	}
}

func bytesOf(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

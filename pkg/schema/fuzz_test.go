package schema

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: Decode never panics, returns either a valid event or an
// *InvalidError, and a valid event survives an encode/decode round trip.
// Seeds: testdata/*.ndjson and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	addTestdataSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Decode(raw, now)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 {
				t.Fatalf("error is not an InvalidError with problems: %v", err)
			}
			return
		}
		if e.EventID == "" {
			t.Fatal("valid event with empty event_id")
		}
		back, err := Decode(e.AppendJSON(nil), now)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, e.AppendJSON(nil))
		}
		if back != e {
			t.Fatalf("round trip differs:\n%+v\n%+v", e, back)
		}
	})
}

// FuzzDecodeMatchesReference: Decode gives decodeReference's results on any
// bytes (see checkMatchesReference). Seeds: testdata/*.ndjson, the edge
// cases of referenceCases under 4 KiB, generated valid records and invalid
// ones of every kind, and testdata/fuzz/FuzzDecodeMatchesReference, where
// the corpus of the fuzzing runs in BENCHMARKS.md is kept.
//
//	go test -run '^$' -fuzz FuzzDecodeMatchesReference -fuzztime 10m -parallel 1 ./pkg/schema
func FuzzDecodeMatchesReference(f *testing.F) {
	addTestdataSeeds(f)
	for _, raw := range referenceCases() {
		if len(raw) < 4096 { // the megabyte and deeply nested ones slow every mutation
			f.Add([]byte(raw))
		}
	}
	g := NewGenerator(5, now)
	for range 20 {
		e := g.Next(now)
		f.Add(e.AppendJSON(nil))
	}
	kinds := map[string]bool{}
	for i := 0; len(kinds) < len(InvalidKinds) && i < 10_000; i++ {
		raw, kind := g.NextInvalid(now)
		if !kinds[kind] {
			kinds[kind] = true
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkMatchesReference(t, raw) })
}

// addTestdataSeeds adds each line of testdata/valid.ndjson and
// testdata/invalid.ndjson.
func addTestdataSeeds(f *testing.F) {
	for _, name := range []string{"valid.ndjson", "invalid.ndjson"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f.Add(append([]byte(nil), sc.Bytes()...))
		}
	}
}

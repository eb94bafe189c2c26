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

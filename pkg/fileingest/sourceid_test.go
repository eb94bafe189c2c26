package fileingest_test

import (
	"bytes"
	"testing"

	"github.com/paystream/paystream/pkg/fileingest"
)

// TestSourceIDIsBLAKE3 pins the ids of known content: a table names
// committed content by its id, so a change of hash library must not change
// one. The empty input and "abc" are BLAKE3's published test values; the
// 3 MiB input (several of the SIMD code's chunk groups, a partial last
// one) was hashed with the library earlier versions used.
func TestSourceIDIsBLAKE3(t *testing.T) {
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte((i*31 + 7) % 251)
	}
	newlines := int64(bytes.Count(big, []byte{'\n'}))
	for _, c := range []struct {
		name  string
		in    []byte
		id    string
		lines int64
	}{
		{"empty", nil, "file-b3-af1349b9f5f9a1a6a0404dea36dcc949", 0},
		{"abc", []byte("abc"), "file-b3-6437b3ac38465133ffb63b75273a8db5", 1},
		{"3 MiB", big, "file-b3-367efd7c031e538acd3f8ec304b6b33e", newlines + 1}, // the last byte is not a newline
	} {
		id, size, lines, err := fileingest.SourceID(bytes.NewReader(c.in))
		if err != nil {
			t.Fatal(err)
		}
		if id != c.id || size != int64(len(c.in)) || lines != c.lines {
			t.Errorf("%s: SourceID = %s, %d bytes, %d lines; want %s, %d, %d", c.name, id, size, lines, c.id, len(c.in), c.lines)
		}
	}
	if big[len(big)-1] == '\n' {
		t.Fatal("the 3 MiB input ends with a newline; fix the test's line count")
	}
}

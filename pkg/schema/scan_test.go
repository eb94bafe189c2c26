package schema

import "testing"

// TestQuotedKeyMatch: a field's quotedKey matches its name followed by the
// closing quote and anything, and nothing else: not a longer key that
// starts with the name, not the name with a byte changed (upper case
// included: case-insensitive keys are found by the lookup after it).
func TestQuotedKeyMatch(t *testing.T) {
	pad := func(s string) []byte {
		b := []byte(s)
		for len(b) < 24 {
			b = append(b, ' ')
		}
		return b
	}
	for f, name := range fieldNames {
		k := &quotedKeys[f]
		if !k.match(pad(name + `": 1, "x": "yyyyyyyyyyyyyyyyyyyy"`)) {
			t.Errorf("%s: no match on its own key", name)
		}
		if k.match(pad(name + `x"`)) {
			t.Errorf("%s: matches the longer key %sx", name, name)
		}
		for i := range len(name) {
			b := pad(name + `"`)
			b[i] ^= 0x20 // case, or another character
			if k.match(b) {
				t.Errorf("%s: matches %q", name, b)
			}
		}
		for g, other := range fieldNames {
			if g != f && k.match(pad(other+`"`)) {
				t.Errorf("%s: matches the key of %s", name, other)
			}
		}
	}
}

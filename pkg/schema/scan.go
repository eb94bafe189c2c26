package schema

import (
	"encoding/binary"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanner below reads one JSON object and keeps the raw values of the
// event's fields, as encoding/json does when it unmarshals into a struct of
// json.RawMessage fields, without reflection and without copying:
//
//   - It accepts exactly the texts encoding/json accepts (RFC 8259, at most
//     maxNestingDepth nested objects and arrays). On anything else it
//     reports false and Decode hands the record to decodeReference, whose
//     error message is encoding/json's own.
//   - Keys match field names as encoding/json matches them: after
//     unescaping, exactly or else case-insensitively under Unicode simple
//     folding (so "EVENT_ID" and "ſtatus" with a long s match too).
//   - A field given twice keeps its last value, null included.
//   - Unknown fields are checked for syntax and skipped.
//
// Bytes at or above utf8.RuneSelf are only noted (scanObject's ascii):
// the caller checks the record with utf8.Valid unless there were none.

// maxNestingDepth is encoding/json's limit on nested objects and arrays,
// counting the top-level object.
const maxNestingDepth = 10000

// Field indexes into rawFields.
const (
	fEventID = iota
	fEventType
	fCustomerID
	fAmountUSD
	fCurrency
	fSubscriptionTier
	fStatus
	fCountryCode
	fPaymentProcessor
	fEventTS
	nFields
)

// fieldNames is indexed by the f* constants.
var fieldNames = [nFields]string{
	fEventID:          ColEventID,
	fEventType:        ColEventType,
	fCustomerID:       ColCustomerID,
	fAmountUSD:        ColAmountUSD,
	fCurrency:         ColCurrency,
	fSubscriptionTier: ColSubscriptionTier,
	fStatus:           ColStatus,
	fCountryCode:      ColCountryCode,
	fPaymentProcessor: ColPaymentProcessor,
	fEventTS:          ColEventTS,
}

// foldedFieldNames holds each field name as appendFoldedName folds it.
var foldedFieldNames = func() (out [nFields]string) {
	for i, n := range fieldNames {
		out[i] = string(appendFoldedName(nil, []byte(n)))
	}
	return out
}()

// quotedKey is a field name and its closing quote (at most 24 bytes) as
// three little-endian words and the masks of the bytes they hold: a key
// is compared by three loads instead of a call to compare strings.
type quotedKey struct{ w, m [3]uint64 }

// match reports whether b (24 bytes) starts with the key.
func (k *quotedKey) match(b []byte) bool {
	_ = b[23]
	return (binary.LittleEndian.Uint64(b)^k.w[0])&k.m[0] == 0 &&
		(binary.LittleEndian.Uint64(b[8:])^k.w[1])&k.m[1] == 0 &&
		(binary.LittleEndian.Uint64(b[16:])^k.w[2])&k.m[2] == 0
}

// quotedKeys holds each field name's quotedKey, by f* constant.
var quotedKeys = func() (out [nFields]quotedKey) {
	for f, name := range fieldNames {
		key := name + `"`
		if len(key) > 24 {
			panic("schema: field name " + name + " longer than 23 bytes")
		}
		for i := range len(key) {
			out[f].w[i/8] |= uint64(key[i]) << (8 * (i % 8))
			out[f].m[i/8] |= 0xff << (8 * (i % 8))
		}
	}
	return out
}()

// rawFields holds the raw JSON value of each known field, sliced from the
// record; nil when the field is absent.
type rawFields [nFields][]byte

// plain[c] is true for the bytes that may stand unescaped in a JSON string
// and end nothing: not '"', not '\\', not a control character below 0x20.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(d []byte, i int) int {
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	return i
}

// scanObject reads d, which starts with '{', as one JSON object followed by
// nothing but whitespace, and fills f. It reports false if d is not valid
// JSON; f is then incomplete. escaped tells whether a string value kept
// in f holds an escape (when not, no value needs unquoting). ascii, when
// ok, tells that every byte of d is below 0x80, so that d needs no UTF-8
// check: the object's strings had none (skipString) and held no nested
// object or array (not looked into), and a byte outside a string can only
// be ASCII in valid JSON.
func scanObject(d []byte, f *rawFields) (escaped, ascii, ok bool) {
	i := skipSpace(d, 1)
	if i < len(d) && d[i] == '}' {
		return false, true, skipSpace(d, i+1) == len(d)
	}
	ascii = true
	guess := 0 // the field expected next: producers send them in order
	for {
		if i >= len(d) || d[i] != '"' {
			return false, false, false
		}
		var (
			field int
			end   int
			esc   bool
			high  bool
			ok    bool
		)
		// A key that is exactly the field name guessed (no escape, the
		// quote right after it) is that field; anything else is read
		// and looked up.
		if j := i + 1; j+24 <= len(d) && quotedKeys[guess].match(d[j:j+24]) {
			field, end = guess, j+len(fieldNames[guess])+1
		} else if k := i + 1 + len(fieldNames[guess]); k < len(d) && d[k] == '"' && string(d[i+1:k]) == fieldNames[guess] {
			field, end = guess, k+1
		} else {
			if end, esc, high, ok = skipString(d, i); !ok {
				return false, false, false
			}
			ascii = ascii && !high
			field = fieldIndex(d[i+1:end-1], esc)
		}
		if field >= 0 {
			if guess = field + 1; guess == nFields { // not %: a division
				guess = 0
			}
		}
		i = skipSpace(d, end)
		if i >= len(d) || d[i] != ':' {
			return false, false, false
		}
		i = skipSpace(d, i+1)
		start := i
		if i < len(d) && d[i] == '"' {
			if i, esc, high, ok = skipString(d, i); !ok {
				return false, false, false
			}
			escaped = escaped || (esc && field >= 0)
			ascii = ascii && !high
		} else {
			ascii = ascii && i < len(d) && d[i] != '{' && d[i] != '['
			if i, ok = skipValue(d, i, 1); !ok {
				return false, false, false
			}
		}
		if field >= 0 {
			f[field] = d[start:i]
		}
		i = skipSpace(d, i)
		if i >= len(d) {
			return false, false, false
		}
		switch d[i] {
		case ',':
			i = skipSpace(d, i+1)
		case '}':
			return escaped, ascii, skipSpace(d, i+1) == len(d)
		default:
			return false, false, false
		}
	}
}

// skipString returns the index after the string that starts at d[i] ('"'),
// whether it holds an escape and whether it holds a byte at or above 0x80.
func skipString(d []byte, i int) (end int, esc, high, ok bool) {
	i++
	for {
		// skipPlain's loop, here: skipPlain is too large to inline, and a
		// call per string was a tenth of its time.
		for ; ; i += 8 {
			if i+8 > len(d) {
				i = skipPlain(d, i)
				break
			}
			if m := notPlain(binary.LittleEndian.Uint64(d[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
		}
		if i >= len(d) {
			return 0, false, false, false
		}
		switch c := d[i]; {
		case c >= utf8.RuneSelf: // UTF-8 (checked by the caller)
			high = true
			i++
		case c == '"':
			return i + 1, esc, high, true
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				return 0, false, false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return 0, false, false, false
				}
				i += 6
			default:
				return 0, false, false, false
			}
		default: // a control character
			return 0, false, false, false
		}
	}
}

// Word masks of skipPlain's tests: a byte of ones, a byte of high bits.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// notPlain returns the high bit of every byte of the eight in w that is
// not plain ASCII (a quote, a backslash, a control character or a byte at
// or above 0x80) — and possibly of bytes after one: for each of the first
// three kinds a word test sets the high bit of every byte of that kind
// (and, through borrows, maybe of bytes after it), and a byte of the
// fourth has it set. So its lowest bit set marks the first byte in w
// that is not plain ASCII.
func notPlain(w uint64) uint64 {
	q, b := w^(ones*'"'), w^(ones*'\\')
	return ((q-ones)&^q | (b-ones)&^b | (w-ones*0x20)&^w | w) & highs
}

// skipPlain returns the index of the first byte at or after d[i] that is
// not plain ASCII, or len(d), eight bytes at a time (notPlain).
func skipPlain(d []byte, i int) int {
	for i+8 <= len(d) {
		if m := notPlain(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(d) && d[i] < utf8.RuneSelf && plain[d[i]] {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipValue returns the index after the JSON value that starts at d[i].
// depth is the number of objects and arrays the value is inside.
func skipValue(d []byte, i, depth int) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	switch c := d[i]; {
	case c == '"':
		end, _, _, ok := skipString(d, i)
		return end, ok
	case c == '{' || c == '[':
		return skipNested(d, i, depth)
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(d, i)
	case c == 't':
		return skipLiteral(d, i, "true")
	case c == 'f':
		return skipLiteral(d, i, "false")
	case c == 'n':
		return skipLiteral(d, i, "null")
	}
	return 0, false
}

func skipLiteral(d []byte, i int, lit string) (int, bool) {
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// skipNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. What
// follows is the caller's to check.
func skipNumber(d []byte, i int) (int, bool) {
	if d[i] == '-' {
		i++
	}
	switch {
	case i >= len(d):
		return 0, false
	case d[i] == '0':
		i++
	case '1' <= d[i] && d[i] <= '9':
		i = skipDigits(d, i+1)
	default:
		return 0, false
	}
	if i < len(d) && d[i] == '.' {
		j := skipDigits(d, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := skipDigits(d, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// skipNested returns the index after the object or array that starts at
// d[i], checking its syntax without recursion. depth counts the containers
// around it.
func skipNested(d []byte, i, depth int) (int, bool) {
	var small [64]byte
	closers := small[:0] // '}' or ']' of each open container, innermost last
	for {
		// d[i] starts a value.
		var ok bool
		switch d[i] {
		case '{':
			depth++
			if depth > maxNestingDepth {
				return 0, false
			}
			closers = append(closers, '}')
			i = skipSpace(d, i+1)
			if i < len(d) && d[i] == '}' {
				i++
				closers = closers[:len(closers)-1]
				depth--
				break
			}
			if i, ok = skipKey(d, i); !ok {
				return 0, false
			}
			continue
		case '[':
			depth++
			if depth > maxNestingDepth {
				return 0, false
			}
			closers = append(closers, ']')
			i = skipSpace(d, i+1)
			if i < len(d) && d[i] == ']' {
				i++
				closers = closers[:len(closers)-1]
				depth--
				break
			}
			if i >= len(d) {
				return 0, false
			}
			continue
		default:
			if i, ok = skipValue(d, i, depth); !ok {
				return 0, false
			}
		}
		// A value ended at i: close containers, or find the next value.
		for {
			if len(closers) == 0 {
				return i, true
			}
			i = skipSpace(d, i)
			if i >= len(d) {
				return 0, false
			}
			closer := closers[len(closers)-1]
			if d[i] == closer {
				i++
				closers = closers[:len(closers)-1]
				depth--
				continue
			}
			if d[i] != ',' {
				return 0, false
			}
			i = skipSpace(d, i+1)
			if closer == '}' {
				if i, ok = skipKey(d, i); !ok {
					return 0, false
				}
			}
			if i >= len(d) {
				return 0, false
			}
			break
		}
	}
}

// skipKey reads `"key" :` and the space after it, returning the index of
// the value.
func skipKey(d []byte, i int) (int, bool) {
	if i >= len(d) || d[i] != '"' {
		return 0, false
	}
	end, _, _, ok := skipString(d, i)
	if !ok {
		return 0, false
	}
	i = skipSpace(d, end)
	if i >= len(d) || d[i] != ':' {
		return 0, false
	}
	i = skipSpace(d, i+1)
	if i >= len(d) {
		return 0, false
	}
	return i, true
}

// fieldIndex returns the field a key names, or -1. key is the text between
// the quotes; esc tells whether it holds an escape.
func fieldIndex(key []byte, esc bool) int {
	if !esc {
		switch string(key) {
		case ColEventID:
			return fEventID
		case ColEventType:
			return fEventType
		case ColCustomerID:
			return fCustomerID
		case ColAmountUSD:
			return fAmountUSD
		case ColCurrency:
			return fCurrency
		case ColSubscriptionTier:
			return fSubscriptionTier
		case ColStatus:
			return fStatus
		case ColCountryCode:
			return fCountryCode
		case ColPaymentProcessor:
			return fPaymentProcessor
		case ColEventTS:
			return fEventTS
		}
		if isASCII(key) && !fieldLength(len(key)) {
			return -1 // folding keeps the length of ASCII text
		}
	}
	return foldedFieldIndex(key, esc)
}

// fieldLength reports whether a field name is n bytes long.
func fieldLength(n int) bool {
	switch n {
	case len(ColStatus), len(ColEventID), len(ColEventType), len(ColCustomerID), len(ColCountryCode), len(ColSubscriptionTier):
		return true
	}
	return false
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldedFieldIndex is fieldIndex for keys that are not exactly a field
// name: encoding/json's case-insensitive match.
func foldedFieldIndex(key []byte, esc bool) int {
	var buf [64]byte
	if esc {
		key = appendUnquoted(buf[:0], key)
	}
	var fbuf [64]byte
	folded := appendFoldedName(fbuf[:0], key)
	for i, n := range foldedFieldNames {
		if string(folded) == n {
			return i
		}
	}
	return -1
}

// appendFoldedName is encoding/json's: it folds in ASCII upper-case letters
// and maps every other rune to the smallest rune of its fold set, so that
// two names fold equal exactly when bytes.EqualFold says they are equal.
func appendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

// foldRune returns the smallest rune of r's fold set.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// appendUnquoted appends the text of the JSON string whose content (between
// the quotes, already checked by skipString) is s, as encoding/json
// unquotes it: an unpaired surrogate escape becomes U+FFFD.
func appendUnquoted(out, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			out = append(out, s[i:j]...)
			i = j
			continue
		}
		switch s[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(s[i+2:])); dec != unicode.ReplacementChar {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, s[i+1])
		}
		i += 2
	}
	return out
}

// hex4 decodes the four hex digits skipString checked.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

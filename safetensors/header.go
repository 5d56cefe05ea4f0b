package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// The header grammar is the one the format's own reader (huggingface/safetensors,
// safetensors/src/tensor.rs: SafeTensors::read_metadata, TensorInfo, Metadata)
// enforces, and stricter where it leaves room for ambiguity:
//
//   - the header is UTF-8 JSON and starts with '{' (no leading whitespace);
//   - keys match exactly: encoding/json's case-insensitive field matching would
//     take "dtYpe" for "dtype", serde does not;
//   - a tensor entry holds exactly "dtype", "shape" and "data_offsets", each once,
//     none null; shape and data_offsets hold non-negative integers only (no
//     fractions or exponents), data_offsets exactly two;
//   - "__metadata__" is null or an object of string values;
//   - no key appears twice, at any level; tensor names are non-empty;
//   - lone UTF-16 surrogates in \u escapes are refused (serde_json refuses them;
//     encoding/json would silently turn them into U+FFFD);
//   - after the object only JSON whitespace (the writer pads with spaces).

// MaxRank bounds a tensor's number of dimensions (NumPy's and PyTorch's limit
// is 64; the format sets none, and a 100 MB header could otherwise claim tens
// of millions of dimensions).
const MaxRank = 64

const metadataKey = "__metadata__"

// headerEntry is one tensor's entry as the writer encodes it.
type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

type namedEntry struct {
	name  string
	entry headerEntry
}

// headerParser walks the header token by token.
type headerParser struct {
	dec *json.Decoder
}

// decodeHeader parses and checks the JSON header (see the grammar above).
func decodeHeader(hdr []byte) ([]namedEntry, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, errors.New("does not start with '{'")
	}
	if err := checkEscapes(hdr); err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	p := headerParser{dec: dec}
	entries, meta, err := p.object()
	if err != nil {
		return nil, nil, err
	}
	rest, _ := io.ReadAll(dec.Buffered())
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		return nil, nil, errors.New("trailing bytes after the JSON object (only spaces may pad it)")
	}
	return entries, meta, nil
}

// object reads the top-level object: tensor entries and the optional metadata.
func (p headerParser) object() ([]namedEntry, map[string]string, error) {
	if err := p.delim('{'); err != nil {
		return nil, nil, err
	}
	var entries []namedEntry
	var meta map[string]string
	seen := map[string]bool{}
	for p.dec.More() {
		name, err := p.key(seen, "tensor name")
		if err != nil {
			return nil, nil, err
		}
		if name == metadataKey {
			if meta, err = p.metadata(); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", metadataKey, err)
			}
			continue
		}
		if name == "" {
			return nil, nil, errors.New("empty tensor name")
		}
		e, err := p.entry()
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		entries = append(entries, namedEntry{name, e})
	}
	if err := p.delim('}'); err != nil {
		return nil, nil, err
	}
	return entries, meta, nil
}

// key reads an object key and refuses one already in seen.
func (p headerParser) key(seen map[string]bool, what string) (string, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("unexpected %v where a %s belongs", tok, what)
	}
	if seen[k] {
		return "", fmt.Errorf("duplicate %s %q", what, k)
	}
	seen[k] = true
	return k, nil
}

// delim reads one delimiter token and requires it to be want.
func (p headerParser) delim(want json.Delim) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %v, want %q", describe(tok), string(want))
	}
	return nil
}

// metadata reads "__metadata__": null or an object of strings.
func (p headerParser) metadata() (map[string]string, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("found %v, want an object of strings", describe(tok))
	}
	meta := map[string]string{}
	seen := map[string]bool{}
	for p.dec.More() {
		k, err := p.key(seen, "metadata key")
		if err != nil {
			return nil, err
		}
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("key %q: found %v, want a string", k, describe(tok))
		}
		meta[k] = v
	}
	return meta, p.delim('}')
}

// entry reads one tensor's {"dtype", "shape", "data_offsets"} object.
func (p headerParser) entry() (headerEntry, error) {
	var e headerEntry
	if err := p.delim('{'); err != nil {
		return e, err
	}
	seen := map[string]bool{}
	for p.dec.More() {
		k, err := p.key(seen, "field")
		if err != nil {
			return e, err
		}
		switch k {
		case "dtype":
			err = p.dtype(&e)
		case "shape":
			e.Shape, err = p.ints(MaxRank)
			if e.Shape == nil && err == nil {
				e.Shape = []int{}
			}
		case "data_offsets":
			err = p.offsets(&e)
		default:
			return e, fmt.Errorf("unknown field %q (the fields are dtype, shape and data_offsets, in that case)", k)
		}
		if err != nil {
			return e, fmt.Errorf("%s: %w", k, err)
		}
	}
	for _, f := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[f] {
			return e, fmt.Errorf("missing field %q", f)
		}
	}
	return e, p.delim('}')
}

func (p headerParser) dtype(e *headerEntry) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	s, ok := tok.(string)
	if !ok {
		return fmt.Errorf("found %v, want a string", describe(tok))
	}
	e.DType = DType(s)
	return nil
}

func (p headerParser) offsets(e *headerEntry) error {
	v, err := p.ints(3)
	if err != nil {
		return err
	}
	if len(v) != 2 {
		return fmt.Errorf("has %d entries, want 2", len(v))
	}
	e.DataOffsets = []int64{int64(v[0]), int64(v[1])}
	return nil
}

// ints reads an array of at most limit non-negative integers.
func (p headerParser) ints(limit int) ([]int, error) {
	if err := p.delim('['); err != nil {
		return nil, err
	}
	var out []int
	for p.dec.More() {
		if len(out) == limit {
			return nil, fmt.Errorf("more than %d entries", limit)
		}
		tok, err := p.dec.Token()
		if err != nil {
			return nil, err
		}
		n, err := nonNegative(tok)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, p.delim(']')
}

// nonNegative accepts a JSON number written as a plain non-negative integer.
func nonNegative(tok any) (int, error) {
	num, ok := tok.(json.Number)
	if !ok {
		return 0, fmt.Errorf("found %v, want a non-negative integer", describe(tok))
	}
	s := string(num)
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s is not a non-negative integer", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is out of range", s)
	}
	return int(n), nil
}

// describe names a JSON token for an error message.
func describe(tok any) string {
	switch t := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return strconv.Quote(string(t))
	case string:
		return "string " + strconv.Quote(t)
	case json.Number:
		return "number " + string(t)
	}
	return fmt.Sprint(tok)
}

// checkEscapes refuses \u escapes that are lone UTF-16 surrogates. In valid JSON
// a backslash only ever opens an escape inside a string, so a left-to-right scan
// of the whole header sees every escape (syntax errors are the decoder's).
func checkEscapes(hdr []byte) error {
	for i := 0; i < len(hdr); i++ {
		if hdr[i] != '\\' || i+1 >= len(hdr) {
			continue
		}
		if hdr[i+1] != 'u' {
			i++ // a two-byte escape such as \\ or \"
			continue
		}
		r, ok := hex4(hdr, i+2)
		if !ok {
			continue // malformed: the decoder reports it
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			lo, ok := hex4(hdr, i+8)
			if i+7 >= len(hdr) || hdr[i+6] != '\\' || hdr[i+7] != 'u' || !ok || lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("lone surrogate \\u%04X in a string at byte %d", r, i)
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("lone surrogate \\u%04X in a string at byte %d", r, i)
		default:
			i += 5
		}
	}
	return nil
}

// hex4 decodes the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
	return rune(v), err == nil
}

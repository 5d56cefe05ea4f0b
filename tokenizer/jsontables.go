package tokenizer

import (
	"bytes"
	"encoding/json/jsontext"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
)

// The model's tables are most of a tokenizer.json (Gemma 3's: 262,144 vocabulary
// entries and 514,906 merges in 33 MB). encoding/json reads them through
// reflection and, for merges as pairs, a slice per pair; the readers here walk
// the tokens once. They take only the well-formed case: on anything else they
// report !ok, and the caller reads the table with encoding/json, whose result
// or error then decides, so both paths accept and refuse the same files.

// tableDecoder reads raw in place, mangling invalid UTF-8 as encoding/json does.
func tableDecoder(raw []byte) *jsontext.Decoder {
	return jsontext.NewDecoder(bytes.NewBuffer(raw),
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
}

// fastVocab reads a {"token": id, ...} object of integer ids; a repeated token
// keeps its last id, as with encoding/json.
func fastVocab(raw []byte) (map[string]int, bool) {
	dec := tableDecoder(raw)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	vocab := map[string]int{} // no size hint: one from len(raw) would leave the kept map oversized
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, false
		}
		if tok.Kind() == '}' {
			break
		}
		key := tok.String()
		val, err := dec.ReadValue()
		if err != nil || val.Kind() != '0' {
			return nil, false
		}
		id, err := strconv.Atoi(string(val))
		if err != nil {
			return nil, false // a fraction, an exponent, or out of range
		}
		vocab[key] = id
	}
	return vocab, endOfTable(dec)
}

// fastMerges reads a merge list that is all "a b" strings or all ["a", "b"]
// pairs, each well formed.
func fastMerges(raw []byte) ([][2]string, bool) {
	dec := tableDecoder(raw)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, false
	}
	read := readMergeString
	if dec.PeekKind() == '[' {
		read = readMergePair
	}
	// Filled in chunks and copied once: growing one slice of a million
	// string pairs by doubling cost more than reading them.
	var chunks [][][2]string
	chunk, n := make([][2]string, 0, mergeChunk), 0
	for dec.PeekKind() != ']' {
		m, ok := read(dec)
		if !ok {
			return nil, false
		}
		if len(chunk) == cap(chunk) {
			chunks, chunk = append(chunks, chunk), make([][2]string, 0, mergeChunk)
		}
		chunk, n = append(chunk, m), n+1
	}
	if _, err := dec.ReadToken(); err != nil { // the closing bracket
		return nil, false
	}
	out := make([][2]string, 0, n)
	for _, c := range append(chunks, chunk) {
		out = append(out, c...)
	}
	return out, endOfTable(dec)
}

// mergeChunk is how many merges fastMerges holds in one chunk.
const mergeChunk = 1 << 14

// readMergeString reads an "a b" merge.
func readMergeString(dec *jsontext.Decoder) ([2]string, bool) {
	tok, err := dec.ReadToken()
	if err != nil || tok.Kind() != '"' {
		return [2]string{}, false
	}
	a, b, ok := strings.Cut(tok.String(), " ")
	return [2]string{a, b}, ok && !strings.Contains(b, " ")
}

// readMergePair reads an ["a", "b"] merge.
func readMergePair(dec *jsontext.Decoder) ([2]string, bool) {
	var m [2]string
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return m, false
	}
	for i := range m {
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return m, false
		}
		m[i] = tok.String()
	}
	tok, err := dec.ReadToken()
	return m, err == nil && tok.Kind() == ']'
}

// fastUnigramVocab reads a Unigram vocabulary, [["piece", score], ...], each
// entry exactly a string and a number.
func fastUnigramVocab(raw []byte) (tokens []string, scores []float64, ok bool) {
	dec := tableDecoder(raw)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, nil, false
	}
	for dec.PeekKind() != ']' {
		if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
			return nil, nil, false
		}
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return nil, nil, false
		}
		piece := tok.String()
		val, err := dec.ReadValue()
		if err != nil || val.Kind() != '0' {
			return nil, nil, false
		}
		score, err := strconv.ParseFloat(string(val), 64)
		if err != nil {
			return nil, nil, false // out of float64's range
		}
		if tok, err := dec.ReadToken(); err != nil || tok.Kind() != ']' {
			return nil, nil, false
		}
		tokens, scores = append(tokens, piece), append(scores, score)
	}
	if _, err := dec.ReadToken(); err != nil { // the closing bracket
		return nil, nil, false
	}
	// Exact copies: the tokenizer keeps both, not append's spare capacity.
	return slices.Clone(tokens), slices.Clone(scores), endOfTable(dec)
}

// endOfTable reports whether nothing but white space follows the table.
func endOfTable(dec *jsontext.Decoder) bool {
	_, err := dec.ReadToken()
	return errors.Is(err, io.EOF)
}

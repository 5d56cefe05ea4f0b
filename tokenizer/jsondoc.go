package tokenizer

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// maxJSONDepth bounds the nesting of a tokenizer.json: real files nest about 6
// deep (a Sequence of processors with templates stays under 12).
const maxJSONDepth = 64

// knownKeys are the object keys this package reads. encoding/json matches
// field names in any letter case, while the reference's serde structs read
// exact keys only and ignore the rest; so a key that folds to one of these
// without being it is refused, or "Merges" beside "merges" would be read here
// and ignored by the reference.
var knownKeys = map[string]bool{}

var foldedKnownKeys = map[string]string{}

func init() {
	for _, k := range strings.Fields(`added_tokens normalizer pre_tokenizer post_processor decoder model
		type vocab merges unk_token continuing_subword_prefix end_of_word_suffix max_input_chars_per_word
		dropout byte_fallback id content special single_word lstrip rstrip normalized clean_text
		handle_chinese_chars strip_accents lowercase add_prefix_space use_regex prefix cleanup single
		SpecialToken Sequence special_tokens ids sep cls precompiled_charsmap unk_id length pad_token word_delimiter_token`) {
		knownKeys[k] = true
		foldedKnownKeys[foldKey(k)] = k
	}
}

// foldKey folds a key the way encoding/json compares field names: each rune
// lower-cased then upper-cased (so the Kelvin sign folds to K, long s to S).
func foldKey(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToLower(r)) }, s)
}

// bulkKeys hold the large tables (token -> id, merge list), skipped whole: their
// keys are tokens, and a repeated token keeps its last id both in a Go map and
// in the reference's HashMap, so the two readers agree without a check.
var bulkKeys = map[string]bool{"vocab": true, "merges": true}

// keyFrame is one open object or array while walking the document.
type keyFrame struct {
	parent    *keyFrame
	name      string // key in the parent object, or "" in an array
	index     int    // index in the parent array
	isObject  bool
	mapLike   bool // a vocabulary or special-token map: keys are data, not fields
	expectKey bool
	key       string // the key whose value comes next
	valStart  int64  // input offset just after key, where its value starts (after ':')
	next      int    // next element index (arrays)
	seen      map[string]struct{}
	fields    map[string]json.RawMessage // when not nil, each value's bytes by key
}

func (f *keyFrame) path() string {
	if f == nil || f.parent == nil || f.parent.parent == nil {
		return "" // the root, or the document's top-level value
	}
	p := f.parent.path()
	if f.parent.isObject {
		if f.parent.mapLike {
			return p + "[" + strconv.Quote(f.name) + "]"
		}
		if p == "" {
			return f.name
		}
		return p + "." + f.name
	}
	return p + "[" + strconv.Itoa(f.index) + "]"
}

// document is what one pass over a tokenizer.json finds: the bytes of each
// top-level field and, when the model is an object, of each of the model's
// fields. The bytes are slices of the file, not copies.
type document struct {
	top   map[string]json.RawMessage // nil when the file is JSON null
	model map[string]json.RawMessage // nil unless "model" is an object
}

// scanDocument reads a tokenizer.json once: it checks its syntax, refuses
// duplicate keys in any object, keys that differ from a field this package
// reads only in letter case, and nesting deeper than maxJSONDepth; and it
// finds the fields' bytes (document), so no later step scans the large model
// again to find them.
func scanDocument(data []byte) (*document, error) {
	// The decoder reads a bytes.Buffer in place: offsets index data.
	dec := jsontext.NewDecoder(bytes.NewBuffer(data),
		jsontext.AllowDuplicateNames(true), // checked here, with the path
		jsontext.AllowInvalidUTF8(true))    // as encoding/json reads it
	doc := &document{}
	var err error
	switch k := dec.PeekKind(); k {
	case '{':
		err = walkObject(dec, data, doc)
	case 0: // empty, or not JSON: the decoder says which
		if _, err = dec.ReadToken(); errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	default:
		if _, err = dec.ReadValue(); err == nil && k != 'n' {
			if err = endOfDocument(dec); err == nil {
				err = fmt.Errorf("top level: a JSON object expected, found %s", kindName(k))
			}
		}
	}
	if err == nil {
		err = endOfDocument(dec)
	}
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// walkObject reads the top-level object, checking its keys at every depth
// and keeping the fields' bytes in doc.
func walkObject(dec *jsontext.Decoder, data []byte, doc *document) error {
	root := &keyFrame{}
	top, depth := root, 0
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if top.isObject && top.expectKey {
			if tok.Kind() == '}' {
				if top, depth = top.parent, depth-1; top == root {
					return nil
				}
				top.valueDone(dec, data)
				continue
			}
			if err := top.takeKey(tok.String(), dec.InputOffset()); err != nil {
				return err
			}
			if bulkKeys[top.key] && !top.mapLike {
				// Read whole (in place, no copy): the tables are checked by the model's readers.
				if _, err := dec.ReadValue(); err != nil {
					return err
				}
				top.valueDone(dec, data)
			}
			continue
		}
		switch tok.Kind() {
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return fmt.Errorf("%s: nested deeper than %d levels", top.path(), maxJSONDepth)
			}
			top = top.child(tok.Kind() == '{')
			switch {
			case top.parent == root:
				top.fields = map[string]json.RawMessage{}
				doc.top = top.fields
			case top.isObject && top.parent.parent == root && top.name == "model":
				top.fields = map[string]json.RawMessage{}
				doc.model = top.fields
			}
		case ']':
			top, depth = top.parent, depth-1
			top.valueDone(dec, data)
		default:
			top.valueDone(dec, data)
		}
	}
}

// endOfDocument refuses anything but white space after the top-level value.
func endOfDocument(dec *jsontext.Decoder) error {
	end := dec.InputOffset()
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("more data after the top-level value, which ends at offset %d", end)
		}
		return err
	}
	return nil
}

// kindName names a JSON value's kind for an error message.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case '[':
		return "an array"
	}
	return "a value"
}

func (f *keyFrame) takeKey(key string, offset int64) error {
	where := f.path()
	if where == "" {
		where = "top level"
	}
	if _, dup := f.seen[key]; dup {
		return fmt.Errorf("%s: key %q appears twice", where, key)
	}
	f.seen[key] = struct{}{}
	if !f.mapLike && !knownKeys[key] {
		if want, ok := foldedKnownKeys[foldKey(key)]; ok {
			return fmt.Errorf("%s: key %q: the field is %q (keys are case-sensitive)", where, key, want)
		}
	}
	f.key, f.expectKey, f.valStart = key, false, offset
	return nil
}

func (f *keyFrame) child(object bool) *keyFrame {
	c := &keyFrame{parent: f, isObject: object, expectKey: object}
	if f.isObject {
		c.name = f.key
	} else {
		c.index = f.next
	}
	if object {
		c.seen = map[string]struct{}{}
		c.mapLike = f.isObject && !f.mapLike && (f.key == "vocab" || f.key == "special_tokens")
	}
	return c
}

// valueDone records that a value of f (an object or an array) ended at the
// decoder's offset; an object that keeps its fields' bytes keeps this one's.
func (f *keyFrame) valueDone(dec *jsontext.Decoder, data []byte) {
	if !f.isObject {
		f.next++
		return
	}
	f.expectKey = true
	if f.fields != nil {
		// Between the key and the value: white space and the colon.
		v := bytes.TrimLeft(data[f.valStart:dec.InputOffset()], " \t\r\n")
		f.fields[f.key] = bytes.TrimLeft(v[1:], " \t\r\n")
	}
}

package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	next      int    // next element index (arrays)
	seen      map[string]struct{}
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

// checkKeys refuses duplicate keys in any object, keys that differ from a
// field this package reads only in letter case, and nesting deeper than
// maxJSONDepth. Syntax errors are left to json.Unmarshal.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root := &keyFrame{}
	top, depth := root, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error json.Unmarshal reports
		}
		if top.isObject && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				top, depth = top.parent, depth-1
				top.valueDone()
				continue
			}
			if err := top.takeKey(tok.(string)); err != nil {
				return err
			}
			if bulkKeys[top.key] && !top.mapLike {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil // a syntax error json.Unmarshal reports
				}
				top.valueDone()
			}
			continue
		}
		d, ok := tok.(json.Delim)
		switch {
		case ok && (d == '{' || d == '['):
			if depth++; depth > maxJSONDepth {
				return fmt.Errorf("%s: nested deeper than %d levels", top.path(), maxJSONDepth)
			}
			top = top.child(d == '{')
		case ok: // ']'
			top, depth = top.parent, depth-1
			top.valueDone()
		default:
			top.valueDone()
		}
	}
}

func (f *keyFrame) takeKey(key string) error {
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
	f.key, f.expectKey = key, false
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

// valueDone records that a value of f (the root, an object or an array) ended.
func (f *keyFrame) valueDone() {
	if f.isObject {
		f.expectKey = true
	} else {
		f.next++
	}
}

package tokenizer

import (
	"encoding/json"
	"sort"
)

// Component is one top-level part of a tokenizer.json: its field and type.
type Component struct {
	Field string `json:"field"`
	Type  string `json:"type"`
}

// SpecialToken is an added token marked special.
type SpecialToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
}

// Description is what `mdlm tokenizer inspect` prints.
type Description struct {
	Name       string         `json:"name"`
	Components []Component    `json:"components"`
	VocabSize  int            `json:"vocab_size"`
	Special    []SpecialToken `json:"special_tokens"`
}

// componentsOf lists the types of the file's components, in file order of the
// format (model, normalizer, pre_tokenizer, post_processor, decoder); absent
// ones are left out.
func componentsOf(f *hfFile) []Component {
	var out []Component
	for _, c := range []struct {
		field string
		raw   json.RawMessage
	}{{"model", f.ModelHead}, {"normalizer", f.Normalizer}, {"pre_tokenizer", f.PreTokenizer},
		{"post_processor", f.PostProcessor}, {"decoder", f.Decoder}} {
		typ, err := typeOf(c.raw)
		if err != nil || typ == "" {
			continue
		}
		out = append(out, Component{Field: c.field, Type: typ})
	}
	return out
}

// Describe reports the components, vocabulary size and special tokens (by id).
func (t *HF) Describe() Description {
	d := Description{Name: t.name, VocabSize: t.vocab}
	if len(t.components) == 0 || t.components[0].Field != "model" {
		// Older files leave the model's type out; it is read from its fields.
		typ := "BPE"
		if t.wp != nil {
			typ = "WordPiece"
		}
		d.Components = append(d.Components, Component{Field: "model", Type: typ})
	}
	d.Components = append(d.Components, t.components...)
	for id, content := range t.addedByID {
		if t.special[id] {
			d.Special = append(d.Special, SpecialToken{ID: id, Content: content})
		}
	}
	sort.Slice(d.Special, func(i, j int) bool { return d.Special[i].ID < d.Special[j].ID })
	return d
}

package sample

import (
	"fmt"

	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// prompts returns the prompts the rows keep: the rows of --prompts (and the
// file's sha256), or the one prompt of --prefix, --suffix and --template.
func (o *Options) prompts() ([]Prompt, string, error) {
	if o.Prompts == "" {
		p := Prompt{Prefix: o.Prefix, Suffix: o.Suffix, Template: o.Template}
		if err := p.check(); err != nil {
			return nil, "", fmt.Errorf("--template with --prefix or --suffix: %w", err)
		}
		return []Prompt{p}, "", nil
	}
	if o.Prefix != "" || o.Suffix != "" || o.Template != "" {
		return nil, "", fmt.Errorf("--prompts gives every row's prompt: drop --prefix, --suffix and --template")
	}
	return ReadPromptsFile(o.Prompts)
}

// canvases turns each prompt into the row the sampler starts from: the
// prompt's tokens where they go, [MASK] where it samples. A row is L tokens,
// or the whole semi-autoregressive output (L + strides·stride): a prefix
// starts it, a suffix ends it, a template starts it. The ar sampler needs
// position 0 given (its BOS).
func (o *Options) canvases(prompts []Prompt, vocab *tokenizer.Vocab, m diffusion.Model, L int) ([][]int32, error) {
	width := L
	if o.StrideLength > 0 {
		width = L + o.NumStrides*o.StrideLength
	}
	out := make([][]int32, len(prompts))
	for i, p := range prompts {
		name := "--template, --prefix, --suffix"
		if o.Prompts != "" {
			name = fmt.Sprintf("--prompts row %d", i+1)
		}
		row, err := canvas(p, vocab, m, width)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if sampler.Kind(o.Sampler) == sampler.AR && row[0] == int32(m.Backbone.MaskIndex) {
			return nil, fmt.Errorf("%s: the ar sampler starts from a BOS token: pass it as --template (50256 for GPT-2) or begin the prefix with it (<|endoftext|>)", name)
		}
		out[i] = row
	}
	return out, nil
}

// canvas is one prompt's row of width tokens.
func canvas(p Prompt, vocab *tokenizer.Vocab, m diffusion.Model, width int) ([]int32, error) {
	mask := m.Backbone.MaskIndex
	row := make([]int32, width)
	for i := range row {
		row[i] = int32(mask)
	}
	tmpl, err := ParseTemplate(p.Template, mask, m.Backbone.Vocab)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if len(tmpl) > width {
		return nil, fmt.Errorf("the template has %d tokens, longer than the length %d", len(tmpl), width)
	}
	copy(row, tmpl)
	pre, err := encode(p.Prefix, vocab, m)
	if err != nil {
		return nil, fmt.Errorf("prefix: %w", err)
	}
	suf, err := encode(p.Suffix, vocab, m)
	if err != nil {
		return nil, fmt.Errorf("suffix: %w", err)
	}
	if len(pre)+len(suf) > width {
		return nil, fmt.Errorf("prefix and suffix are %d + %d tokens, more than the length %d", len(pre), len(suf), width)
	}
	copy(row, pre)
	copy(row[width-len(suf):], suf)
	return row, nil
}

// encode tokenizes prompt text with the checkpoint's tokenizer; every id must
// be a token of the model other than [MASK].
func encode(text string, vocab *tokenizer.Vocab, m diffusion.Model) ([]int32, error) {
	if text == "" {
		return nil, nil
	}
	if vocab == nil {
		return nil, fmt.Errorf("text needs the checkpoint's tokenizer and this checkpoint names none (give token ids with --template)")
	}
	ids := vocab.Encode(text)
	out := make([]int32, len(ids))
	for i, id := range ids {
		if id < 0 || id >= m.Backbone.Vocab || id == m.Backbone.MaskIndex {
			return nil, fmt.Errorf("token %d of %q is id %d: not a token the model samples around (vocabulary %d, [MASK] %d)", i, text, id, m.Backbone.Vocab, m.Backbone.MaskIndex)
		}
		out[i] = int32(id)
	}
	return out, nil
}

package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// decoder is one tokenizer.json decoder (tokenizers/src/decoders): it maps the
// token strings to new strings (decode_chain); Decode joins the result.
type decoder interface {
	decodeChain(tokens []string) []string
}

type decoderFunc func([]string) []string

func (f decoderFunc) decodeChain(t []string) []string { return f(t) }

type decSpec struct {
	Type          string            `json:"type"`
	Decoders      []json.RawMessage `json:"decoders"`
	Pattern       *patternSpec      `json:"pattern"`
	Content       *json.RawMessage  `json:"content"`
	Start         int               `json:"start"`
	Stop          int               `json:"stop"`
	Replacement   *string           `json:"replacement"`
	PrependScheme *string           `json:"prepend_scheme"`
	AddPrefixSpc  *bool             `json:"add_prefix_space"`
	Prefix        *string           `json:"prefix"`
	Cleanup       *bool             `json:"cleanup"`
	Suffix        *string           `json:"suffix"`
	PadToken      *string           `json:"pad_token"`
	WordDelimiter *string           `json:"word_delimiter_token"`
}

const supportedDecoders = "ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, CTC, Sequence"

// maxStripCount bounds Strip's start and stop (real files use 1).
const maxStripCount = 1 << 16

func parseDecoder(raw json.RawMessage, path string, depth int) ([]decoder, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if depth > maxComponentDepth {
		return nil, fmt.Errorf("%s: Sequences nested deeper than %d", path, maxComponentDepth)
	}
	var d decSpec
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch d.Type {
	case "Sequence":
		var seq []decoder
		for i, sub := range d.Decoders {
			s, err := parseDecoder(sub, fmt.Sprintf("%s.decoders[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			seq = append(seq, s...)
		}
		return seq, nil
	case "ByteLevel":
		return []decoder{decoderFunc(byteLevelDecode)}, nil
	case "ByteFallback":
		return []decoder{decoderFunc(byteFallbackDecode)}, nil
	case "Fuse":
		return []decoder{decoderFunc(func(t []string) []string { return []string{strings.Join(t, "")} })}, nil
	case "Strip":
		var content string
		if d.Content == nil || json.Unmarshal(*d.Content, &content) != nil {
			return nil, fmt.Errorf("%s.content: want one character", path)
		}
		c, ok := validRune(content)
		if !ok {
			return nil, fmt.Errorf("%s.content %q: not one character", path, content)
		}
		if d.Start < 0 || d.Stop < 0 || d.Start > maxStripCount || d.Stop > maxStripCount {
			return nil, fmt.Errorf("%s: start %d, stop %d outside [0, %d]", path, d.Start, d.Stop, maxStripCount)
		}
		st := stripDecoder{content: c, start: d.Start, stop: d.Stop}
		return []decoder{decoderFunc(st.decode)}, nil
	case "Replace":
		var content string
		if d.Content == nil || json.Unmarshal(*d.Content, &content) != nil {
			return nil, fmt.Errorf("%s.content: want a string", path)
		}
		m, err := parsePattern(d.Pattern, path+".pattern")
		if err != nil {
			return nil, err
		}
		return []decoder{decoderFunc(func(t []string) []string {
			for i, s := range t {
				t[i] = m.replaceAll(s, content)
			}
			return t
		})}, nil
	case "Metaspace":
		return parseMetaspaceDecoder(&d, path)
	case "WordPiece":
		prefix := "##"
		if d.Prefix != nil {
			prefix = *d.Prefix
		}
		cleanup := d.Cleanup == nil || *d.Cleanup
		return []decoder{decoderFunc(func(t []string) []string { return wordPieceDecode(t, prefix, cleanup) })}, nil
	case "CTC":
		c := ctcDecoder{pad: "<pad>", delimiter: "|", cleanup: d.Cleanup == nil || *d.Cleanup}
		if d.PadToken != nil {
			c.pad = *d.PadToken
		}
		if d.WordDelimiter != nil {
			c.delimiter = *d.WordDelimiter
		}
		return []decoder{decoderFunc(c.decode)}, nil
	case "BPEDecoder":
		suffix := "</w>"
		if d.Suffix != nil {
			suffix = *d.Suffix
		}
		return []decoder{decoderFunc(func(t []string) []string {
			for i, s := range t {
				rep := " "
				if i == len(t)-1 {
					rep = ""
				}
				t[i] = strings.ReplaceAll(s, suffix, rep)
			}
			return t
		})}, nil
	}
	return nil, unsupported(path+".type", d.Type, supportedDecoders)
}

// byteLevelDecode maps each token's characters back to bytes (a token with a
// character outside the byte alphabet keeps its own UTF-8 bytes). The
// reference then replaces invalid UTF-8 with U+FFFD; here the bytes are kept
// as they are, so that decode(encode(x)) is x for any Go string (the two agree
// whenever the bytes are valid UTF-8).
func byteLevelDecode(tokens []string) []string {
	var buf []byte
	for _, t := range tokens {
		buf = append(buf, tokenBytes(t)...)
	}
	return []string{string(buf)}
}

// byteFallbackDecode turns runs of <0xXX> tokens into the text of their bytes,
// or one U+FFFD per byte when the run is not valid UTF-8
// (tokenizers/src/decoders/byte_fallback.rs).
func byteFallbackDecode(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := byteFallbackByte(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// byteFallbackByte parses "<0xXX>" as the reference does: six bytes, and the
// two between "<0x" and ">" read by u8::from_str_radix (which takes a '+').
func byteFallbackByte(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	h := t[3:5]
	if h[0] == '+' {
		h = h[1:]
	}
	var v byte
	for i := 0; i < len(h); i++ {
		c := h[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v*16 + d
	}
	return v, true
}

type stripDecoder struct {
	content     rune
	start, stop int
}

// decode removes up to start leading and stop trailing content characters
// from each token (tokenizers/src/decoders/strip.rs).
func (s stripDecoder) decode(tokens []string) []string {
	for i, t := range tokens {
		rs := []rune(t)
		a := 0
		for a < s.start && a < len(rs) && rs[a] == s.content {
			a++
		}
		b := len(rs)
		for n := 0; n < s.stop && b > a && rs[b-1] == s.content; n++ {
			b--
		}
		tokens[i] = string(rs[a:b])
	}
	return tokens
}

func parseMetaspaceDecoder(d *decSpec, path string) ([]decoder, error) {
	if d.Replacement == nil {
		return nil, fmt.Errorf("%s.replacement: missing", path)
	}
	repl, ok := validRune(*d.Replacement)
	if !ok {
		return nil, fmt.Errorf("%s.replacement %q: not one character", path, *d.Replacement)
	}
	scheme := "always"
	if d.PrependScheme != nil {
		scheme = *d.PrependScheme
	}
	if d.AddPrefixSpc != nil && !*d.AddPrefixSpc {
		scheme = "never"
	}
	// The first token loses every replacement character unless the scheme is
	// never (tokenizers/src/pre_tokenizers/metaspace.rs, Decoder for Metaspace).
	return []decoder{decoderFunc(func(t []string) []string {
		for i, s := range t {
			drop := i == 0 && scheme != "never"
			t[i] = strings.Map(func(r rune) rune {
				if r != repl {
					return r
				}
				if drop {
					return -1
				}
				return ' '
			}, s)
		}
		return t
	})}, nil
}

// wordPieceDecode is the WordPiece decoder: tokens joined by spaces, prefix
// pieces glued to the previous one, then (cleanup) clean_up_tokenization.
func wordPieceDecode(tokens []string, prefix string, cleanup bool) []string {
	for i, t := range tokens {
		if i > 0 {
			if rest, ok := strings.CutPrefix(t, prefix); ok {
				t = rest
			} else {
				t = " " + t
			}
		}
		if cleanup {
			t = cleanupDecoded(t)
		}
		tokens[i] = t
	}
	return tokens
}

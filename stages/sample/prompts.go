package sample

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// Limits on a --prompts file (README: limits).
const (
	maxPromptsBytes    = 64 << 20 // the whole file
	maxPromptLineBytes = 1 << 20  // one JSON line
	maxPrompts         = 100_000  // rows
)

// Prompt is one row of a --prompts file: a prefix and/or a suffix (text,
// tokenized with the checkpoint's tokenizer), or a template (token ids and _,
// as --template). An empty row samples unconditionally.
type Prompt struct {
	Prefix   string `json:"prefix,omitempty"`
	Suffix   string `json:"suffix,omitempty"`
	Template string `json:"template,omitempty"`
}

func (p Prompt) check() error {
	if p.Template != "" && (p.Prefix != "" || p.Suffix != "") {
		return errors.New("a template together with a prefix or suffix: give one or the other")
	}
	return nil
}

// ReadPromptsFile reads a --prompts file (JSON lines), refusing one larger
// than its limits before reading it, and returns its rows and its sha256.
func ReadPromptsFile(path string) ([]Prompt, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("--prompts: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("--prompts %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("--prompts %s: not a regular file", path)
	}
	if fi.Size() > maxPromptsBytes {
		return nil, "", fmt.Errorf("--prompts %s: %d bytes, more than the limit of %d", path, fi.Size(), maxPromptsBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxPromptsBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("--prompts %s: %w", path, err)
	}
	if len(raw) > maxPromptsBytes {
		return nil, "", fmt.Errorf("--prompts %s: more than the limit of %d bytes", path, maxPromptsBytes)
	}
	ps, err := ReadPrompts(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("--prompts %s: %w", path, err)
	}
	sum := sha256.Sum256(raw)
	return ps, hex.EncodeToString(sum[:]), nil
}

// ReadPrompts reads JSON lines of Prompt: one object per line, blank lines
// skipped, unknown keys, trailing data, invalid UTF-8 and lines, rows or
// bytes beyond the limits refused with the line number.
func ReadPrompts(r io.Reader) ([]Prompt, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxPromptLineBytes)
	var out []Prompt
	total, line := 0, 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		total += len(raw) + 1
		if total > maxPromptsBytes+1 {
			return nil, fmt.Errorf("more than %d bytes", maxPromptsBytes)
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if len(out) == maxPrompts {
			return nil, fmt.Errorf("line %d: more than %d prompts", line, maxPrompts)
		}
		p, err := parsePrompt(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, maxPromptLineBytes)
		}
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no prompts")
	}
	return out, nil
}

func parsePrompt(raw []byte) (Prompt, error) {
	if !utf8.Valid(raw) {
		return Prompt{}, errors.New("not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(raw)
	if trimmed[0] != '{' {
		return Prompt{}, errors.New("want a JSON object with prefix, suffix or template")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var p Prompt
	if err := dec.Decode(&p); err != nil {
		return Prompt{}, fmt.Errorf("want an object with prefix, suffix or template: %w", err)
	}
	if len(bytes.TrimSpace(trimmed[dec.InputOffset():])) > 0 {
		return Prompt{}, errors.New("data after the object")
	}
	if err := p.check(); err != nil {
		return Prompt{}, err
	}
	return p, nil
}

package tokenizer

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"sync"
)

//go:embed data/gpt2-tokenizer.json
var gpt2JSON []byte

//go:embed data/bert-base-uncased-tokenizer.json
var bertJSON []byte

var builtins = map[string]func() (Tokenizer, error){
	"gpt2":              func() (Tokenizer, error) { return cachedHF("gpt2", gpt2JSON) },
	"bert-base-uncased": func() (Tokenizer, error) { return cachedHF("bert-base-uncased", bertJSON) },
	"text8":             func() (Tokenizer, error) { return Text8(), nil },
	"bytes":             func() (Tokenizer, error) { return Bytes(), nil },
}

var (
	parsedMu sync.Mutex
	parsed   = map[string]*HF{}
)

// cachedHF parses an embedded file once; callers get clones (own caches).
func cachedHF(name string, data []byte) (Tokenizer, error) {
	parsedMu.Lock()
	defer parsedMu.Unlock()
	if t, ok := parsed[name]; ok {
		return t.Clone(), nil
	}
	t, err := Parse(data, name)
	if err != nil {
		return nil, err
	}
	parsed[name] = t
	return t.Clone(), nil
}

// BuiltinNames lists the built-in tokenizers.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Load returns a built-in tokenizer by name, or loads a tokenizer.json path.
func Load(nameOrPath string) (Tokenizer, error) {
	if f, ok := builtins[nameOrPath]; ok {
		return f()
	}
	if strings.HasSuffix(nameOrPath, ".json") {
		return LoadFile(nameOrPath)
	}
	return nil, fmt.Errorf("unknown tokenizer %q: not built in (%s) and not a tokenizer.json path",
		nameOrPath, strings.Join(BuiltinNames(), ", "))
}

package checkpoint

// Conversion between PyTorch state dicts and checkpoint/v1 (`mdlm checkpoint`):
// import a PyTorch state dict (the reference's DIT or AR backbone, bare or under
// the "backbone." prefix of the released Lightning and Hugging Face checkpoints)
// into a checkpoint/v1 artifact, export one back to a safetensors file PyTorch
// loads, and inspect either.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/safetensors"
	"github.com/mdlm-go/mdlm/tokenizer"
	"github.com/mdlm-go/mdlm/torchckpt"
)

// ImportOptions configures Import. Sizes the shapes do not determine come from a
// config.json (Hugging Face MDLMConfig keys or the reference fixture's keys), then
// from the explicit overrides.
type ImportOptions struct {
	Src        string // .safetensors file, or a folder holding model.safetensors
	ConfigJSON string // optional; default: config.json beside Src if present
	Out        string // checkpoint directory to publish
	Heads      int    // override n_heads (0: from config.json or the rotary buffer)
	Length     int    // override the model length
	Method     Method
	Tokenizer  string // built-in tokenizer name or tokenizer.json path to record ("" none)
	Tool       string // tool version for the manifest
	// NoEMA takes a Lightning checkpoint's raw state_dict instead of its EMA
	// weights (the default, which the reference evaluates and samples with).
	NoEMA bool
	// Extra params for the manifest (where the files came from).
	Extra map[string]any
}

// params merges the import's own params with opts.Extra.
func (opts ImportOptions) params(own map[string]any) map[string]any {
	for k, v := range opts.Extra {
		own[k] = v
	}
	return own
}

// Import converts a PyTorch safetensors state dict into a checkpoint/v1
// artifact. A Hugging Face GPT-2 repository directory (config.json with
// model_type gpt2, model.safetensors) becomes a GPT-2 scorer checkpoint; a
// reference Lightning .ckpt imports with its EMA weights and Hydra config.
func Import(opts ImportOptions) (artifact.Manifest, error) {
	src := opts.Src
	if torchckpt.IsArchive(src) {
		return importLightning(opts)
	}
	folder := ""
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		if isGPT2Repo(src) {
			return importGPT2(opts)
		}
		folder = src
		src = filepath.Join(src, "model.safetensors")
	}
	f, err := safetensors.OpenMmap(src)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	cfg, err := backbone.InferConfig(f)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("import: %w", err)
	}
	method := opts.Method
	if method.Parameterization == "" {
		method = DefaultMethod(cfg.Arch)
	}
	cfgPath := opts.ConfigJSON
	if cfgPath == "" {
		if p := filepath.Join(filepath.Dir(src), "config.json"); fileExists(p) {
			cfgPath = p
		}
	}
	if cfgPath != "" {
		if err := applyConfigJSON(cfgPath, &cfg, &method); err != nil {
			return artifact.Manifest{}, fmt.Errorf("import: %w", err)
		}
	}
	if opts.Heads > 0 {
		cfg.Heads = opts.Heads
	}
	if opts.Length > 0 {
		cfg.Length = opts.Length
	}
	if cfg.Heads == 0 && cfg.Rotary() {
		return artifact.Manifest{}, fmt.Errorf("import %s: n_heads is not in the tensors (no rotary_emb.inv_freq) nor in a config.json; pass --heads", src)
	}
	w, err := backbone.LoadWeights(f, cfg)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("import: %w", err)
	}
	m := artifact.Manifest{Stage: "checkpoint import", Tool: opts.Tool,
		Params: opts.params(map[string]any{"src": filepath.Base(src), "config_json": filepath.Base(cfgPath)})}
	if opts.Tokenizer != "" {
		if err := checkTokenizer(opts.Tokenizer, cfg); err != nil {
			return artifact.Manifest{}, fmt.Errorf("import: %w", err)
		}
	} else {
		opts.Tokenizer = folderTokenizer(folder, cfg)
	}
	return Save(opts.Out, Config{Model: cfg, Method: method.WithBounds(), Tokenizer: opts.Tokenizer}, w, m)
}

// isGPT2Repo reports whether dir holds a hub GPT-2 config.json.
func isGPT2Repo(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return false
	}
	var c struct {
		ModelType string `json:"model_type"`
	}
	return json.Unmarshal(raw, &c) == nil && c.ModelType == "gpt2"
}

// importGPT2 publishes a hub GPT-2 repository as a scorer checkpoint: the AR
// objective over a GPT-2 backbone, with the tokenizer given (default gpt2 for
// GPT-2's 50257-token vocabulary).
func importGPT2(opts ImportOptions) (artifact.Manifest, error) {
	w, err := backbone.LoadGPT2(opts.Src)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("import %s: %w", opts.Src, err)
	}
	tok := opts.Tokenizer
	if tok == "" && w.Config.Vocab == 50257 {
		tok = "gpt2"
	}
	if tok == "" {
		tok = folderTokenizer(opts.Src, w.Config)
	} else {
		if err := checkTokenizer(tok, w.Config); err != nil {
			return artifact.Manifest{}, fmt.Errorf("import %s: %w", opts.Src, err)
		}
	}
	m := artifact.Manifest{Stage: "checkpoint import", Tool: opts.Tool, Params: opts.params(map[string]any{"src": filepath.Base(opts.Src), "arch": "gpt2"})}
	return Save(opts.Out, Config{Model: w.Config, Method: Method{Parameterization: "ar", Noise: "loglinear"}, Tokenizer: tok}, w, m)
}

// folderTokenizer is the tokenizer.json of a Hugging Face model folder, the
// tokenizer to record when none was named: "" when the folder ("" none) has
// none, or when it does not fit the weights (a warning says why; the weights
// still import, as without a tokenizer).
func folderTokenizer(folder string, cfg backbone.Config) string {
	if folder == "" {
		return ""
	}
	path := filepath.Join(folder, artifact.TokenizerFile)
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	if err := checkTokenizer(path, cfg); err != nil {
		slog.Warn("import: the folder's tokenizer.json is not recorded: it does not fit the weights; pass --tokenizer", "folder", folder, "err", err)
		return ""
	}
	return path
}

// checkTokenizer refuses a tokenizer whose model vocabulary does not fit the
// weights (for a GPT-2 scorer: the tokenizer's own vocabulary, no [MASK]).
func checkTokenizer(name string, cfg backbone.Config) error {
	tok, err := tokenizer.Load(name)
	if err != nil {
		return err
	}
	if cfg.Arch == backbone.GPT2 {
		if tok.VocabSize() != cfg.Vocab {
			return fmt.Errorf("tokenizer %s has %d tokens, the GPT-2 weights %d rows", name, tok.VocabSize(), cfg.Vocab)
		}
		return nil
	}
	v, err := tokenizer.ForModel(tok)
	if err != nil {
		return err
	}
	if v.V != cfg.Vocab {
		return fmt.Errorf("tokenizer %s has a model vocabulary of %d, the weights have %d rows", name, v.V, cfg.Vocab)
	}
	return nil
}

// applyConfigJSON overlays the keys it knows: Hugging Face MDLMConfig
// (hidden_dim, n_heads, n_blocks, cond_dim, vocab_size, model_length, dropout,
// time_conditioning) and the reference fixtures' (hidden_size, length, mask_index).
func applyConfigJSON(path string, cfg *backbone.Config, method *Method) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ints := []struct {
		keys []string
		dst  *int
	}{
		{[]string{"hidden_dim", "hidden_size"}, &cfg.Hidden},
		{[]string{"n_heads"}, &cfg.Heads},
		{[]string{"n_blocks"}, &cfg.Blocks},
		{[]string{"cond_dim"}, &cfg.Cond},
		{[]string{"vocab_size"}, &cfg.Vocab},
		{[]string{"model_length", "length"}, &cfg.Length},
		{[]string{"mask_index"}, &cfg.MaskIndex},
		{[]string{"d_state"}, &cfg.DState},
		{[]string{"d_conv"}, &cfg.DConv},
		{[]string{"expand"}, &cfg.Expand},
		{[]string{"dt_rank"}, &cfg.DtRank},
	}
	for _, e := range ints {
		for _, k := range e.keys {
			if v, ok := m[k]; ok {
				n, ok := v.(float64)
				if !ok || n != float64(int(n)) {
					return fmt.Errorf("%s: field %q = %v is not an integer", path, k, v)
				}
				*e.dst = int(n)
			}
		}
	}
	if v, ok := m["dropout"].(float64); ok {
		cfg.Dropout = v
	}
	if v, ok := m["time_conditioning"].(bool); ok {
		method.TimeConditioning = v
	}
	return nil
}

// ExportOptions configures Export.
type ExportOptions struct {
	Src    string // checkpoint directory
	Dst    string // .safetensors file to write
	Prefix string // e.g. "backbone." for the Lightning / Hugging Face layout
}

// exportMark is the __metadata__ entry that marks a file Export wrote, so a
// later export may replace it (and nothing else: artifact.CheckFileOutput).
const exportMark, exportMarkValue = "mdlm", "checkpoint export"

// Export writes a checkpoint's weights as a PyTorch state dict (atomically).
// It replaces only a file an earlier Export wrote; a user's file, a file
// inside an artifact and anything not a regular file are refused.
func Export(opts ExportOptions) error {
	if err := artifact.CheckFileOutput(opts.Dst, exportedByMDLM, opts.Src); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	c, err := Load(opts.Src, true)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	meta := map[string]string{"format": "pt", exportMark: exportMarkValue}
	if err := safetensors.WriteFile(opts.Dst, c.Weights.SafetensorsTensors(opts.Prefix), meta); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportedByMDLM reports whether path is a safetensors file Export wrote.
func exportedByMDLM(path string) bool {
	f, err := safetensors.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Metadata[exportMark] == exportMarkValue
}

// Report is what Inspect finds.
type Report struct {
	Path      string          `json:"path"`
	Kind      string          `json:"kind"` // "safetensors" or "checkpoint/v1"
	Config    backbone.Config `json:"config"`
	Method    *Method         `json:"method,omitempty"`
	NumParams int             `json:"num_params"`
	Tensors   []TensorInfo    `json:"tensors"`
	Digest    string          `json:"digest,omitempty"`
	Verified  bool            `json:"verified,omitempty"`
}

// TensorInfo is one line of a report.
type TensorInfo struct {
	Name  string            `json:"name"`
	DType safetensors.DType `json:"dtype"`
	Shape []int             `json:"shape"`
}

// Inspect describes a safetensors file or a checkpoint directory (whose files are
// verified against the manifest).
func Inspect(path string) (*Report, error) {
	r := &Report{Path: path, Kind: "safetensors"}
	file := path
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	} else if st.IsDir() {
		c, err := Load(path, true)
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		r.Kind, r.Config, r.Method = artifact.CheckpointType, c.Config.Model, &c.Config.Method
		r.Digest, r.Verified = c.Manifest.Digest(), true
		file = filepath.Join(path, WeightsFile)
	}
	f, err := safetensors.OpenMmap(file)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	defer f.Close()
	for _, info := range f.Tensors() {
		r.Tensors = append(r.Tensors, TensorInfo{info.Name, info.DType, info.Shape})
		if !strings.HasSuffix(info.Name, backbone.InvFreqName) {
			r.NumParams += info.NumElements()
		}
	}
	if r.Kind == "safetensors" {
		if cfg, err := backbone.InferConfig(f); err == nil {
			r.Config = cfg
		}
	}
	return r, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

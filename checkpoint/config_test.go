package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
)

func tinyD3PMConfig() Config {
	return Config{Model: backbone.Config{Arch: backbone.DiT, Vocab: 10, Hidden: 8, Heads: 2, Blocks: 1, Cond: 4, Length: 4, MaskIndex: 9},
		Method: Method{Parameterization: "d3pm", T: 1000, Noise: "loglinear"}, Tokenizer: "bytes"}
}

func saveTiny(t *testing.T, cfg Config, m artifact.Manifest) string {
	t.Helper()
	w, err := backbone.NewWeights(cfg.Model, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if _, err := Save(dir, cfg, w, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

// config.json round-trips the objective; without one (a default run, or a
// config.json written before the field) it keeps meaning the reference's
// defaults and the file does not mention it.
func TestConfigObjectiveRoundTrip(t *testing.T) {
	subs := diffusion.DefaultObjective()
	subs.SubsMasking, subs.SamplingEps, subs.Antithetic = true, 0.01, false
	for _, c := range []struct {
		name      string
		obj       *diffusion.Objective
		want      diffusion.Objective
		inFile    bool
		wantModel func(diffusion.Model) bool
	}{
		{"default", RecordedObjective(diffusion.DefaultObjective()), diffusion.DefaultObjective(), false,
			func(m diffusion.Model) bool { return !m.SubsMasking }},
		{"subs masking", RecordedObjective(subs), subs, true,
			func(m diffusion.Model) bool { return m.SubsMasking && !m.Antithetic && m.SamplingEps == 0.01 }},
	} {
		cfg := tinyD3PMConfig()
		cfg.Objective = c.obj
		dir := saveTiny(t, cfg, artifact.Manifest{})
		raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(raw), `"objective"`); got != c.inFile {
			t.Errorf("%s: config.json mentions objective = %v, want %v:\n%s", c.name, got, c.inFile, raw)
		}
		ck, err := Load(dir, true)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := ck.Config.TrainedObjective(); got != c.want {
			t.Errorf("%s: read back %+v, want %+v", c.name, got, c.want)
		}
		m, err := ck.Model()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !c.wantModel(m) || m.Objective() != (diffusion.Model{}).WithObjective(c.want).Objective() {
			t.Errorf("%s: model objective %+v, want %+v", c.name, m.Objective(), c.want)
		}
		d, err := ck.Config.Diffusion()
		if err != nil {
			t.Fatal(err)
		}
		if d.SubsMasking != c.want.SubsMasking {
			t.Errorf("%s: Config.Diffusion SubsMasking = %v, want %v", c.name, d.SubsMasking, c.want.SubsMasking)
		}
	}
}

// A config.json is hostile: its objective is read strictly and validated,
// with the field named; fields it leaves out keep the defaults.
func TestConfigObjectiveHostile(t *testing.T) {
	base := `{"model":{"arch":"dit","vocab_size":10,"hidden_size":8,"n_heads":2,"n_blocks":1,"cond_dim":4,"length":4,"mask_index":9},` +
		`"method":{"parameterization":"%s","T":0,"time_conditioning":false,"noise":"loglinear"},"objective":%s}`
	for _, c := range []struct {
		name, param, obj, mention string
		want                      *diffusion.Objective
	}{
		{"unknown switch", "d3pm", `{"subs_masking":true,"mask_everything":true}`, `unknown field "mask_everything"`, nil},
		{"wrong type", "d3pm", `{"subs_masking":"yes"}`, "subs_masking", nil},
		{"eps out of range", "d3pm", `{"sampling_eps":1.5}`, "sampling_eps 1.5", nil},
		{"eps zero", "d3pm", `{"sampling_eps":0}`, "sampling_eps 0", nil},
		{"both IS and CoV", "subs", `{"importance_sampling":true,"change_of_variables":true}`, "cannot both", nil},
		{"subs masking on subs", "subs", `{"subs_masking":true}`, "subs_masking applies to parameterization d3pm", nil},
		{"not an object", "d3pm", `[1]`, "objective", nil},
		{"partial keeps defaults", "d3pm", `{"subs_masking":true}`, "",
			&diffusion.Objective{Antithetic: true, SamplingEps: diffusion.DefaultSamplingEps, SubsMasking: true}},
		{"null is none", "d3pm", `null`, "", nil},
	} {
		raw := strings.Replace(strings.Replace(base, "%s", c.param, 1), "%s", c.obj, 1)
		cfg, err := parseConfig([]byte(raw))
		if c.mention != "" {
			if err == nil || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "objective") {
				t.Errorf("%s: err = %v, want one naming objective and %q", c.name, err, c.mention)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (cfg.Objective == nil) != (c.want == nil) || (c.want != nil && *cfg.Objective != *c.want) {
			t.Errorf("%s: objective %+v, want %+v", c.name, cfg.Objective, c.want)
		}
	}
}

// Load refuses a hostile objective naming the file.
func TestLoadRefusesBadObjective(t *testing.T) {
	dir := saveTiny(t, tinyD3PMConfig(), artifact.Manifest{})
	path := filepath.Join(dir, ConfigFile)
	raw, _ := os.ReadFile(path)
	bad := strings.Replace(string(raw), `"tokenizer"`, `"objective": {"subs_masking": true, "bogus": 1}, "tokenizer"`, 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, false)
	if err == nil || !strings.Contains(err.Error(), ConfigFile) || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("err = %v, want one naming %s and the field", err, ConfigFile)
	}
}

// Checkpoint.Objective falls back on the manifest's params.objective (written
// before config.json recorded it) and refuses the two records disagreeing.
func TestCheckpointObjectiveSources(t *testing.T) {
	subs := diffusion.DefaultObjective()
	subs.SubsMasking = true
	other := subs
	other.Antithetic = false
	params := func(o diffusion.Objective) map[string]any { return map[string]any{diffusion.ObjectiveParam: o} }
	for _, c := range []struct {
		name    string
		config  *diffusion.Objective
		params  map[string]any
		want    diffusion.Objective
		mention string
	}{
		{"neither", nil, nil, diffusion.DefaultObjective(), ""},
		{"manifest only", nil, params(subs), subs, ""},
		{"config only", &subs, nil, subs, ""},
		{"both agree", &subs, params(subs), subs, ""},
		{"disagree", &subs, params(other), diffusion.Objective{}, "its manifest's params.objective"},
	} {
		ck := &Checkpoint{Dir: "ck", Config: tinyD3PMConfig(), Manifest: artifact.Manifest{Params: c.params}}
		ck.Config.Objective = c.config
		got, err := ck.Objective()
		if c.mention != "" {
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Errorf("%s: err = %v, want mention of %q", c.name, err, c.mention)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

// A config.json's tokenizer names a built-in tokenizer or the checkpoint's own
// tokenizer.json; a path elsewhere is refused naming the file. An absolute
// path an older checkpoint recorded loads as written, even when it is gone
// (what needs the tokenizer fails later; the weights stay usable).
func TestLoadTokenizerNames(t *testing.T) {
	legacy := filepath.Join(t.TempDir(), "bpe-1", "tokenizer.json")
	os.MkdirAll(filepath.Dir(legacy), 0o755)
	os.WriteFile(legacy, []byte(`{}`), 0o644)
	for _, c := range []struct {
		name string
		own  bool // the checkpoint holds a tokenizer.json
		want string
		err  string
	}{
		{"gpt2", false, "gpt2", ""},
		{"tokenizer.json", true, "/ck/tokenizer.json", ""},
		{"tokenizer.json", false, "", "holds no such file"},
		{legacy, false, legacy, ""},
		{"/nowhere/bpe-1/tokenizer.json", false, "/nowhere/bpe-1/tokenizer.json", ""},
		{"/etc/passwd", false, "", "neither a built-in name"},
		{"../bpe/tokenizer.json", true, "", "neither a built-in name"},
		{"sub/tokenizer.json", true, "", "neither a built-in name"},
	} {
		cfg := tinyD3PMConfig()
		cfg.Tokenizer = ""
		dir := saveTiny(t, cfg, artifact.Manifest{})
		if c.own {
			os.WriteFile(filepath.Join(dir, artifact.TokenizerFile), []byte(`{}`), 0o644)
		}
		setConfigKey(t, dir, "tokenizer", c.name)
		ck, err := Load(dir, false)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), ConfigFile) {
				t.Errorf("tokenizer %q: err = %v", c.name, err)
			}
			continue
		}
		if err == nil && c.own {
			// A checkpoint opened by a relative path resolves its own file too.
			rel, rerr := filepath.Rel(mustGetwd(t), dir)
			if rerr != nil {
				t.Fatal(rerr)
			}
			rck, rerr := Load(rel, false)
			if rerr != nil {
				t.Fatalf("tokenizer %q: load %s: %v", c.name, rel, rerr)
			}
			if got, rerr := rck.Tokenizer(); rerr != nil || got != filepath.Join(rel, artifact.TokenizerFile) {
				t.Errorf("tokenizer %q: relative checkpoint %s: Tokenizer() = %q, %v", c.name, rel, got, rerr)
			}
		}
		if err != nil || !strings.HasSuffix(ck.Config.Tokenizer, c.want) {
			t.Errorf("tokenizer %q: loaded %q, %v; want ...%s", c.name, ck.Config.Tokenizer, err, c.want)
			continue
		}
		// What loads the tokenizer (sample, a scorer) gets the error, naming the checkpoint.
		_, err = ck.Tokenizer()
		if gone := strings.HasPrefix(c.name, "/nowhere"); errors.Is(err, artifact.ErrTokenizerGone) != gone || (gone && !strings.Contains(err.Error(), dir)) {
			t.Errorf("tokenizer %q: Tokenizer() = %v, want ErrTokenizerGone %v naming %s", c.name, err, gone, dir)
		}
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// setConfigKey rewrites one key of dir's config.json.
func setConfigKey(t *testing.T, dir, key string, v any) {
	t.Helper()
	path := filepath.Join(dir, ConfigFile)
	raw, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSaveCarriesTokenizer: a tokenizer file is copied into the checkpoint as
// tokenizer.json, listed in its manifest with its sha256 and recorded by that
// name; the checkpoint loads without the original, and saving what was loaded
// (a copy, a fine-tune's start) carries it on.
func TestSaveCarriesTokenizer(t *testing.T) {
	src := filepath.Join(t.TempDir(), "learned.json")
	content := []byte(`{"model":{"type":"BPE"}}`)
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := tinyD3PMConfig()
	cfg.Tokenizer = src
	dir := saveTiny(t, cfg, artifact.Manifest{})
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	checkCarried(t, dir, content)
	ck, err := Load(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, artifact.TokenizerFile); ck.Config.Tokenizer != want {
		t.Fatalf("loaded tokenizer %q, want the checkpoint's own %q", ck.Config.Tokenizer, want)
	}
	again := filepath.Join(t.TempDir(), "copy")
	if _, err := Save(again, ck.Config, ck.Weights, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	checkCarried(t, again, content)
}

// checkCarried checks dir's tokenizer.json, its manifest entry and config.json.
func checkCarried(t *testing.T, dir string, content []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, artifact.TokenizerFile))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("%s: tokenizer.json %q, %v; want %q", dir, got, err, content)
	}
	m, err := artifact.Read(dir, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	listed := false
	for _, f := range m.Files {
		listed = listed || (f.Path == artifact.TokenizerFile && f.SHA256 == hex.EncodeToString(sum[:]))
	}
	if !listed {
		t.Errorf("%s: manifest files %+v lack tokenizer.json with its sha256", dir, m.Files)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	var c struct{ Tokenizer string }
	if err := json.Unmarshal(raw, &c); err != nil || c.Tokenizer != artifact.TokenizerFile {
		t.Errorf("%s: config.json records tokenizer %q, %v; want %q", dir, c.Tokenizer, err, artifact.TokenizerFile)
	}
}

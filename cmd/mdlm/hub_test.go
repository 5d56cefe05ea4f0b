package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/reffix"
)

// modelHub serves model repositories as the hub does (tree listing with LFS
// sha256, resolve URLs) and requires a bearer token.
type modelHub struct {
	token string
	repos map[string]map[string][]byte // repo -> path -> bytes
}

func (h *modelHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	for repo, files := range h.repos {
		if r.URL.Path == "/api/models/"+repo+"/tree/main" {
			var out []map[string]any
			for p, data := range files {
				sum := sha256.Sum256(data)
				out = append(out, map[string]any{"type": "file", "path": p, "size": 100,
					"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}})
			}
			json.NewEncoder(w).Encode(out)
			return
		}
		if p, ok := strings.CutPrefix(r.URL.Path, "/"+repo+"/resolve/main/"); ok {
			if data, ok := files[p]; ok {
				w.Write(data)
				return
			}
		}
	}
	http.NotFound(w, r)
}

// A mock hub with a tiny GPT-2 (the scorer fixture) and a tiny MDLM in the
// Hugging Face layout (config.json, model.safetensors under "backbone."):
// `checkpoint pull` verifies and imports both; `sample --checkpoint hub:...`
// and `genppl --scorer hub:...` pull on first use and run; HF_TOKEN appears
// in no log and no manifest.
func TestPullFromMockHub(t *testing.T) {
	const token = "hf_secret_token_value_123"
	dir := t.TempDir()
	gpt2 := reffix.Subdirs(t, "MDLM_GPT2_FIXTURES", "gpt2")[0]
	h := &modelHub{token: token, repos: map[string]map[string][]byte{"org/gpt2-tiny": {}, "org/mdlm-tiny": {}}}
	for _, f := range []string{"config.json", "model.safetensors"} {
		raw, err := os.ReadFile(filepath.Join(gpt2, f))
		if err != nil {
			t.Fatal(err)
		}
		h.repos["org/gpt2-tiny"][f] = raw
	}
	h.repos["org/gpt2-tiny"]["README.md"] = []byte("# tiny gpt2\n")
	// The MDLM repository: the reference fixture's DiT, exported under backbone.
	fx := reffix.All(t)[0]
	ck := filepath.Join(dir, "fixture-ck")
	if _, err := checkpoint.Import(checkpoint.ImportOptions{Src: filepath.Join(fx.Dir, "dit.safetensors"), ConfigJSON: filepath.Join(fx.Dir, "config.json"), Out: ck}); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(dir, "model.safetensors")
	if err := checkpoint.Export(checkpoint.ExportOptions{Src: ck, Dst: exported, Prefix: "backbone."}); err != nil {
		t.Fatal(err)
	}
	weights, _ := os.ReadFile(exported)
	h.repos["org/mdlm-tiny"]["model.safetensors"] = weights
	h.repos["org/mdlm-tiny"]["config.json"] = []byte(`{"model_type": "mdlm", "hidden_dim": 64, "n_heads": 4, "n_blocks": 2, "cond_dim": 32, "vocab_size": 512, "model_length": 32, "time_conditioning": false}`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", token)
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "cache"))

	var logs bytes.Buffer
	mdlmRun := mdlmLogged(t, &logs)
	scorer := filepath.Join(dir, "scorer")
	mdlmRun("checkpoint", "pull", "org/gpt2-tiny", "-o", scorer)
	m, err := artifact.Read(scorer, artifact.CheckpointType)
	if err != nil || artifact.Verify(scorer, m) != nil || m.Params["hub_repo"] != "org/gpt2-tiny" || m.Params["revision"] != "main" {
		t.Fatalf("pulled scorer: %+v, %v", m.Params, err)
	}
	// Samples from the MDLM repository, referenced directly.
	samples := filepath.Join(dir, "samples")
	mdlmRun("sample", "--checkpoint", "hub:org/mdlm-tiny", "-o", samples, "--steps", "8", "--num", "2", "--sampler", "ddpm")
	if _, err := artifact.Read(samples, artifact.SamplesType); err != nil {
		t.Fatal(err)
	}
	// Text to score: the MDLM fixture has no tokenizer, so write samples with text.
	scored := filepath.Join(dir, "text-samples")
	rows := []datasets.Sample{{Index: 0, Text: "In the beginning", Tokens: []int32{1}}, {Index: 1, Text: "God created the heaven", Tokens: []int32{2}}}
	if _, err := artifact.Publish(scored, artifact.Manifest{Type: artifact.SamplesType,
		Params: artifact.Params(artifact.SamplesMeta{Sampler: "ddpm", Num: 2, Length: 16})}, func(tmp string) error { return datasets.WriteSamples(tmp, rows) }); err != nil {
		t.Fatal(err)
	}
	mdlmRun("genppl", scored, "--scorer", "hub:org/gpt2-tiny", "-o", filepath.Join(dir, "genppl"), "--batch", "2")
	var res struct {
		GenPPL float64 `json:"gen_ppl"`
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "genppl", "metrics.json"))
	if json.Unmarshal(raw, &res) != nil || res.GenPPL <= 1 {
		t.Errorf("gen ppl from the pulled scorer: %s", raw)
	}
	// The token never leaks.
	if strings.Contains(logs.String(), token) {
		t.Error("HF_TOKEN appears in the logs")
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == artifact.ManifestName || strings.HasSuffix(d.Name(), ".json")) {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(token)) {
				t.Errorf("HF_TOKEN appears in %s", p)
			}
		}
		return nil
	})
	// Without the token the hub refuses, and the error says how to fix it.
	t.Setenv("HF_TOKEN", "")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"checkpoint", "pull", "org/gpt2-tiny", "-o", filepath.Join(dir, "x")}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "401") {
		t.Errorf("pull without a token: exit %d, %s", code, errb.String())
	}
}

// Issue 19, defect 2, from the command line: a hostile tree listing, a
// --revision with ../ and a hub: reference with ../ in its revision all fail
// with an error naming the problem, and nothing is written outside the cache.
func TestHostileHubCLI(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		data := []byte("evil")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			sum := sha256.Sum256(data)
			json.NewEncoder(w).Encode([]map[string]any{{"type": "file", "path": "../../../../x.ckpt", "size": len(data),
				"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}}})
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	base := t.TempDir()
	cache := filepath.Join(base, "a", "b", "c", "d", "cache")
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("MDLM_CACHE", cache)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"checkpoint", "pull", "org/evil", "-o", filepath.Join(base, "o1")}, "../../../../x.ckpt"},
		{[]string{"checkpoint", "pull", "org/evil", "--revision", "../../../../x", "-o", filepath.Join(base, "o2")}, "invalid revision"},
		{[]string{"checkpoint", "pull", "../../evil", "-o", filepath.Join(base, "o3")}, "invalid repository id"},
		{[]string{"download", "--dataset", "openwebtext-split", "--revision", "../../../../x", "-o", filepath.Join(base, "o4")}, "invalid revision"},
		{[]string{"sample", "--checkpoint", "hub:org/evil@../../../../x", "-o", filepath.Join(base, "o5")}, "invalid revision"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code == 0 || !strings.Contains(errb.String()+out.String(), tc.want) {
			t.Errorf("mdlm %v: exit %d, want an error containing %q:\n%s%s", tc.args, code, tc.want, out.String(), errb.String())
		}
	}
	if requests != 1 {
		t.Errorf("%d hub requests, want 1 (the hostile listing; refused names send none)", requests)
	}
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "x") {
			t.Errorf("written: %s", p)
		}
		return nil
	})
}

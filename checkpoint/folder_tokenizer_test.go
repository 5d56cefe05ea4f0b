package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/hub"
)

// wordLevelJSON is a WordLevel tokenizer.json with n tokens: <s>, </s>, then
// w2, w3, ... (no [MASK]: the model vocabulary is n + 1).
func wordLevelJSON(n int) []byte {
	vocab := map[string]int{"<s>": 0, "</s>": 1}
	for i := 2; i < n; i++ {
		vocab[fmt.Sprintf("w%d", i)] = i
	}
	raw, _ := json.Marshal(map[string]any{
		"model":         map[string]any{"type": "WordLevel", "vocab": vocab, "unk_token": "</s>"},
		"pre_tokenizer": map[string]any{"type": "WhitespaceSplit"},
	})
	return raw
}

// hfFolder writes a Hugging Face model folder of the tiny D3PM model:
// config.json, model.safetensors and, when tok is not nil, tokenizer.json.
func hfFolder(t *testing.T, tok []byte) string {
	t.Helper()
	cfg := tinyD3PMConfig()
	ck := saveTiny(t, cfg, artifact.Manifest{})
	folder := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Export(ExportOptions{Src: ck, Dst: filepath.Join(folder, "model.safetensors"), Prefix: "backbone."}); err != nil {
		t.Fatal(err)
	}
	m := cfg.Model
	hf := fmt.Sprintf(`{"model_type": "mdlm", "hidden_dim": %d, "n_heads": %d, "n_blocks": %d, "cond_dim": %d, "vocab_size": %d, "model_length": %d}`,
		m.Hidden, m.Heads, m.Blocks, m.Cond, m.Vocab, m.Length)
	if err := os.WriteFile(filepath.Join(folder, "config.json"), []byte(hf), 0o644); err != nil {
		t.Fatal(err)
	}
	if tok != nil {
		if err := os.WriteFile(filepath.Join(folder, artifact.TokenizerFile), tok, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return folder
}

// TestImportFolderTokenizer: a model folder's tokenizer.json is recorded (and
// carried) when no tokenizer is named and it fits the weights; one that does
// not fit is left out and the weights still import; a named one wins.
func TestImportFolderTokenizer(t *testing.T) {
	for _, c := range []struct {
		name  string
		tok   []byte
		named string
		want  string // recorded in config.json
	}{
		{"fits", wordLevelJSON(9), "", artifact.TokenizerFile},
		{"too few tokens", wordLevelJSON(5), "", ""},
		{"none", nil, "", ""},
		{"named wins", wordLevelJSON(9), "bytes", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			folder := hfFolder(t, c.tok)
			out := filepath.Join(t.TempDir(), "ck")
			if c.named == "bytes" {
				// bytes has its own vocabulary: a 10-row model does not fit it.
				if _, err := Import(ImportOptions{Src: folder, Out: out, Tokenizer: c.named}); err == nil || !strings.Contains(err.Error(), "vocabulary") {
					t.Fatalf("named tokenizer that does not fit: %v", err)
				}
				return
			}
			if _, err := Import(ImportOptions{Src: folder, Out: out}); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(filepath.Join(out, ConfigFile))
			var got struct{ Tokenizer string }
			if err := json.Unmarshal(raw, &got); err != nil || got.Tokenizer != c.want {
				t.Fatalf("config.json records tokenizer %q, %v; want %q", got.Tokenizer, err, c.want)
			}
			if c.want != "" {
				checkCarried(t, out, c.tok)
			}
		})
	}
}

// TestPickFilesTokenizer: a repository's tokenizer.json is downloaded with
// its weights; a .ckpt repository takes the checkpoint alone.
func TestPickFilesTokenizer(t *testing.T) {
	files := []hub.File{{Path: "README.md"}, {Path: "config.json"}, {Path: "model.safetensors"}, {Path: "tokenizer.json"}, {Path: "sub/tokenizer.json"}}
	want, src, err := pickFiles(files)
	if err != nil || src != "." {
		t.Fatal(src, err)
	}
	var names []string
	for _, f := range want {
		names = append(names, f.Path)
	}
	if strings.Join(names, ",") != "config.json,model.safetensors,tokenizer.json" {
		t.Errorf("downloads %v", names)
	}
	want, src, err = pickFiles([]hub.File{{Path: "last.ckpt"}, {Path: "tokenizer.json"}})
	if err != nil || src != "last.ckpt" || len(want) != 1 {
		t.Errorf("ckpt repository: %v %q %v", want, src, err)
	}
}

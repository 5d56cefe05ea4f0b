package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/hub/hubtest"
	"github.com/mdlm-go/mdlm/internal/reffix"
)

// `mdlm checkpoint push` to a mock hub, then `mdlm checkpoint pull` of
// org/name at the pushed branch: the hub holds the checkpoint's files bit
// for bit, the pulled checkpoint has the same weights, and HF_TOKEN appears
// in no log (issue 25).
func TestCheckpointPushPull(t *testing.T) {
	const token = "hf_push_cli_secret_987"
	dir := t.TempDir()
	fx := reffix.All(t)[0]
	ck := filepath.Join(dir, "ck")
	if _, err := checkpoint.Import(checkpoint.ImportOptions{Src: filepath.Join(fx.Dir, "dit.safetensors"), ConfigJSON: filepath.Join(fx.Dir, "config.json"), Out: ck}); err != nil {
		t.Fatal(err)
	}
	h := hubtest.NewPushHub(t, token)
	t.Setenv("HF_ENDPOINT", h.Srv.URL)
	t.Setenv("HF_TOKEN", token)
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "cache"))
	var logs bytes.Buffer
	mdlmRun := mdlmLogged(t, &logs)
	mdlmRun("checkpoint", "push", ck, "org/ck", "--revision", "v1", "--private")
	m, err := artifact.Read(ck, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	pushed := h.Repos["org/ck"]["v1"]
	for _, f := range append(m.Files, artifact.File{Path: artifact.ManifestName}) {
		want, _ := os.ReadFile(filepath.Join(ck, filepath.FromSlash(f.Path)))
		if got, ok := pushed[f.Path]; !ok || !bytes.Equal(got, want) {
			t.Errorf("the hub's %s differs from the checkpoint's", f.Path)
		}
	}
	if len(pushed) != len(m.Files)+1 || !h.Private["org/ck"] {
		t.Errorf("pushed %d files (want %d), private %v", len(pushed), len(m.Files)+1, h.Private["org/ck"])
	}
	back := filepath.Join(dir, "back")
	mdlmRun("checkpoint", "pull", "org/ck", "--revision", "v1", "-o", back)
	if pm, err := artifact.Read(back, artifact.CheckpointType); err != nil || artifact.Verify(back, pm) != nil {
		t.Fatalf("pulled checkpoint: %v", err)
	}
	// Pull publishes the pushed checkpoint as it is: the same artifact
	// digest, every file bit for bit.
	pm, err := artifact.Read(back, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	if pm.Digest() != m.Digest() {
		t.Errorf("pulled digest %s, pushed %s", pm.Digest(), m.Digest())
	}
	for _, f := range m.Files {
		want, _ := os.ReadFile(filepath.Join(ck, filepath.FromSlash(f.Path)))
		got, err := os.ReadFile(filepath.Join(back, filepath.FromSlash(f.Path)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("pulled %s differs from the pushed one (%v)", f.Path, err)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Error("HF_TOKEN appears in the logs")
	}
}

package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

// A run's checkpoints record its switches in config.json when they are not
// the reference's defaults, so that loading one gives the model as trained
// (d3pm's subs masking included); a default run's config.json does not
// mention them; and the work directory refuses to continue with other
// switches.
func TestConfigRecordsObjective(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	d3pm := baseConfig(data)
	d3pm.Parameterization, d3pm.T, d3pm.SubsMasking, d3pm.Steps = "d3pm", 1000, true, 2
	plain := baseConfig(data)
	plain.Steps = 2
	want := diffusion.DefaultObjective()
	want.SubsMasking = true
	for _, c := range []struct {
		name   string
		cfg    Config
		record *diffusion.Objective
	}{{"d3pm subs masking", d3pm, &want}, {"default", plain, nil}} {
		work := filepath.Join(t.TempDir(), "w")
		res, err := run(t, context.Background(), c.cfg, work, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := res.WriteCheckpoint(out); err != nil {
			t.Fatal(err)
		}
		last, _ := checkpoint.Resolve(work)
		for _, dir := range []string{last, out} {
			raw, err := os.ReadFile(filepath.Join(dir, checkpoint.ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			var got checkpoint.Config
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("%s: %s: %v", c.name, dir, err)
			}
			if (got.Objective == nil) != (c.record == nil) || (c.record != nil && *got.Objective != *c.record) {
				t.Errorf("%s: %s records objective %+v, want %+v", c.name, dir, got.Objective, c.record)
			}
		}
		ck, err := checkpoint.Load(last, true)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ck.Model()
		if err != nil {
			t.Fatal(err)
		}
		if m.SubsMasking != (c.record != nil) {
			t.Errorf("%s: loaded model's SubsMasking = %v", c.name, m.SubsMasking)
		}
		if c.record == nil {
			continue
		}
		other := c.cfg
		other.SubsMasking, other.Steps = false, 4
		if _, err := run(t, context.Background(), other, work, nil); err == nil || !strings.Contains(err.Error(), "switches") {
			t.Errorf("%s: resuming with other switches: err = %v", c.name, err)
		}
	}
}

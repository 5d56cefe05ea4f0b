package pipeline

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The OpenWebText pipeline as Kubernetes Jobs: one Indexed Job per stage with
// valid names, the sharded tokenize as 16 completions, GPU limits where the
// pipeline asks, every job waiting for its inputs.
func TestKubernetesJobs(t *testing.T) {
	f, err := Load(filepath.Join("..", "pipelines", "owt.yaml"), map[string]string{"steps": "100"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubernetes{Image: "img:1", Claim: "data", Namespace: "ml", File: "pipelines/owt.yaml", RunArgs: []string{"--set", "steps=100"}}
	var buf bytes.Buffer
	if err := k.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(&buf)
	dns := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	var stages []string
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		meta := doc["metadata"].(map[string]any)
		name := meta["name"].(string)
		if doc["apiVersion"] != "batch/v1" || doc["kind"] != "Job" || !dns.MatchString(name) || meta["namespace"] != "ml" {
			t.Errorf("job header %v %v %q %v", doc["apiVersion"], doc["kind"], name, meta["namespace"])
		}
		spec := doc["spec"].(map[string]any)
		pod := spec["template"].(map[string]any)["spec"].(map[string]any)
		c := pod["containers"].([]any)[0].(map[string]any)
		args := strings.Join(toStrings(c["args"]), " ")
		stage := meta["labels"].(map[string]any)["mdlm/stage"].(string)
		stages = append(stages, stage)
		if !strings.HasPrefix(args, "run pipelines/owt.yaml --stage "+stage+" --cache-dir .mdlm/cache --wait-inputs 72h0m0s --set steps=100") {
			t.Errorf("%s args: %s", stage, args)
		}
		if spec["completionMode"] != "Indexed" || pod["restartPolicy"] != "Never" || c["image"] != "img:1" {
			t.Errorf("%s spec: %v", stage, spec)
		}
		shards := 1
		if stage == "tokens" {
			shards = 16
			if !strings.HasSuffix(args, "--num-shards=16") {
				t.Errorf("tokens args: %s", args)
			}
		}
		if spec["completions"] != shards || spec["parallelism"] != shards {
			t.Errorf("%s: completions %v parallelism %v, want %d", stage, spec["completions"], spec["parallelism"], shards)
		}
		res, _ := c["resources"].(map[string]any)
		gpu := res != nil && res["limits"].(map[string]any)["nvidia.com/gpu"] == "1"
		if gpu != (stage == "model" || stage == "ppl" || stage == "samples") {
			t.Errorf("%s: resources %v", stage, res)
		}
		claim := pod["volumes"].([]any)[0].(map[string]any)["persistentVolumeClaim"].(map[string]any)["claimName"]
		if claim != "data" {
			t.Errorf("%s: claim %v", stage, claim)
		}
	}
	if strings.Join(stages, ",") != strings.Join(f.Order, ",") {
		t.Errorf("jobs for %v, want %v", stages, f.Order)
	}
	if _, err := (&Kubernetes{Claim: "x"}).Jobs(f); err == nil {
		t.Error("no image: no error")
	}
	if got := dnsLabel("mdlm-My_Pipeline-" + strings.Repeat("x", 80)); len(got) > 63 || !dns.MatchString(got) {
		t.Errorf("dnsLabel = %q", got)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

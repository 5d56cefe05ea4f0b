package pipeline

import (
	"bytes"
	"errors"
	"io"
	"os"
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

var updateGolden = os.Getenv("MDLM_UPDATE_GOLDEN") != ""

// With the cache in a bucket the jobs need no claim: none is emitted, each pod
// gets an emptyDir mirror and its AWS_* variables from the Secret by
// reference (golden file; MDLM_UPDATE_GOLDEN=1 rewrites it). A claim given as
// well is still mounted; a shared cache in a bucket gets the Secret too.
func TestKubernetesBucketCache(t *testing.T) {
	// A fixed pipeline (not pipelines/demo.yaml, which may change): the
	// golden file depends only on it.
	f := loadTestPipeline(t, `version: 1
name: demo
stages:
  text:   {run: download, with: {sources: [SRC]}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
  blocks: {run: pack, inputs: {tokens: tokens}}
  model:  {run: train, inputs: {data: blocks}, kubernetes: {nvidia.com/gpu: 1}}
`)
	cases := []struct {
		name, golden string
		k            Kubernetes
		claim        bool
		secret       string
	}{
		{"bucket cache", "k8s-bucket.golden.yaml",
			Kubernetes{Image: "img:1", File: "pipelines/demo.yaml", CacheDir: "s3://ml-cache/demo", Secret: "team-s3"}, false, "team-s3"},
		{"bucket and claim", "",
			Kubernetes{Image: "img:1", Claim: "data", File: "pipelines/demo.yaml", CacheDir: "s3://ml-cache/demo"}, true, DefaultS3Secret},
		{"shared in a bucket", "",
			Kubernetes{Image: "img:1", Claim: "data", File: "pipelines/demo.yaml", Shared: "s3://ml-cache/shared"}, true, DefaultS3Secret},
		{"claim only", "",
			Kubernetes{Image: "img:1", Claim: "data", File: "pipelines/demo.yaml"}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := c.k.Write(&buf, f); err != nil {
				t.Fatal(err)
			}
			text := buf.String()
			if got := strings.Count(text, "persistentVolumeClaim"); c.claim != (got > 0) {
				t.Errorf("%d claims, want claim %v", got, c.claim)
			}
			if got := strings.Count(text, "name: "+c.secret+"\n"); c.secret != "" && got != len(f.Order) {
				t.Errorf("secret %q referenced %d times, want %d", c.secret, got, len(f.Order))
			}
			if c.secret == "" && (strings.Contains(text, "secretRef") || strings.Contains(text, "emptyDir")) {
				t.Error("a secret or mirror without a bucket")
			}
			if strings.Contains(text, "AWS_SECRET_ACCESS_KEY") || strings.Contains(text, "AWS_ACCESS_KEY_ID") {
				t.Error("credentials named in the manifests")
			}
			if c.golden != "" {
				golden(t, c.golden, buf.Bytes())
			}
		})
	}
	if _, err := (&Kubernetes{Image: "img:1"}).Jobs(f); err == nil {
		t.Error("no claim and no bucket: no error")
	}
	owt, err := Load(filepath.Join("..", "pipelines", "owt.yaml"), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Kubernetes{Image: "img:1", CacheDir: "s3://b/p"}).Jobs(owt); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Errorf("sharded stage, bucket, no claim: %v", err)
	}
	jobs, err := (&Kubernetes{Image: "img:1", Claim: "data", CacheDir: "s3://b/p"}).Jobs(owt)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		c := j.Spec.Template.Spec.Containers[0]
		if len(c.Env) != 1 || c.Env[0].Value != "/work/.mdlm/mirror" || len(j.Spec.Template.Spec.Volumes) != 1 {
			t.Errorf("%s: with a claim the mirror is on it: env %v volumes %v", j.Metadata.Name, c.Env, j.Spec.Template.Spec.Volumes)
		}
	}
}

// golden compares got with testdata/name (MDLM_UPDATE_GOLDEN=1 rewrites it).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (MDLM_UPDATE_GOLDEN=1 go test -run %s creates it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n%s", t.Name(), path, got)
	}
}

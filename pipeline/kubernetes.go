package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mdlm-go/mdlm/objstore"
)

// Kubernetes renders a pipeline as Kubernetes Indexed Jobs, one per stage, to
// apply all at once (`kubectl apply -f`). Kubernetes Jobs have no dependencies,
// so each job runs `mdlm run FILE --stage NAME --wait-inputs D`: it waits until
// the stages it reads from have verified outputs in the shared cache, skips
// itself when its own output is cached, and otherwise builds it. A stage with
// `shards: N` is an Indexed Job of N completions; Kubernetes gives each pod its
// index in JOB_COMPLETION_INDEX, which mdlm takes as --shard-index. A stage's
// `kubernetes:` map in the pipeline file sets its container's resource limits
// (say nvidia.com/gpu: 1). Every pod mounts one ReadWriteMany volume claim at
// Workdir, holding the pipeline file, its local sources and the cache.
//
// When the cache (or the shared cache) is in a bucket (s3://, issue 25), the
// jobs meet there instead: no claim is needed (one given is still mounted,
// for the pipeline file and sources; without one they must be in the image at
// Workdir). Each pod computes in an emptyDir mounted at MirrorPath ($MDLM_CACHE),
// or with a claim in Workdir/.mdlm/mirror on it, where the shards of a stage
// meet (stage.Execute's .partial directory; without a claim a stage with
// shards is refused). It takes its store configuration and credentials from
// the Secret named Secret (default DefaultS3Secret) as environment variables
// (envFrom), so no credential is ever written into the manifests.
//
// A Job is named mdlm-<pipeline>-<stage>, lower-cased, as an RFC 1123 label;
// when that changed the name (case, characters other than [a-z0-9-], or a cut
// at 63 bytes) an 8-hex-digit sha256 of the original is appended, so distinct
// stages get distinct Jobs, and two that would still share one are an error.
type Kubernetes struct {
	Image      string
	Claim      string        // PersistentVolumeClaim mounted at Workdir
	Namespace  string        // optional
	Workdir    string        // default /work
	File       string        // the pipeline file, relative to Workdir
	CacheDir   string        // default .mdlm/cache (relative to Workdir)
	RunArgs    []string      // more `mdlm run` arguments (--set, --shared)
	WaitInputs time.Duration // default 72h
	Bin        string        // the command in the image; default mdlm
	Shared     string        // --shared of every job: a directory under Workdir or s3://
	Secret     string        // with a bucket: the Secret holding the AWS_* variables; default DefaultS3Secret
}

// DefaultS3Secret is the Secret a job reads its AWS_* variables from when the
// cache is in a bucket and no other is named.
const DefaultS3Secret = "mdlm-s3"

// MirrorPath is where a job's emptyDir local mirror is mounted ($MDLM_CACHE)
// when the cache is in a bucket.
const MirrorPath = "/var/cache/mdlm"

// inBucket reports whether the jobs meet in a bucket.
func (k *Kubernetes) inBucket() bool {
	return objstore.IsURL(k.CacheDir) || objstore.IsURL(k.Shared)
}

type k8sMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace,omitempty"`
	Labels    map[string]string `yaml:"labels"`
}

type k8sJob struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   k8sMeta    `yaml:"metadata"`
	Spec       k8sJobSpec `yaml:"spec"`
}

type k8sJobSpec struct {
	CompletionMode string      `yaml:"completionMode"`
	Completions    int         `yaml:"completions"`
	Parallelism    int         `yaml:"parallelism"`
	BackoffLimit   int         `yaml:"backoffLimit"`
	Template       k8sTemplate `yaml:"template"`
}

type k8sTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		RestartPolicy string         `yaml:"restartPolicy"`
		Containers    []k8sContainer `yaml:"containers"`
		Volumes       []k8sVolume    `yaml:"volumes"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name         string         `yaml:"name"`
	Image        string         `yaml:"image"`
	WorkingDir   string         `yaml:"workingDir"`
	Command      []string       `yaml:"command"`
	Args         []string       `yaml:"args"`
	Resources    *k8sResources  `yaml:"resources,omitempty"`
	Env          []k8sEnv       `yaml:"env,omitempty"`
	EnvFrom      []k8sEnvFrom   `yaml:"envFrom,omitempty"`
	VolumeMounts []k8sVolumeRef `yaml:"volumeMounts"`
}

type k8sEnv struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type k8sEnvFrom struct {
	SecretRef struct {
		Name string `yaml:"name"`
	} `yaml:"secretRef"`
}

type k8sResources struct {
	Limits map[string]string `yaml:"limits"`
}

type k8sVolumeRef struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type k8sVolume struct {
	Name                  string    `yaml:"name"`
	PersistentVolumeClaim *k8sClaim `yaml:"persistentVolumeClaim,omitempty"`
	EmptyDir              *struct{} `yaml:"emptyDir,omitempty"`
}

type k8sClaim struct {
	ClaimName string `yaml:"claimName"`
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsLabel makes s a valid Kubernetes name (RFC 1123 label, at most 63 bytes).
// When that changed s (case, characters, length), a short hash of s is
// appended, so that distinct names stay distinct: tok.bytes and tok_bytes
// once both became tok-bytes (issue 19, defect 8).
func dnsLabel(s string) string {
	clean := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if clean == s && len(s) <= 63 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tag := hex.EncodeToString(sum[:])[:8]
	if len(clean) > 63-1-len(tag) {
		clean = strings.TrimRight(clean[:63-1-len(tag)], "-")
	}
	if clean == "" {
		return tag
	}
	return clean + "-" + tag
}

var validLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

// labelValue is s as a Kubernetes label value: itself when valid, else its
// dnsLabel.
func labelValue(s string) string {
	if validLabel.MatchString(s) {
		return s
	}
	return dnsLabel(s)
}

// jobNames gives every stage its Job name, refusing two stages that would
// still share one.
func jobNames(pipeline string, order []string) (map[string]string, error) {
	names := make(map[string]string, len(order))
	owner := make(map[string]string, len(order))
	for _, stage := range order {
		n := dnsLabel("mdlm-" + pipeline + "-" + stage)
		if other, dup := owner[n]; dup {
			return nil, fmt.Errorf("kubernetes: stages %q and %q both get the Job name %q; rename one", other, stage, n)
		}
		owner[n], names[stage] = stage, n
	}
	return names, nil
}

// Jobs renders one Job per stage, in pipeline order.
func (k *Kubernetes) Jobs(f *File) ([]k8sJob, error) {
	if k.Image == "" || k.Claim == "" && !k.inBucket() {
		return nil, fmt.Errorf("kubernetes: an image and a volume claim (or a cache in a bucket, s3://) are required")
	}
	workdir, cache, bin, wait := k.Workdir, k.CacheDir, k.Bin, k.WaitInputs
	if workdir == "" {
		workdir = "/work"
	}
	if cache == "" {
		cache = ".mdlm/cache"
	}
	if bin == "" {
		bin = "mdlm"
	}
	if wait <= 0 {
		wait = 72 * time.Hour
	}
	name := f.Name
	if name == "" {
		name = strings.TrimSuffix(path.Base(f.Path), path.Ext(f.Path))
	}
	jobNames, err := jobNames(name, f.Order)
	if err != nil {
		return nil, err
	}
	var jobs []k8sJob
	for _, stage := range f.Order {
		st := f.Stages[stage]
		labels := map[string]string{"app.kubernetes.io/name": "mdlm", "mdlm/pipeline": labelValue(name), "mdlm/stage": labelValue(stage)}
		j := k8sJob{APIVersion: "batch/v1", Kind: "Job",
			Metadata: k8sMeta{Name: jobNames[stage], Namespace: k.Namespace, Labels: labels}}
		n := max(1, st.Shards)
		j.Spec = k8sJobSpec{CompletionMode: "Indexed", Completions: n, Parallelism: n, BackoffLimit: 3 * n}
		j.Spec.Template.Metadata.Labels = labels
		args := []string{"run", k.File, "--stage", stage, "--cache-dir", cache, "--wait-inputs", wait.String()}
		if k.Shared != "" {
			args = append(args, "--shared", k.Shared)
		}
		args = append(args, k.RunArgs...)
		if n > 1 {
			args = append(args, fmt.Sprintf("--num-shards=%d", n)) // the index comes from JOB_COMPLETION_INDEX
		}
		c := k8sContainer{Name: "stage", Image: k.Image, WorkingDir: workdir, Command: []string{bin}, Args: args}
		if len(st.Kubernetes) > 0 {
			c.Resources = &k8sResources{Limits: st.Kubernetes}
		}
		spec := &j.Spec.Template.Spec
		spec.RestartPolicy = "Never"
		if k.Claim != "" {
			c.VolumeMounts = append(c.VolumeMounts, k8sVolumeRef{Name: "work", MountPath: workdir})
			spec.Volumes = append(spec.Volumes, k8sVolume{Name: "work", PersistentVolumeClaim: &k8sClaim{ClaimName: k.Claim}})
		}
		if k.inBucket() {
			if n > 1 && k.Claim == "" {
				return nil, fmt.Errorf("kubernetes: stage %q has %d shards, which meet in a shared directory: with the cache in a bucket give --claim as well", stage, n)
			}
			k.bucketAccess(&c, &spec.Volumes, workdir)
		}
		spec.Containers = []k8sContainer{c}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// bucketAccess gives a job of a pipeline whose cache is in a bucket its local
// mirror ($MDLM_CACHE: on the claim when there is one, else an emptyDir at
// MirrorPath) and its AWS_* variables from the Secret, by reference only.
func (k *Kubernetes) bucketAccess(c *k8sContainer, vols *[]k8sVolume, workdir string) {
	secret := k.Secret
	if secret == "" {
		secret = DefaultS3Secret
	}
	var from k8sEnvFrom
	from.SecretRef.Name = secret
	c.EnvFrom = []k8sEnvFrom{from}
	if k.Claim != "" {
		c.Env = []k8sEnv{{Name: "MDLM_CACHE", Value: path.Join(workdir, ".mdlm", "mirror")}}
		return
	}
	c.Env = []k8sEnv{{Name: "MDLM_CACHE", Value: MirrorPath}}
	c.VolumeMounts = append(c.VolumeMounts, k8sVolumeRef{Name: "mirror", MountPath: MirrorPath})
	*vols = append(*vols, k8sVolume{Name: "mirror", EmptyDir: &struct{}{}})
}

// kubernetesHeader opens every stream Write writes: a comment line (the
// pipeline's name follows quoted, so no name can end the comment and start a
// YAML document of its own), by which IsKubernetesExport recognises it.
const kubernetesHeader = "# mdlm pipeline "

// IsKubernetesExport reports whether path holds a stream Write wrote, which
// `mdlm export kubernetes -o` may replace.
func IsKubernetesExport(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(kubernetesHeader))
	_, err = io.ReadFull(f, head)
	return err == nil && string(head) == kubernetesHeader
}

// Write writes the jobs as one YAML stream.
func (k *Kubernetes) Write(w io.Writer, f *File) error {
	jobs, err := k.Jobs(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s%q as Kubernetes Jobs: kubectl apply -f <this file>\n", kubernetesHeader, f.Name)
	fmt.Fprintf(w, "# Each job waits for the stages it reads from (mdlm run --stage --wait-inputs).\n")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, j := range jobs {
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return enc.Close()
}

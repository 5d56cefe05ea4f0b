package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/stage"
)

// ExportCmd is `mdlm export`: a pipeline rendered for another scheduler.
type ExportCmd struct {
	Kubernetes ExportK8sCmd `cmd:"" help:"Kubernetes Indexed Jobs, one per stage, to kubectl apply all at once (each waits for its inputs)."`
}

// ExportK8sCmd is `mdlm export kubernetes`.
type ExportK8sCmd struct {
	File       string            `arg:"" help:"Pipeline file, relative to the current directory, which is --workdir inside the pods."`
	Image      string            `required:"" help:"Container image with mdlm on its PATH."`
	Claim      string            `help:"PersistentVolumeClaim (ReadWriteMany) mounted at --workdir: the pipeline file, local sources and the cache. Not needed when --cache-dir is s3:// (the pipeline file is then in the image at --workdir)."`
	Namespace  string            `help:"Namespace of the jobs."`
	Workdir    string            `default:"/work" help:"Mount path of the claim and working directory of the jobs."`
	CacheDir   string            `default:".mdlm/cache" help:"Cache directory, relative to --workdir, or s3://bucket/prefix (the jobs meet in the bucket)."`
	Shared     string            `help:"Shared cache of every job: a directory relative to --workdir, or s3://bucket/prefix."`
	S3Secret   string            `name:"s3-secret" default:"mdlm-s3" help:"With a cache in a bucket: the Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3, AWS_REGION, ...) become each job's environment."`
	Set        map[string]string `help:"Override pipeline vars." mapsep:","`
	WaitInputs time.Duration     `default:"72h" help:"How long a job waits for the stages it reads from."`
	Out        string            `short:"o" help:"Write the manifests here (default: standard output)." type:"path"`
}

// Run renders the manifests.
func (c *ExportK8sCmd) Run(kctx *kong.Context, reg stage.Registry) error {
	if filepath.IsAbs(c.File) {
		return fmt.Errorf("export kubernetes: give the pipeline file relative to the directory that --workdir mounts, not %s", c.File)
	}
	f, err := pipeline.Load(c.File, c.Set, reg)
	if err != nil {
		return err
	}
	runArgs := setArgs(c.Set)
	k := &pipeline.Kubernetes{Image: c.Image, Claim: c.Claim, Namespace: c.Namespace, Workdir: c.Workdir,
		File: filepath.ToSlash(filepath.Clean(c.File)), CacheDir: c.CacheDir, RunArgs: runArgs, WaitInputs: c.WaitInputs,
		Shared: c.Shared, Secret: c.S3Secret}
	if c.Out == "" {
		return k.Write(kctx.Stdout, f)
	}
	if err := artifact.CheckFileOutput(c.Out, pipeline.IsKubernetesExport, c.File); err != nil {
		return fmt.Errorf("export kubernetes: %w", err)
	}
	if err := atomicfile.Write(c.Out, func(w io.Writer) error { return k.Write(w, f) }); err != nil {
		return err
	}
	fmt.Fprintf(stderrOf(kctx), "wrote %d jobs to %s: kubectl apply -f %s\n", len(f.Order), c.Out, c.Out)
	return nil
}

// Package stage is the contract between a pipeline stage and whatever runs it
// (the command line by hand, `mdlm run`, a Slurm array task, a Kubernetes pod).
//
// A stage is declared once, next to its code, as a Def: its kind name and
// version, its typed inputs and its output type, and one Options struct that is
// at the same time its kong flags, the `with:` keys of a pipeline file and the
// parameters of its cache key (see Spec). Struct tags on the Options fields say
// what the engine needs beyond kong:
//
//	input:"data"          the flag is the path of input "data" (Def.Inputs gives its type)
//	output:""             the flag is the artifact directory to create (-o)
//	cosmetic:""           the flag never changes the output (workers, log cadence):
//	                      left out of the cache key
//	digest:"file"         the flag names files or directories that must exist; their
//	                      content enters the cache key (a reference such as
//	                      hub:org/name@rev enters it as written: IsReference)
//	digest:"name-or-file" the flag is a built-in name or a file (--tokenizer gpt2 or
//	                      --tokenizer my/tokenizer.json); a file's content enters the key
//	pipeline:"-"          not a pipeline key (set by the executor: shard index and count)
//
// A stage's code implements Builder (write the artifact's files into a directory
// and describe them) or, if its work splits into shards, Sharder. Execute runs
// either and owns everything around the stage's code: the checks on the output
// path (nothing but an mdlm artifact is ever replaced), the output's lock, the
// temporary directory, the atomic publication, the work directory of a
// resumable stage, and the shard protocol (partial directory tied to one run,
// completion markers, the publishing claim).
// Any input flag and the output flag may name s3://bucket/prefix instead of a
// directory (remote.go): Execute fetches such an input into the local verified
// cache and publishes such an output from a local mirror, so a stage's code
// only ever sees local directories.
// A stage neither schedules nor decides caching, and imports no other stage.
package stage

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/gomlx/compute"

	"github.com/mdlm-go/mdlm/artifact"
)

// Def declares a stage kind.
type Def struct {
	Kind    string  // command name and pipeline `run:` value
	Version int     // bumped whenever the stage's code changes its output
	Help    string  // one line, for `mdlm --help`
	Output  string  // artifact type of the output, e.g. "tokens/v1"
	Inputs  []Input // inputs, each bound to the flag tagged input:"<name>"
	// New returns a pointer to a zero Options struct of the stage (kong reads its
	// tags, defaults and help); it implements Builder or Sharder.
	New func() Options
	// DataGC: the stage streams bounded chunks of data, and Execute lets the
	// garbage collector run less often while it runs (see DataGC).
	DataGC bool
	// Resumable: the stage keeps its progress in the work directory, and an
	// interrupted Execute says that rerunning the same command continues.
	Resumable bool
}

// Input is one typed input of a stage.
type Input struct {
	Name     string // the pipeline's `inputs:` key
	Type     string // artifact type wanted, e.g. artifact.PackedType
	Optional bool   // the stage runs without it
}

// Options is a pointer to a stage's flags struct: kong parses it, and its one
// field tagged output:"" is the artifact directory to create (OutDir). It
// implements Builder or Sharder.
type Options any

// Dirs are the directories a Builder works in.
type Dirs struct {
	// Out is the temporary directory that becomes the artifact: write the files
	// here. It is renamed into place only after Build returns without error.
	Out string
	// Work is scratch space that survives an interrupted run (a resumable
	// stage's checkpoints). It is keyed by the output path, which a pipeline keys
	// by the stage's cache key. Execute creates it (with a marker naming the
	// stage kind and run: a work directory of another run is refused, never
	// resumed), holds the output's lock while the stage uses it, and removes it
	// after publication.
	Work string
}

// Builder is a stage that runs as one process.
type Builder interface {
	Options
	// Build writes the artifact's files into dirs.Out and returns its manifest's
	// params and inputs (Execute fills in type, stage, version, tool and files).
	Build(ctx context.Context, env *Env, dirs Dirs) (artifact.Manifest, error)
}

// Sharder is a stage whose work splits into shards done by separate processes.
type Sharder interface {
	Options
	// Shard is the shard this process does (the embedded Sharding flags).
	Shard() Sharding
	// WriteShard does shard index of count: it writes its files into partial,
	// each atomically, and skips files already there (a rerun resumes). A shard's
	// files must not depend on count.
	WriteShard(ctx context.Context, env *Env, partial string, index, count int) error
	// Assemble moves the finished shards' files from partial into dir (the
	// artifact being published) and returns the manifest's params and inputs. It
	// runs once, in the process that finished the last shard.
	Assemble(ctx context.Context, env *Env, partial, dir string) (artifact.Manifest, error)
}

// Sharding are the flags of a stage that can shard; embed it in Options (it
// provides Sharder's Shard method).
type Sharding struct {
	ShardIndex int `help:"This process's shard, in [0, --num-shards)." env:"SLURM_ARRAY_TASK_ID,JOB_COMPLETION_INDEX" pipeline:"-"`
	NumShards  int `default:"1" help:"Number of processes sharing the work; the one that finishes the last shard publishes." env:"SLURM_ARRAY_TASK_COUNT" pipeline:"-"`
}

// Shard implements Sharder's Shard for the Options that embed Sharding.
func (s Sharding) Shard() Sharding { return s }

// Env is what every stage gets from the program running it, bound once.
type Env struct {
	Log  *slog.Logger
	Tool string // the producing tool and version, for manifests ("mdlm v0.3.0")
	// Backend returns the compute backend (created on first use) and its
	// description for manifests; stages that compute nothing never call it.
	Backend func() (compute.Backend, string, error)
	// Progress starts a progress display (a bar on a terminal, nothing elsewhere).
	Progress func(label string) Progress
}

// Progress reports a long operation's progress.
type Progress interface {
	Update(done, total int, extra string)
	Bytes(n int64)
	Done()
}

type noProgress struct{}

func (noProgress) Update(int, int, string) {}
func (noProgress) Bytes(int64)             {}
func (noProgress) Done()                   {}

// StartProgress starts a progress display, or a silent one if env has none.
func (e *Env) StartProgress(label string) Progress {
	if e == nil || e.Progress == nil {
		return noProgress{}
	}
	return e.Progress(label)
}

// Logger is env's logger, or slog's default.
func (e *Env) Logger() *slog.Logger {
	if e == nil || e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// DataGC lets the garbage collector run 4x less often during a stage that
// allocates per document as it streams (download's JSON decoding,
// train-tokenizer's counting), unless $GOGC is set: on 300 MB, download ran
// 7-15% slower at the default. Stages that reuse their buffers (tokenize,
// pack) run at the default: there the larger heap cost more in page faults
// than the collector saved (bench/README.md, "Data stages: shards share the
// workers"). It returns the undo, for stages run in process by `mdlm run`.
func DataGC() func() {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(400)
	return func() { debug.SetGCPercent(old) }
}

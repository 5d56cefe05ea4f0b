package stage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
)

// Suffixes of the directories Execute keeps beside an output while it is built.
const (
	WorkSuffix    = ".work"    // a Builder's resumable scratch space
	PartialSuffix = ".partial" // a Sharder's finished shards
)

// Names inside a partial directory that belong to the protocol, not the stage.
const (
	doneDir    = ".done"       // one marker file per finished shard: "<index>-of-<count>"
	claimDir   = ".publishing" // created (mkdir) by the one process that publishes
	staleClaim = 30 * time.Minute
)

// Execute runs one stage process: a Builder builds and publishes its output; a
// Sharder does its shard and, if that completed the set, publishes. It returns
// the published manifest, or published false when this process was a shard that
// left publication to another.
func Execute(ctx context.Context, env *Env, def Def, opts Options) (m artifact.Manifest, published bool, err error) {
	out := opts.OutDir()
	if out == "" {
		return m, false, fmt.Errorf("%s: no output directory (-o)", def.Kind)
	}
	switch s := opts.(type) {
	case Sharder:
		return executeSharded(ctx, env, def, s, out)
	case Builder:
		m, err = executeBuild(ctx, env, def, s, out)
		return m, err == nil, err
	}
	return m, false, fmt.Errorf("%s: options %T implement neither stage.Builder nor stage.Sharder", def.Kind, opts)
}

func executeBuild(ctx context.Context, env *Env, def Def, b Builder, out string) (artifact.Manifest, error) {
	work := out + WorkSuffix
	m, err := artifact.PublishBuilt(out, func(tmp string) (artifact.Manifest, error) {
		m, err := b.Build(ctx, env, Dirs{Out: tmp, Work: work})
		return stamp(m, def, env), err
	})
	if err != nil {
		return m, err
	}
	if err := os.RemoveAll(work); err != nil {
		env.Logger().Warn("work directory not removed", "dir", work, "err", err)
	}
	env.Logger().Info("published", "stage", def.Kind, "out", out, "digest", m.Digest())
	return m, nil
}

// stamp fills in what every manifest says about its producer.
func stamp(m artifact.Manifest, def Def, env *Env) artifact.Manifest {
	m.Type, m.Stage, m.Version = def.Output, def.Kind, def.Version
	if env != nil {
		m.Tool = env.Tool
	}
	return m
}

// executeSharded is the shard protocol. Each process writes its shard's files
// into <out>.partial (the stage skips files already there), then a marker
// .done/<index>-of-<count>. The process that sees every marker of its count
// claims publication with an atomic mkdir of .publishing (a claim older than
// 30 minutes is taken over: its owner died mid-publication), lets the stage
// assemble the artifact from the partial directory, publishes it atomically and
// removes the partial directory.
func executeSharded(ctx context.Context, env *Env, def Def, s Sharder, out string) (artifact.Manifest, bool, error) {
	var m artifact.Manifest
	sh := s.Shard()
	if sh.NumShards <= 0 {
		sh.NumShards = 1
	}
	if sh.ShardIndex < 0 || sh.ShardIndex >= sh.NumShards {
		return m, false, fmt.Errorf("%s: --shard-index %d outside [0, --num-shards %d)", def.Kind, sh.ShardIndex, sh.NumShards)
	}
	partial := out + PartialSuffix
	if err := os.MkdirAll(filepath.Join(partial, doneDir), 0o755); err != nil {
		return m, false, fmt.Errorf("%s: %w", def.Kind, err)
	}
	if err := s.WriteShard(ctx, env, partial, sh.ShardIndex, sh.NumShards); err != nil {
		return m, false, err
	}
	// The marker is an empty file whose presence is all that counts, written
	// after the shard's files were synced: it needs no fsync of its own (lost
	// in a crash, the shard reruns and skips its files).
	marker := filepath.Join(partial, doneDir, fmt.Sprintf("%d-of-%d", sh.ShardIndex, sh.NumShards))
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return m, false, fmt.Errorf("%s: shard marker: %w", def.Kind, err)
	}
	log := env.Logger()
	if n := finishedShards(partial, sh.NumShards); n < sh.NumShards {
		log.Info("shard done; the process that finishes the last shard publishes", "stage", def.Kind,
			"shard", sh.ShardIndex, "shards", sh.NumShards, "finished", n)
		return m, false, nil
	}
	if err := claim(partial, env); err != nil {
		log.Info("shard done; another process is publishing", "stage", def.Kind, "shard", sh.ShardIndex, "claim", err)
		return m, false, nil
	}
	m, err := artifact.PublishBuilt(out, func(tmp string) (artifact.Manifest, error) {
		m, err := s.Assemble(ctx, env, partial, tmp)
		return stamp(m, def, env), err
	})
	if err != nil {
		os.Remove(filepath.Join(partial, claimDir))
		return m, false, err
	}
	if err := os.RemoveAll(partial); err != nil {
		log.Warn("partial directory not removed", "dir", partial, "err", err)
	}
	log.Info("published", "stage", def.Kind, "out", out, "digest", m.Digest(), "shards", sh.NumShards)
	return m, true, nil
}

// finishedShards counts the distinct shards of count whose markers exist.
func finishedShards(partial string, count int) int {
	entries, _ := os.ReadDir(filepath.Join(partial, doneDir))
	n := 0
	for _, e := range entries {
		i, c, ok := strings.Cut(e.Name(), "-of-")
		if !ok {
			continue
		}
		idx, err1 := strconv.Atoi(i)
		cnt, err2 := strconv.Atoi(c)
		if err1 == nil && err2 == nil && cnt == count && idx >= 0 && idx < count {
			n++
		}
	}
	return n
}

// claim makes this process the one that publishes.
func claim(partial string, env *Env) error {
	path := filepath.Join(partial, claimDir)
	err := os.Mkdir(path, 0o755)
	if err == nil {
		return nil
	}
	st, serr := os.Stat(path)
	if serr != nil || time.Since(st.ModTime()) < staleClaim {
		return err
	}
	env.Logger().Warn("taking over a stale publishing claim (its process died?)", "claim", path,
		"age", time.Since(st.ModTime()).Round(time.Second))
	if err := os.Remove(path); err != nil {
		return err
	}
	return os.Mkdir(path, 0o755)
}

// MoveFiles moves the named files (relative paths) from src into dst, creating
// subdirectories: how a Sharder's Assemble usually fills the artifact.
func MoveFiles(src, dst string, names []string) error {
	for _, n := range names {
		to := filepath.Join(dst, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(src, filepath.FromSlash(n)), to); err != nil {
			return err
		}
	}
	return nil
}

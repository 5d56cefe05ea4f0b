package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/internal/filelock"
	"github.com/mdlm-go/mdlm/objstore"
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
//
// Around the stage's code Execute guarantees (issue 19): the output path is
// one publication may use (artifact.CheckOutputPath, with the stage's own
// input paths; artifact.CheckReplaceable), so nothing the user made is
// replaced; one writer per output: artifact.LockPath(out) is held for a
// Builder's whole build and for a Sharder's publication (shards of one run
// write concurrently under a shared lock on the partial directory), and a
// process that waited for another finds the artifact it would build
// published (same Manifest.Run, verified) and skips; <out>.work and <out>.partial carry
// a marker naming their stage kind and run, so an unmarked directory is
// refused and a partial of another run is discarded, never merged; and the
// temporary names a killed process left for the output are removed.
//
// Inputs and the output may be s3://bucket/prefix (issue 25): an s3:// input
// is fetched once into the local verified cache and the stage reads that
// copy, unless its field is tagged stream:"" (stream.go: the stage streams
// its Parquet shards, verified, and no copy is made); an s3:// output is built in a local mirror and published with
// objstore.Put, its manifest last (remote.go).
func Execute(ctx context.Context, env *Env, def Def, opts Options) (m artifact.Manifest, published bool, err error) {
	out, err := OutDir(def, opts)
	if err != nil {
		return m, false, err
	}
	if def.DataGC {
		defer DataGC()()
	}
	r := newRemote()
	restore, err := r.localInputs(ctx, env, def, opts)
	if err != nil {
		return m, false, err
	}
	defer restore()
	if objstore.IsURL(out) {
		u, err := objstore.ParseURL(out)
		if err != nil {
			return m, false, fmt.Errorf("%s: -o: %w", def.Kind, err)
		}
		return r.executeRemote(ctx, env, def, opts, u)
	}
	m, published, err = execute(ctx, env, def, opts, out)
	return m, published, interrupted(def, out, err)
}

// interrupted says where a resumable stage kept its progress.
func interrupted(def Def, out string, err error) error {
	if def.Resumable && errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: interrupted; progress is kept in %s: rerun the same command to continue", def.Kind, out+WorkSuffix)
	}
	return err
}

func execute(ctx context.Context, env *Env, def Def, opts Options, out string) (m artifact.Manifest, published bool, err error) {
	run, inputs, err := Fingerprint(def, opts)
	if err != nil {
		return m, false, err
	}
	if err := artifact.CheckOutputPath(out, inputs...); err != nil {
		return m, false, fmt.Errorf("%s: %w", def.Kind, err)
	}
	if err := artifact.CheckReplaceable(out); err != nil {
		return m, false, fmt.Errorf("%s: %w", def.Kind, err)
	}
	switch s := opts.(type) {
	case Sharder:
		return executeSharded(ctx, env, def, s, out, run)
	case Builder:
		return executeBuild(ctx, env, def, s, out, run)
	}
	return m, false, fmt.Errorf("%s: options %T implement neither stage.Builder nor stage.Sharder", def.Kind, opts)
}

// OutDir is the value of the flag of opts tagged output:"", the artifact
// directory to create; an error if there is none or it is empty.
func OutDir(def Def, opts Options) (string, error) {
	v := reflect.ValueOf(opts)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if _, ok := f.Tag.Lookup("output"); ok && f.Type.Kind() == reflect.String {
				if out := v.Field(i).String(); out != "" {
					return out, nil
				}
				break
			}
		}
	}
	return "", fmt.Errorf("%s: no output directory (-o)", def.Kind)
}

// lockOutput takes the output's exclusive lock, saying so when it must wait
// (waited), and removes what killed writers left behind.
func lockOutput(ctx context.Context, env *Env, def Def, out string) (lock *filelock.Lock, waited bool, err error) {
	lock, err = filelock.Acquire(ctx, artifact.LockPath(out), func() {
		waited = true
		env.Logger().Info("waiting for another process writing "+out, "stage", def.Kind, "lock", artifact.LockPath(out))
	})
	if err != nil {
		return nil, waited, fmt.Errorf("%s: %w", def.Kind, err)
	}
	for _, p := range []string{out, out + WorkSuffix, out + PartialSuffix} {
		removed, err := atomicfile.RemoveStale(p)
		for _, r := range removed {
			env.Logger().Info("removed a temporary left by a killed run", "path", r)
		}
		if err != nil {
			env.Logger().Warn("stale temporary not removed", "out", p, "err", err)
		}
	}
	return lock, waited, nil
}

// publishedRun returns out's manifest when this process waited for another
// writer of out and out is now an artifact of def's type made by the same run
// that verifies. A process that did not wait rebuilds as it always did (a
// pipeline that decided to rerun a stage is not second-guessed).
func publishedRun(out string, def Def, run string, waited bool) (artifact.Manifest, bool) {
	if !waited {
		return artifact.Manifest{}, false
	}
	m, err := artifact.Read(out, def.Output)
	if err != nil || m.Run != run || artifact.Verify(out, m) != nil {
		return m, false
	}
	return m, true
}

// ownedDir makes sure dir (a .work or .partial) belongs to this stage kind and
// run, creating it with its marker if absent. An unmarked dir, or one of
// another kind, is refused; one of another run is refused, or discarded
// (logged) when discard is set.
func ownedDir(env *Env, def Def, dir string, want owner, discard bool) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return createOwned(dir, want)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", def.Kind, err)
	}
	got, ok := readOwner(dir)
	switch {
	case !fi.IsDir() || !ok:
		return fmt.Errorf("%s: %s exists but was not made by mdlm %s (no %s); remove it yourself or choose another -o",
			def.Kind, dir, def.Kind, ownerName)
	case got.Kind != want.Kind:
		return fmt.Errorf("%s: %s belongs to stage %s; remove it yourself or choose another -o", def.Kind, dir, got.Kind)
	case got == want:
		return nil
	case !discard:
		return fmt.Errorf("%s: %s belongs to another run of %s (other options or inputs); rerun with the same options, "+
			"or remove it yourself to start over", def.Kind, dir, def.Kind)
	}
	env.Logger().Warn("discarding the shards of another run (other options, inputs or shard count)", "stage", def.Kind,
		"dir", dir, "run", got.Run, "shards", got.Shards, "this_run", want.Run, "this_shards", want.Shards)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("%s: discarding %s: %w", def.Kind, dir, err)
	}
	return createOwned(dir, want)
}

func executeBuild(ctx context.Context, env *Env, def Def, b Builder, out, run string) (artifact.Manifest, bool, error) {
	var m artifact.Manifest
	lock, waited, err := lockOutput(ctx, env, def, out)
	if err != nil {
		return m, false, err
	}
	defer lock.Unlock()
	if m, ok := publishedRun(out, def, run, waited); ok {
		env.Logger().Info("already published by another process, with the same options and inputs; skipping", "stage", def.Kind,
			"out", out, "digest", m.Digest())
		return m, true, nil
	}
	work := out + WorkSuffix
	if err := ownedDir(env, def, work, owner{Kind: def.Kind, Run: run}, false); err != nil {
		return m, false, err
	}
	m, err = artifact.PublishBuilt(out, func(tmp string) (artifact.Manifest, error) {
		m, err := b.Build(ctx, env, Dirs{Out: tmp, Work: work})
		return stamp(m, def, env, run), err
	})
	if err != nil {
		dropUnused(work)
		return m, false, err
	}
	if err := os.RemoveAll(work); err != nil {
		env.Logger().Warn("work directory not removed", "dir", work, "err", err)
	}
	env.Logger().Info("published", "stage", def.Kind, "out", out, "digest", m.Digest())
	return m, true, nil
}

// dropUnused removes a work directory that a failed build left holding
// nothing but its owner marker, so that a run refused before it wrote
// anything (a bad flag value, a missing input) does not pin the next run to
// its options.
func dropUnused(work string) {
	entries, err := os.ReadDir(work)
	if err == nil && len(entries) == 1 && entries[0].Name() == ownerName {
		os.RemoveAll(work)
	}
}

// stamp fills in what every manifest says about its producer.
func stamp(m artifact.Manifest, def Def, env *Env, run string) artifact.Manifest {
	m.Type, m.Stage, m.Version, m.Run = def.Output, def.Kind, def.Version, run
	if env != nil {
		m.Tool = env.Tool
	}
	return m
}

// executeSharded is the shard protocol. Under the output lock a process makes
// sure <out>.partial belongs to its run (kind, fingerprint and shard count in
// its marker; a partial of another run is discarded once no shard of that run
// still writes in it), then takes a shared lock on the partial directory and
// releases the output lock: shards of one run write concurrently. Each writes
// its shard's files into the partial directory (the stage skips files already
// there) under a lock of its shard index, then a marker
// .done/<index>-of-<count>. The process that sees every marker of its count
// takes the output lock again, claims publication with an atomic mkdir of
// .publishing (a claim older than 30 minutes is taken over: its owner died
// mid-publication), waits until no shard writes, lets the stage assemble the
// artifact from the partial directory, publishes it atomically and removes
// the partial directory.
func executeSharded(ctx context.Context, env *Env, def Def, s Sharder, out, run string) (artifact.Manifest, bool, error) {
	var m artifact.Manifest
	sh := s.Shard()
	if sh.NumShards <= 0 {
		sh.NumShards = 1
	}
	if sh.ShardIndex < 0 || sh.ShardIndex >= sh.NumShards {
		return m, false, fmt.Errorf("%s: --shard-index %d outside [0, --num-shards %d)", def.Kind, sh.ShardIndex, sh.NumShards)
	}
	log := env.Logger()
	partial := out + PartialSuffix
	own := owner{Kind: def.Kind, Run: run, Shards: sh.NumShards}
	done, err := writeShard(ctx, env, def, s, out, own, sh)
	if err != nil || done {
		return m, false, err
	}
	if n := finishedShards(partial, sh.NumShards); n < sh.NumShards {
		log.Info("shard done; the process that finishes the last shard publishes", "stage", def.Kind,
			"shard", sh.ShardIndex, "shards", sh.NumShards, "finished", n)
		return m, false, nil
	}
	lock, waited, err := lockOutput(ctx, env, def, out)
	if err != nil {
		return m, false, err
	}
	defer lock.Unlock()
	if m, ok := publishedRun(out, def, run, waited); ok {
		log.Info("shard done; already published by another process", "stage", def.Kind, "shard", sh.ShardIndex, "out", out)
		return m, false, nil
	}
	if got, ok := readOwner(partial); !ok || got != own || finishedShards(partial, sh.NumShards) < sh.NumShards {
		log.Info("shard done; the partial directory changed hands before publication", "stage", def.Kind, "shard", sh.ShardIndex)
		return m, false, nil
	}
	if err := claim(partial, env); err != nil {
		log.Info("shard done; another process is publishing", "stage", def.Kind, "shard", sh.ShardIndex, "claim", err)
		return m, false, nil
	}
	writers, err := filelock.Acquire(ctx, artifact.LockPath(partial), func() {
		log.Info("waiting for shard processes still writing "+partial, "stage", def.Kind)
	})
	if err != nil {
		os.Remove(filepath.Join(partial, claimDir))
		return m, false, fmt.Errorf("%s: %w", def.Kind, err)
	}
	defer writers.Unlock()
	m, err = artifact.PublishBuilt(out, func(tmp string) (artifact.Manifest, error) {
		m, err := s.Assemble(ctx, env, partial, tmp)
		return stamp(m, def, env, run), err
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

// writeShard prepares the partial directory under the output lock and writes
// this process's shard under a shared lock on it; done reports that the run
// was already published, so there is nothing left to do.
func writeShard(ctx context.Context, env *Env, def Def, s Sharder, out string, own owner, sh Sharding) (done bool, err error) {
	partial := out + PartialSuffix
	lock, waited, err := lockOutput(ctx, env, def, out)
	if err != nil {
		return false, err
	}
	if _, ok := publishedRun(out, def, own.Run, waited); ok {
		lock.Unlock()
		env.Logger().Info("already published by another process, with the same options and inputs; skipping", "stage", def.Kind, "out", out)
		return true, nil
	}
	writing, err := filelock.TryAcquireShared(artifact.LockPath(partial))
	if errors.Is(err, filelock.ErrLocked) {
		err = fmt.Errorf("%s: %s is being published; rerun this shard when that ends", def.Kind, partial)
	}
	if err == nil {
		err = preparePartial(ctx, env, def, partial, own, &writing)
	}
	lock.Unlock()
	if err != nil {
		writing.Unlock()
		return false, err
	}
	defer writing.Unlock()
	shardLock, err := filelock.Acquire(ctx, filepath.Join(partial, doneDir, fmt.Sprintf(".shard-%d.lock", sh.ShardIndex)), func() {
		env.Logger().Info("waiting for another process writing the same shard", "stage", def.Kind, "shard", sh.ShardIndex)
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", def.Kind, err)
	}
	defer shardLock.Unlock()
	marker := filepath.Join(partial, doneDir, fmt.Sprintf("%d-of-%d", sh.ShardIndex, sh.NumShards))
	if _, err := os.Stat(marker); err == nil {
		env.Logger().Info("shard already written", "stage", def.Kind, "shard", sh.ShardIndex)
		return false, nil
	}
	if err := s.WriteShard(ctx, env, partial, sh.ShardIndex, sh.NumShards); err != nil {
		return false, err
	}
	// The marker is an empty file whose presence is all that counts, written
	// after the shard's files were synced: it needs no fsync of its own (lost
	// in a crash, the shard reruns and skips its files).
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return false, fmt.Errorf("%s: shard marker: %w", def.Kind, err)
	}
	return false, nil
}

// preparePartial makes partial belong to own's run. It runs under the output
// lock holding a shared lock on the partial directory (*writing); to discard a
// partial of another run it trades that for the exclusive lock, waiting until
// that run's shards have stopped writing.
func preparePartial(ctx context.Context, env *Env, def Def, partial string, own owner, writing **filelock.Lock) error {
	if got, ok := readOwner(partial); ok && got.Kind == own.Kind && got != own {
		(*writing).Unlock()
		excl, err := filelock.Acquire(ctx, artifact.LockPath(partial), func() {
			env.Logger().Info("waiting for the shards of another run to stop writing "+partial, "stage", def.Kind)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", def.Kind, err)
		}
		err = ownedDir(env, def, partial, own, true)
		excl.Unlock()
		if err != nil {
			return err
		}
		if *writing, err = filelock.AcquireShared(ctx, artifact.LockPath(partial), nil); err != nil {
			return fmt.Errorf("%s: %w", def.Kind, err)
		}
	} else if err := ownedDir(env, def, partial, own, false); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(partial, doneDir), 0o755)
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

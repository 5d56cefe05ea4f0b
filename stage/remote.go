package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/internal/filelock"
	"github.com/mdlm-go/mdlm/objstore"
)

// remote is the object store side of one Execute: the store (connected on
// first use) and where the local copies go.
type remote struct {
	store *objstore.Store
	root  string // hub.CacheRoot(): the fetch cache and the output mirror
}

func (r *remote) open(ctx context.Context, env *Env) (*objstore.Store, error) {
	if r.store == nil {
		s, err := objstore.Open(ctx)
		if err != nil {
			return nil, err
		}
		s.Log = env.Logger()
		r.store = s
	}
	return r.store, nil
}

// localInputs replaces every s3:// value of an input:"..." field of opts by
// the local verified copy of the artifact there (objstore.Fetch into the
// cache keyed by its manifest digest), so the stage reads local files and its
// fingerprint takes the artifact's digest, not the URL; a field tagged
// stream:"" gets a stub directory holding the manifest instead (stream). It
// returns the undo.
func (r *remote) localInputs(ctx context.Context, env *Env, def Def, opts Options) (func(), error) {
	var undo []func()
	restore := func() {
		for _, u := range undo {
			u()
		}
	}
	err := eachInput(reflect.ValueOf(opts), func(name string, stream bool, v reflect.Value) error {
		switch x := v.Interface().(type) {
		case string:
			fetch := r.fetch
			if stream {
				fetch = func(ctx context.Context, env *Env, def Def, name, val string) (string, error) {
					dir, remove, err := r.stream(ctx, env, def, name, val)
					if remove != nil {
						undo = append(undo, remove)
					}
					return dir, err
				}
			}
			local, err := fetch(ctx, env, def, name, x)
			if err != nil || local == x {
				return err
			}
			v.SetString(local)
			undo = append(undo, func() { v.SetString(x) })
		case []string:
			vals := append([]string(nil), x...)
			changed := false
			for i, val := range vals {
				local, err := r.fetch(ctx, env, def, name, val)
				if err != nil {
					return err
				}
				changed = changed || local != val
				vals[i] = local
			}
			if changed {
				v.Set(reflect.ValueOf(vals))
				undo = append(undo, func() { v.Set(reflect.ValueOf(x)) })
			}
		}
		return nil
	})
	if err != nil {
		restore()
		return func() {}, err
	}
	return restore, nil
}

// fetch returns the local copy of an s3:// input value, or the value itself.
func (r *remote) fetch(ctx context.Context, env *Env, def Def, input, val string) (string, error) {
	if !objstore.IsURL(val) {
		return val, nil
	}
	u, err := objstore.ParseURL(val)
	if err != nil {
		return "", fmt.Errorf("%s: input %s: %w", def.Kind, input, err)
	}
	s, err := r.open(ctx, env)
	if err != nil {
		return "", fmt.Errorf("%s: input %s %s: %w", def.Kind, input, val, err)
	}
	dir, m, err := s.Fetch(ctx, u, r.root)
	if err != nil {
		return "", fmt.Errorf("%s: input %s: %w", def.Kind, input, err)
	}
	env.Logger().Info("input from the object store", "stage", def.Kind, "url", val, "digest", m.Digest(), "local", dir)
	return dir, nil
}

// stream returns, for an s3:// input value, the stub directory standing for
// the artifact there (stream.go: only its manifest and small files come
// down; the stage streams its shards), with its removal; other values come
// back as they are.
func (r *remote) stream(ctx context.Context, env *Env, def Def, input, val string) (string, func(), error) {
	if !objstore.IsURL(val) {
		return val, nil, nil
	}
	u, err := objstore.ParseURL(val)
	if err != nil {
		return "", nil, fmt.Errorf("%s: input %s: %w", def.Kind, input, err)
	}
	s, err := r.open(ctx, env)
	if err != nil {
		return "", nil, fmt.Errorf("%s: input %s %s: %w", def.Kind, input, val, err)
	}
	dir, remove, err := stub(ctx, s, u)
	if err != nil {
		return "", nil, fmt.Errorf("%s: input %s: %w", def.Kind, input, err)
	}
	env.Logger().Info("input streamed from the object store", "stage", def.Kind, "url", val, "stub", dir)
	return dir, remove, nil
}

// eachInput calls fn, with the input's name and whether it is tagged
// stream:"" (the stage reads it through OpenInputFile), on every settable
// string or []string field tagged input:"..." of the struct v points to
// (embedded structs included).
func eachInput(v reflect.Value, fn func(name string, stream bool, v reflect.Value) error) error {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && fv.Kind() == reflect.Struct {
			if err := eachInput(fv.Addr(), fn); err != nil {
				return err
			}
			continue
		}
		input, ok := f.Tag.Lookup("input")
		if !ok || !fv.CanSet() {
			continue
		}
		if k := fv.Kind(); k == reflect.String || k == reflect.Slice && fv.Type().Elem().Kind() == reflect.String {
			_, stream := f.Tag.Lookup("stream")
			if err := fn(input, stream, fv); err != nil {
				return err
			}
		}
	}
	return nil
}

// setOutDir sets the output:"" field of opts to dir and returns the undo.
func setOutDir(opts Options, dir string) func() {
	v := reflect.ValueOf(opts)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	for i := 0; i < v.NumField(); i++ {
		if _, ok := v.Type().Field(i).Tag.Lookup("output"); ok && v.Field(i).Kind() == reflect.String {
			old := v.Field(i).String()
			v.Field(i).SetString(dir)
			return func() { v.Field(i).SetString(old) }
		}
	}
	return func() {}
}

// executeRemote runs a stage whose output is the prefix u of an object
// store. The output is built in the local mirror of u (objstore.MirrorDir
// under the cache root), with every guarantee Execute gives a local output,
// then published with objstore.Put: files first, artifact.json last, so
// nothing is visible at u until it is complete. A prefix that already holds
// this run's artifact (same stage, options and input digests) is not built
// again; one holding another artifact is refused before anything runs (a
// committed artifact is never written over). A local copy of this run left
// by an interrupted upload is published without being rebuilt, and the
// upload resumes its multipart parts. After publication the local copy moves
// into the fetch cache, where a later stage reading u finds it.
func (r *remote) executeRemote(ctx context.Context, env *Env, def Def, opts Options, u objstore.URL) (artifact.Manifest, bool, error) {
	var m artifact.Manifest
	run, _, err := Fingerprint(def, opts)
	if err != nil {
		return m, false, err
	}
	s, err := r.open(ctx, env)
	if err != nil {
		return m, false, fmt.Errorf("%s: -o %s: %w", def.Kind, u, err)
	}
	if m, done, err := r.publishedThere(ctx, env, s, def, u, run); done || err != nil {
		return m, done, err
	}
	local, err := objstore.MirrorDir(r.root, u)
	if err != nil {
		return m, false, fmt.Errorf("%s: -o: %w", def.Kind, err)
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return m, false, fmt.Errorf("%s: local mirror of -o %s: %w", def.Kind, u, err)
	}
	defer setOutDir(opts, local)()
	if m, err = artifact.Read(local, def.Output); err != nil || m.Run != run || artifact.Verify(local, m) != nil {
		var published bool
		m, published, err = execute(ctx, env, def, opts, local)
		if err != nil || !published {
			return m, published, interrupted(def, local, err)
		}
	} else {
		env.Logger().Info("publishing the local copy an interrupted run built", "stage", def.Kind, "local", local, "url", u.String())
	}
	m, err = r.publish(ctx, env, s, def, local, u, run)
	return m, err == nil, err
}

// publishedThere reports whether u holds this run's artifact already; another
// committed artifact there is an error.
func (r *remote) publishedThere(ctx context.Context, env *Env, s *objstore.Store, def Def, u objstore.URL, run string) (artifact.Manifest, bool, error) {
	m, ok, err := s.Exists(ctx, u)
	switch {
	case err != nil:
		return m, false, fmt.Errorf("%s: -o: %w", def.Kind, err)
	case !ok:
		return m, false, nil
	case m.Run == run && m.Type == def.Output:
		env.Logger().Info("already published with the same options and inputs; skipping", "stage", def.Kind,
			"url", u.String(), "digest", m.Digest())
		return m, true, nil
	}
	return m, false, fmt.Errorf("%s: -o %s already holds another artifact (%s %s, made by other options or inputs); "+
		"a published artifact is never replaced: choose a new prefix or delete that one", def.Kind, u, m.Type, m.Digest())
}

// publish uploads the local mirror to u holding the output's lock, so that
// no process rebuilds the mirror while its files go up, and moves it into the
// fetch cache. What it publishes is what the mirror holds under the lock: a
// process of the same run may have rebuilt it since this one's build (a stage
// that is not bit-for-bit reproducible gives another digest), and a prefix
// that meanwhile received this run's artifact from another process is kept as
// it is and returned.
func (r *remote) publish(ctx context.Context, env *Env, s *objstore.Store, def Def, local string, u objstore.URL, run string) (artifact.Manifest, error) {
	lock, err := filelock.Acquire(ctx, artifact.LockPath(local), func() {
		env.Logger().Info("waiting for another process writing "+local, "stage", def.Kind)
	})
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("%s: %w", def.Kind, err)
	}
	defer lock.Unlock()
	if have, done, err := r.publishedThere(ctx, env, s, def, u, run); done || err != nil {
		if done {
			r.adopt(env, local, have)
		}
		return have, err
	}
	m, err := artifact.Read(local, def.Output)
	if err != nil || m.Run != run {
		return m, fmt.Errorf("%s: the local copy in %s changed hands before it was uploaded (another run wrote it); rerun", def.Kind, local)
	}
	if _, err := s.Put(ctx, local, u); err != nil {
		if errors.Is(err, context.Canceled) {
			return m, fmt.Errorf("%s: upload to %s interrupted; the artifact is kept in %s and a rerun of the same command resumes the upload: %w",
				def.Kind, u, local, err)
		}
		return m, fmt.Errorf("%s: -o: %w", def.Kind, err)
	}
	env.Logger().Info("published to the object store", "stage", def.Kind, "url", u.String(), "digest", m.Digest())
	r.adopt(env, local, m)
	return m, nil
}

// adopt moves the local copy, if it is m's artifact, into the fetch cache; a
// failure only costs a later download, so it is logged.
func (r *remote) adopt(env *Env, local string, m artifact.Manifest) {
	if have, err := artifact.Read(local, ""); err != nil || have.Digest() != m.Digest() {
		return // gone (another process moved it), or another build: left for the next run
	}
	if err := objstore.Adopt(local, r.root, m); err != nil {
		env.Logger().Warn("published copy not moved into the object store cache", "dir", local, "err", err)
	}
}

// newRemote is the object store side of an Execute, or nil when opts name no
// s3:// location.
func newRemote() *remote { return &remote{root: hub.CacheRoot()} }

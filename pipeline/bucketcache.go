package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/internal/filelock"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/stage"
)

// A cache or shared cache in a bucket (issue 25). `--shared s3://bucket/p`
// keeps the shared cache's contract (sharedcache.go) with objstore doing the
// copies: outputs live under p/<stage>-<key>/, every file is verified against
// the manifest on the way down, and the manifest is written last on the way
// up (objstore.Put), so a half-written copy is never seen and two publishers
// of one key both succeed.
//
// `--cache-dir s3://bucket/p` makes the bucket the cache of record. Stages
// compute on local files, so the engine keeps a local working mirror
// (LocalMirror); an output found in the bucket settles its stage without
// being downloaded, and is fetched (once, verified) only when a stage that
// runs here reads it, unless that stage streams it from the bucket
// (stream.go). Every output built or found only in the mirror is pushed to
// the bucket.

// BucketCache is a SharedCache on an object store prefix.
type BucketCache struct {
	store *objstore.Store
	url   objstore.URL

	mu      sync.Mutex
	damaged map[string][]string // output name -> files a Pull found damaged, for Push to upload again
}

// OpenBucketCache connects to the store the environment configures
// (objstore.ConfigFromEnv) and checks that the bucket answers with the
// credentials given: a missing bucket or refused credentials are an error
// naming the bucket, never a credential.
func OpenBucketCache(ctx context.Context, loc string) (*BucketCache, error) {
	u, err := objstore.ParseURL(loc)
	if err != nil {
		return nil, err
	}
	cfg, err := objstore.ConfigFromEnv()
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", u, err)
	}
	st, err := objstore.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", u, err)
	}
	b := &BucketCache{store: st, url: u}
	return b, b.probe(ctx)
}

// NewBucketCache is a BucketCache on a store already connected (tests).
func NewBucketCache(st *objstore.Store, u objstore.URL) *BucketCache {
	return &BucketCache{store: st, url: u}
}

// probe reads the manifest of the cache's own prefix, which holds none: "no
// artifact" means the bucket answered; anything else is the store's error.
func (b *BucketCache) probe(ctx context.Context) error {
	_, _, err := b.store.Manifest(ctx, b.url)
	if err == nil || errors.Is(err, objstore.ErrNoArtifact) {
		return nil
	}
	return fmt.Errorf("cache %s: %w", b.url, err)
}

func (b *BucketCache) at(name string) (objstore.URL, error) {
	u, err := b.url.Join(name)
	if err != nil {
		return u, fmt.Errorf("cache %s: output %q: %w", b.url, name, err)
	}
	return u, nil
}

// Digest implements SharedCache: the digest of a committed copy of the stage's
// output type whose every object is there with its recorded size and sha256.
func (b *BucketCache) Digest(ctx context.Context, sp stage.Spec, name string) (string, error) {
	u, err := b.at(name)
	if err != nil {
		return "", err
	}
	m, ok, err := b.store.Exists(ctx, u)
	if err != nil || !ok {
		return "", err
	}
	if sp.Output != "" && m.Type != sp.Output {
		return "", fmt.Errorf("%s holds a %q, not the %q stage %s makes", u, m.Type, sp.Output, sp.Kind)
	}
	return m.Digest(), nil
}

// Pull implements SharedCache: objstore.Get verifies every file before the
// directory appears at out.
func (b *BucketCache) Pull(ctx context.Context, sp stage.Spec, out string) (string, error) {
	u, err := b.at(filepath.Base(out))
	if err != nil {
		return "", err
	}
	m, err := b.store.Get(ctx, u, out)
	if bad := objstore.DamagedFiles(err); len(bad) > 0 {
		b.noteDamaged(filepath.Base(out), bad)
	}
	if err != nil {
		return "", err
	}
	if sp.Output != "" && m.Type != sp.Output {
		return "", fmt.Errorf("%s holds a %q, not the %q stage %s makes", u, m.Type, sp.Output, sp.Kind)
	}
	if got := outputDigest(sp, out); got != m.Digest() {
		return "", fmt.Errorf("pulled %s from %s, but the copy does not verify", filepath.Base(out), b.url)
	}
	return m.Digest(), nil
}

// Push implements SharedCache: objstore.Put writes the manifest last and
// succeeds when the same artifact is there already. As in a directory, a
// complete copy there of another digest (a stage that is not bit-for-bit
// reproducible, built twice) is kept and the push succeeds.
//
// A copy there that a Pull of this process found damaged (an object whose
// bytes changed behind the store's back) is repaired: objstore.Repair uploads
// those files again, and objstore.Put itself those whose size or recorded
// sha256 is wrong. A damaged copy of another digest cannot be repaired from
// here; it is left, with a warning naming it.
func (b *BucketCache) Push(ctx context.Context, sp stage.Spec, out string) error {
	name := filepath.Base(out)
	u, err := b.at(name)
	if err != nil {
		return err
	}
	bad := b.takeDamaged(name)
	if len(bad) == 0 {
		if dig, err := b.Digest(ctx, sp, name); err != nil || dig != "" {
			return err
		}
	}
	_, err = b.store.Repair(ctx, out, u, bad)
	if errors.Is(err, objstore.ErrOtherArtifact) && len(bad) > 0 {
		slog.Warn("the damaged copy in the bucket holds another artifact and is not repaired; delete it to publish this one",
			"url", u.String(), "err", err)
		return nil
	}
	return err
}

// noteDamaged records files of the output name that a Pull found damaged.
func (b *BucketCache) noteDamaged(name string, files []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.damaged == nil {
		b.damaged = map[string][]string{}
	}
	b.damaged[name] = append(b.damaged[name], files...)
}

// takeDamaged returns and forgets the damaged files recorded for name.
func (b *BucketCache) takeDamaged(name string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	bad := b.damaged[name]
	delete(b.damaged, name)
	return bad
}

func (b *BucketCache) String() string { return b.url.String() }

// LocalMirror is where the stages of a pipeline whose cache is in the bucket
// loc compute: $MDLM_CACHE (default ~/.cache/mdlm/hub, hub.CacheRoot) /
// s3/<bucket>/<prefix>. Any machine may start from an empty one.
func LocalMirror(loc string) (string, error) {
	u, err := objstore.ParseURL(loc)
	if err != nil {
		return "", err
	}
	dir := filepath.Join("s3", u.Bucket, filepath.FromSlash(u.Prefix))
	if !filepath.IsLocal(dir) {
		return "", fmt.Errorf("cache %s: prefix does not name a local directory", loc)
	}
	return filepath.Join(hub.CacheRoot(), dir), nil
}

// openBuckets holds the bucket caches this process opened, by URL: one
// connection (and one check) per process.
var openBuckets struct {
	sync.Mutex
	m map[string]*BucketCache
}

// bucketFor opens the bucket cache at loc once per process.
func bucketFor(ctx context.Context, loc string) (*BucketCache, error) {
	openBuckets.Lock()
	defer openBuckets.Unlock()
	if b, ok := openBuckets.m[loc]; ok {
		return b, nil
	}
	b, err := OpenBucketCache(ctx, loc)
	if err != nil {
		return nil, err
	}
	if openBuckets.m == nil {
		openBuckets.m = map[string]*BucketCache{}
	}
	openBuckets.m[loc] = b
	return b, nil
}

// UseBucketCache makes this process use b for the cache or shared cache at
// loc instead of connecting itself (tests, and callers that opened it).
func UseBucketCache(loc string, b *BucketCache) {
	openBuckets.Lock()
	defer openBuckets.Unlock()
	if openBuckets.m == nil {
		openBuckets.m = map[string]*BucketCache{}
	}
	openBuckets.m[loc] = b
}

// cacheInBucket reports whether the cache of record is a bucket.
func (e *Engine) cacheInBucket() bool { return objstore.IsURL(e.CacheDir) }

// localCache is the directory stages compute in: CacheDir, or the local
// mirror of a cache in a bucket.
func (e *Engine) localCache() (string, error) {
	if !e.cacheInBucket() {
		return e.CacheDir, nil
	}
	return LocalMirror(e.CacheDir)
}

// settleRemote records a stage settled in the bucket cache without fetching
// it: fetchInputs fetches it (or has it streamed) if a stage that runs here
// reads it.
func (x *executor) settleRemote(s *step) {
	if x.remote == nil {
		x.remote = map[string]*step{}
	}
	x.remote[s.st.Name] = s
}

// fetchInputs readies the outputs settled only in the bucket that a stage
// about to run reads. An input whose flag is tagged stream:""
// is left in the bucket: it comes back in the map (input name -> s3://
// address) for the command line to name instead of the mirror (stream.go).
// The others are fetched, verified, each once, under the engine's lock on
// it (other processes of this run may fetch the same input). A streamed
// output stays in x.remote, so a later stage that must read it locally
// still fetches it.
func (x *executor) fetchInputs(ctx context.Context, s *step) (map[string]string, error) {
	streamed := map[string]string{}
	for _, in := range sortedKeys(s.st.Inputs) {
		from := s.st.Inputs[in]
		r, ok := x.remote[from]
		if !ok {
			continue
		}
		url, err := x.streamAddress(ctx, s, in, r)
		if err != nil {
			return nil, fmt.Errorf("input %s (stage %q): %w", in, from, err)
		}
		if url != "" {
			streamed[in] = url
			continue
		}
		if _, err := x.fetch(ctx, r); err != nil {
			return nil, fmt.Errorf("input %s (stage %q): %w", in, from, err)
		}
		delete(x.remote, from)
	}
	return streamed, nil
}

// fetch copies a stage's output from the bucket into the local mirror unless
// a verified copy of the same digest is there. A copy there that is damaged
// or gone is built here instead (rebuild), and fetch says so.
func (x *executor) fetch(ctx context.Context, r *step) (rebuilt bool, err error) {
	held, err := x.lockOutput(ctx, r.st.Name, r.Out)
	if err != nil {
		return false, err
	}
	defer held.Unlock()
	if outputDigest(r.st.Spec, r.Out) == r.digest {
		return false, nil
	}
	if x.Log != nil {
		fmt.Fprintf(x.Log, "%-12s fetching %s from %s\n", r.st.Name, r.Out, x.CacheDir)
	}
	dig, err := x.pull(ctx, r.st.Spec, r.Out, true)
	switch {
	case len(objstore.DamagedFiles(err)) > 0:
		return true, x.rebuild(ctx, r, err)
	case err != nil:
		return false, err // the store did not answer: building would not help the push
	case dig == "":
		return true, x.rebuild(ctx, r, fmt.Errorf("its copy in %s went away", x.sharedName()))
	case dig != r.digest:
		return false, fmt.Errorf("%s now holds %s, not the %s this run settled", x.sharedName(), dig, r.digest)
	}
	return false, nil
}

// rebuild builds here a stage settled in the bucket whose copy there could
// not be fetched (a damaged or missing object, or no copy any more): the
// cache misses, the stage runs, and its push repairs the copy in the bucket.
// The rebuilt output must have the digest the run settled, which the keys of
// the stages reading it were computed from.
func (x *executor) rebuild(ctx context.Context, r *step, cause error) error {
	settled := r.digest
	x.sharedUnusable(r, cause)
	delete(x.cached, r.st.Name) // build records it in the lock file itself
	if x.Log != nil {
		fmt.Fprintf(x.Log, "%-12s rebuilding: its copy in %s is unusable\n", r.st.Name, x.CacheDir)
	}
	if err := x.build(ctx, r); err != nil {
		return err
	}
	if r.digest != settled {
		return fmt.Errorf("rebuilt %s with digest %s, not the %s this run settled (the stage is not reproducible); rerun", r.Out, r.digest, settled)
	}
	return nil
}

// keepInBucket pushes an output found only in the local mirror to the bucket
// cache of record (a run that could not push, or a mirror filled by hand).
func (x *executor) keepInBucket(ctx context.Context, s *step) error {
	if s.source != local || !x.cacheInBucket() {
		return nil
	}
	if x.sharedDigest(ctx, s.st.Spec, s.Out) == s.digest {
		return nil
	}
	if err := x.push(ctx, s.st.Spec, s.Out); err != nil {
		return fmt.Errorf("pipeline %s: stage %q: %w", x.f.Name, s.st.Name, err)
	}
	return nil
}

// OpenCaches connects to the bucket of a cache or shared cache in one and
// checks that it answers, so that a missing bucket or refused credentials
// stop the run before any stage is judged. Directories need nothing.
func (e *Engine) OpenCaches(ctx context.Context) error {
	if e.cacheInBucket() && e.Shared != "" {
		return fmt.Errorf("--shared %s with --cache-dir %s: a cache in a bucket is already shared; give one of them", e.Shared, e.CacheDir)
	}
	_, err := e.shared(ctx)
	return err
}

// buildsOrCopies reports whether this process would build the step's output
// or copy it here (what the engine's lock on it is for): not when it is
// settled locally, nor when it is settled in the bucket cache of record,
// which copies it only if a stage that runs reads it (fetch, locked then).
func (x *executor) buildsOrCopies(s *step) bool {
	if s.source == local || s.source == inShared && x.cacheInBucket() {
		return false
	}
	return x.builds(s)
}

// MaxMirroredBytes bounds one artifact MirrorOutputs copies: the results a
// display reads are small, and a large artifact of an asked-for type is
// skipped (with a warning) rather than downloaded.
var MaxMirroredBytes int64 = 256 << 20

// MirrorOutputs copies into the local mirror of the bucket cache loc
// (LocalMirror) the outputs of the given artifact types, verified, and
// returns the mirror, so that `mdlm show` and `mdlm ui` read a cache in a
// bucket as a local one. names are the outputs to consider (the lock files'
// entries); nil means every output under loc. Outputs of other types
// (checkpoints, packed data) are never downloaded, nor any larger than
// MaxMirroredBytes; a copy already in the mirror with the bucket's digest is
// kept. Each copy is made under the engine's lock on the output, as a run's
// fetch is.
func MirrorOutputs(ctx context.Context, loc string, names []string, types []string, log *slog.Logger) (string, error) {
	b, mirror, names, err := mirrorSetup(ctx, loc, names)
	if err != nil {
		return "", err
	}
	for _, name := range names {
		if err := b.mirrorOne(ctx, mirror, name, types, log); err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			log.Warn("an output of the bucket cache is not shown", "output", name, "err", err)
		}
	}
	return mirror, nil
}

// mirrorSetup opens the bucket cache loc, makes its local mirror and lists
// its outputs when names is nil.
func mirrorSetup(ctx context.Context, loc string, names []string) (*BucketCache, string, []string, error) {
	b, err := bucketFor(ctx, loc)
	if err != nil {
		return nil, "", nil, err
	}
	mirror, err := LocalMirror(loc)
	if err != nil {
		return nil, "", nil, err
	}
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		return nil, "", nil, fmt.Errorf("cache %s: local mirror: %w", loc, err)
	}
	if names == nil {
		if names, err = b.store.Children(ctx, b.url); err != nil {
			return nil, "", nil, fmt.Errorf("cache %s: %w", loc, err)
		}
	}
	return b, mirror, names, nil
}

// mirrorOne copies the output name into mirror if its type is one of types.
func (b *BucketCache) mirrorOne(ctx context.Context, mirror, name string, types []string, log *slog.Logger) error {
	if !filepath.IsLocal(name) || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%q is not an output name", name)
	}
	u, err := b.at(name)
	if err != nil {
		return err
	}
	m, _, err := b.store.Manifest(ctx, u)
	if errors.Is(err, objstore.ErrNoArtifact) {
		return nil // a prefix without a committed artifact is absent
	}
	if err != nil || !slices.Contains(types, m.Type) {
		return err
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	if size > MaxMirroredBytes {
		return fmt.Errorf("%s: %d bytes, more than the %d shown from a bucket", u, size, MaxMirroredBytes)
	}
	out := filepath.Join(mirror, name)
	held, err := filelock.Acquire(ctx, engineLockPath(out), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	defer held.Unlock()
	if have, err := artifact.Read(out, ""); err == nil && have.Digest() == m.Digest() && artifact.Verify(out, have) == nil {
		return nil
	}
	log.Debug("copying an output from the bucket cache", "url", u.String(), "dir", out)
	_, err = b.store.Get(ctx, u, out)
	return err
}

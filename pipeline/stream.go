package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
)

// Streamed inputs with the cache in a bucket (issue 25). A stage that runs
// here reads an output settled only in the bucket either from a verified
// local copy (fetch, bucketcache.go) or, when the flag of its input is
// tagged stream:"" (stage.Flag.Stream: tokenize, pack and train-tokenizer
// read text and token tables shard by shard), from the bucket itself: the
// command line names the output's s3:// address in the bucket cache instead
// of its directory in the local mirror, and the stage streams its Parquet
// shards by ranged GETs, verifying each (stage/stream.go). The cache key is
// unchanged: it covers the input's digest, never its path, and the stage's
// own run fingerprint reads the same manifest (stage/fingerprint.go).
//
// Every executor gets the address: the -j pool, Slurm array tasks and
// Kubernetes Jobs all run `mdlm run FILE --stage NAME`, whose engine makes
// this same choice, and the stage reads the store from the same AWS_*
// environment the engine does (objstore.ConfigFromEnv); no credential is
// ever on a command line.
//
// Damage: a streamed object whose bytes changed behind the store's back
// fails the stage inside its process, with an error naming the object (the
// error's type does not cross a process). So when a stage that streamed an
// input fails, the engine checks each streamed input with a verified fetch,
// as it fetches any input: a damaged copy is rebuilt here and its push
// repairs the bucket, and the stage then runs once more on the local copy.
// It does so too when the stage's error names a streamed input's address
// and that input now verifies (repaired by another process first, or a read
// that failed mid-way). Otherwise the stage's own error is reported
// unchanged (retryLocal).

// streamAddress is the s3:// address the stage s is to read its input in
// from, the output r settled only in the bucket cache, or "" when the input
// is to be fetched: its flag is not tagged stream:"" (train memory-maps its
// Arrow blocks), or the local mirror holds r's manifest already (fetch
// verifies that copy, which costs no download).
func (x *executor) streamAddress(ctx context.Context, s *step, in string, r *step) (string, error) {
	f, ok := s.st.Spec.InputFlag(in)
	if !ok || !f.Stream || f.List || !x.cacheInBucket() {
		return "", nil
	}
	if m, err := artifact.Read(r.Out, r.st.Spec.Output); err == nil && m.Digest() == r.digest {
		return "", nil
	}
	b, err := bucketFor(ctx, x.CacheDir)
	if err != nil {
		return "", err
	}
	u, err := b.at(filepath.Base(r.Out))
	if err != nil {
		return "", err
	}
	if x.Log != nil {
		fmt.Fprintf(x.Log, "%-12s streaming %s from %s\n", r.st.Name, filepath.Base(r.Out), x.CacheDir)
	}
	return u.String(), nil
}

// retryLocal follows a failure (stageErr) of the stage s that streamed the
// inputs in streamed: it fetches each, verified (fetch: a damaged or vanished
// copy in the bucket is rebuilt here and its push repairs the bucket), and
// runs the stage once more on the local copies if one was rebuilt, or if
// stageErr names a streamed input's address (the stage could not read it:
// another process of this run, an array task beside this one, repaired it
// first, or the store failed mid-read). Otherwise the stage failed for its
// own reasons and stageErr is returned unchanged.
func (x *executor) retryLocal(ctx context.Context, s *step, streamed map[string]string, stageErr error) error {
	retry := false
	for _, in := range sortedKeys(streamed) {
		retry = retry || strings.Contains(stageErr.Error(), streamed[in]+"/")
		from := s.st.Inputs[in]
		r, ok := x.remote[from]
		if !ok {
			continue // another input of the same stage fetched it just now
		}
		rebuilt, err := x.fetch(ctx, r)
		if err != nil {
			return fmt.Errorf("%w (checking its streamed input %s, stage %q, failed too: %v)", stageErr, in, from, err)
		}
		delete(x.remote, from)
		retry = retry || rebuilt
	}
	if !retry {
		return stageErr
	}
	slog.Warn("the stage failed reading a streamed input, which now verifies here; running it again on the local copy",
		"stage", s.st.Name, "err", stageErr)
	if x.Log != nil {
		fmt.Fprintf(x.Log, "%-12s running again on the local copy of its streamed input\n", s.st.Name)
	}
	return x.runStage(ctx, s, x.commandLine(s, nil))
}

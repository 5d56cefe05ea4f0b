package stage_test

// Streamed s3:// inputs (issue 25): tokenize and pack read their Parquet
// shards from the bucket by ranged GETs, verified, without a local copy.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/internal/s3test"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages/pack"
	"github.com/mdlm-go/mdlm/stages/tokenize"
	"github.com/mdlm-go/mdlm/stages/traintok"
)

// streamEnv is s3Env with a private TMPDIR, so that the stub directories
// streamed inputs leave (none, when all is well) can be counted.
func streamEnv(t *testing.T) (base, cache, tmp string) {
	base, cache = s3Env(t)
	tmp = t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return base, cache, tmp
}

// noLocalCopy fails if the cache holds any artifact or a stub is left.
func noLocalCopy(t *testing.T, cache, tmp string, digest string) {
	t.Helper()
	if dir, _ := objstore.CacheDir(cache, digest); isArtifact(dir) {
		t.Errorf("the streamed input %s was copied into the cache (%s)", digest, dir)
	}
	if got, _ := filepath.Glob(filepath.Join(tmp, "mdlm-stream-*")); len(got) != 0 {
		t.Errorf("stub directories left behind: %v", got)
	}
}

func someDocs(n int) []string {
	docs := make([]string, n)
	for i := range docs {
		docs[i] = fmt.Sprintf("Document %d says hello to the world, %s.", i, strings.Repeat("again and ", i%7))
	}
	return docs
}

func TestStreamTokenizeFromS3(t *testing.T) {
	base, cache, tmp := streamEnv(t)
	ctx := context.Background()
	text := stagetest.TextArtifact(t, 40, someDocs(150)...) // 4 shards: train-0000[0-3].parquet
	tm := publish(t, text, base+"/text")

	local := filepath.Join(t.TempDir(), "local")
	if _, _, err := stage.Execute(ctx, stagetest.Env(), tokenize.Def, &tokenize.Options{In: text, Out: local, Tokenizer: "gpt2", Sharding: stage.Sharding{NumShards: 1}}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tokens")
	before := stage.StreamedBytes()
	opts := &tokenize.Options{In: base + "/text", Out: out, Tokenizer: "gpt2", Sharding: stage.Sharding{NumShards: 1}}
	if _, _, err := stage.Execute(ctx, stagetest.Env(), tokenize.Def, opts); err != nil {
		t.Fatal(err)
	}
	want, err := artifact.Read(local, artifact.TokensType)
	if err != nil {
		t.Fatal(err)
	}
	got, err := artifact.Read(out, artifact.TokensType)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) < 4 || got.Run == "" {
		t.Fatalf("streamed output: %d files, run %q", len(got.Files), got.Run)
	}
	if got.Digest() != want.Digest() || got.Run != want.Run || got.Inputs["text"] != tm.Digest() {
		t.Errorf("streamed run: digest %s run %s inputs %v; local: %s %s, input %s", got.Digest(), got.Run, got.Inputs, want.Digest(), want.Run, tm.Digest())
	}
	if opts.In != base+"/text" {
		t.Errorf("Execute left In as %q", opts.In)
	}
	var shardBytes int64
	for _, f := range tm.Files {
		if strings.HasSuffix(f.Path, ".parquet") {
			shardBytes += f.Size
		}
	}
	if n := stage.StreamedBytes() - before; n != shardBytes {
		t.Errorf("streamed %d bytes for %d bytes of shards (each should come down once)", n, shardBytes)
	}
	noLocalCopy(t, cache, tmp, tm.Digest())
}

// rot overwrites the object of one file of the artifact at url with other
// bytes of the same size, behind the store's back.
func rot(t *testing.T, url string, m artifact.Manifest, file string) string {
	t.Helper()
	data := s3test.DataDir(t)
	u, err := objstore.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if ok, _ := filepath.Match(file, f.Path); ok {
			file = f.Path
			junk := make([]byte, f.Size)
			rand.Read(junk)
			if err := os.WriteFile(filepath.Join(data, u.Bucket, filepath.FromSlash(u.Key(file))), junk, 0o644); err != nil {
				t.Fatal(err)
			}
			return "s3://" + u.Bucket + "/" + u.Key(file)
		}
	}
	t.Fatalf("%s not in %s", file, url)
	return ""
}

func TestStreamRottenInputPublishesNothing(t *testing.T) {
	base, cache, tmp := streamEnv(t)
	ctx := context.Background()
	text := stagetest.TextArtifact(t, 40, someDocs(120)...)
	tm := publish(t, text, base+"/text")
	tokens := stagetest.TokensArtifact(t, "gpt2", someDocs(50)...)
	km := publish(t, tokens, base+"/tokens")
	tests := []struct {
		name  string
		def   stage.Def
		opts  stage.Options
		obj   string
		input artifact.Manifest
		out   string
	}{
		{"tokenize", tokenize.Def, &tokenize.Options{In: base + "/text", Tokenizer: "gpt2", Sharding: stage.Sharding{NumShards: 1}},
			rot(t, base+"/text", tm, "train-00001.parquet"), tm, filepath.Join(t.TempDir(), "tokens")},
		{"pack to s3", pack.Def, &pack.Options{In: base + "/tokens", Length: 8, Sharding: stage.Sharding{NumShards: 1}},
			rot(t, base+"/tokens", km, "train-00000.parquet"), km, base + "/packed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch o := tt.opts.(type) {
			case *tokenize.Options:
				o.Out = tt.out
			case *pack.Options:
				o.Out = tt.out
			}
			_, published, err := stage.Execute(ctx, stagetest.Env(), tt.def, tt.opts)
			var d *objstore.DamagedError
			if err == nil || published || !errors.As(err, &d) || !strings.Contains(err.Error(), tt.obj) {
				t.Fatalf("Execute = published %v, %v; want a *DamagedError naming %s", published, err, tt.obj)
			}
			if len(objstore.DamagedFiles(err)) != 1 {
				t.Errorf("DamagedFiles = %v", objstore.DamagedFiles(err))
			}
			if objstore.IsURL(tt.out) {
				s, _ := objstore.Open(ctx)
				u, _ := objstore.ParseURL(tt.out)
				if _, ok, err := s.Exists(ctx, u); ok || err != nil {
					t.Errorf("%s holds an artifact after a damaged input (%v)", tt.out, err)
				}
			} else if isArtifact(tt.out) {
				t.Errorf("%s was published from a damaged input", tt.out)
			}
			noLocalCopy(t, cache, tmp, tt.input.Digest())
		})
	}
}

func TestStreamTrainTokenizerFromS3(t *testing.T) {
	base, cache, tmp := streamEnv(t)
	ctx := context.Background()
	text := stagetest.TextArtifact(t, 30, someDocs(90)...)
	tm := publish(t, text, base+"/text")
	opts := func(in, out string) *traintok.Options {
		return &traintok.Options{In: in, Out: out, VocabSize: 300, Special: []string{"<|endoftext|>"}, MinFrequency: 2, Split: "train"}
	}
	local, streamed := filepath.Join(t.TempDir(), "local"), filepath.Join(t.TempDir(), "streamed")
	if _, _, err := stage.Execute(ctx, stagetest.Env(), traintok.Def, opts(text, local)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := stage.Execute(ctx, stagetest.Env(), traintok.Def, opts(base+"/text", streamed)); err != nil {
		t.Fatal(err)
	}
	want, err1 := artifact.Read(local, artifact.TokenizerType)
	got, err2 := artifact.Read(streamed, artifact.TokenizerType)
	if err1 != nil || err2 != nil || got.Digest() != want.Digest() || got.Run != want.Run {
		t.Errorf("streamed %s run %s (%v); local %s run %s (%v)", got.Digest(), got.Run, err2, want.Digest(), want.Run, err1)
	}
	noLocalCopy(t, cache, tmp, tm.Digest())
}

// A streamed input's files that are not streamed (tokens made with a
// tokenizer file carry it as tokenizer.json) come down into the stand-in
// directory verified: pack from the bucket makes what a local pack makes,
// and a rotten tokenizer.json fails it naming that object.
func TestStreamInputCarriesTokenizerFile(t *testing.T) {
	base, cache, tmp := streamEnv(t)
	ctx := context.Background()
	text := stagetest.TextArtifact(t, 40, someDocs(60)...)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if _, _, err := stage.Execute(ctx, stagetest.Env(), tokenize.Def, &tokenize.Options{In: text, Out: tokens,
		Tokenizer: filepath.Join("..", "tokenizer", "data", "gpt2-tokenizer.json"), Sharding: stage.Sharding{NumShards: 1}}); err != nil {
		t.Fatal(err)
	}
	km := publish(t, tokens, base+"/tokens")
	packOpts := func(in, out string) *pack.Options {
		return &pack.Options{In: in, Out: out, Length: 8, Sharding: stage.Sharding{NumShards: 1}}
	}
	local, streamed := filepath.Join(t.TempDir(), "local"), filepath.Join(t.TempDir(), "streamed")
	if _, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, packOpts(tokens, local)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, packOpts(base+"/tokens", streamed)); err != nil {
		t.Fatal(err)
	}
	want, _ := artifact.Read(local, artifact.PackedType)
	got, err := artifact.Read(streamed, artifact.PackedType)
	if err != nil || got.Digest() != want.Digest() {
		t.Fatalf("pack from the bucket: %s, %v; local %s", got.Digest(), err, want.Digest())
	}
	noLocalCopy(t, cache, tmp, km.Digest())

	obj := rot(t, base+"/tokens", km, artifact.TokenizerFile)
	_, published, err := stage.Execute(ctx, stagetest.Env(), pack.Def, packOpts(base+"/tokens", filepath.Join(t.TempDir(), "rotten")))
	var d *objstore.DamagedError
	if err == nil || published || !errors.As(err, &d) || !strings.Contains(err.Error(), obj) {
		t.Fatalf("pack with a rotten tokenizer.json: published %v, %v; want a *DamagedError naming %s", published, err, obj)
	}
	noLocalCopy(t, cache, tmp, km.Digest())
}

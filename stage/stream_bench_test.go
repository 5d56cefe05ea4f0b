package stage_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages/tokenize"
)

// TestStreamTokenizeBench measures tokenize of a multi-MB text artifact from
// a local directory, from the bucket streamed, and fetched whole first (the
// earlier behaviour) for bench/README.md. Run with MDLM_STREAM_BENCH=1.
func TestStreamTokenizeBench(t *testing.T) {
	if os.Getenv("MDLM_STREAM_BENCH") == "" {
		t.Skip("MDLM_STREAM_BENCH is unset")
	}
	base, cache, _ := streamEnv(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("the of and to in is was for on as with by he at from his an were are which this be or has had first one their its new after who they have her she two been other when there all during into school time may years more most only over city some world would where later up such used many can state about national out known university united then made")
	docs := make([]string, 24000)
	for i := range docs {
		var b strings.Builder
		for b.Len() < 1000 {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		docs[i] = b.String()
	}
	text := stagetest.TextArtifact(t, 8000, docs...)
	tm := publish(t, text, base+"/text")
	var shardBytes int64
	for _, f := range tm.Files {
		if strings.HasSuffix(f.Path, ".parquet") {
			shardBytes += f.Size
		}
	}
	run := func(name, in string) int64 {
		start := time.Now()
		before := stage.StreamedBytes()
		out := filepath.Join(t.TempDir(), name)
		if _, _, err := stage.Execute(ctx, stagetest.Env(), tokenize.Def, &tokenize.Options{In: in, Out: out, Tokenizer: "bytes", Sharding: stage.Sharding{NumShards: 1}}); err != nil {
			t.Fatal(err)
		}
		got := stage.StreamedBytes() - before
		t.Logf("%-22s wall %6.2fs  streamed %d bytes (shards %d bytes)", name, time.Since(start).Seconds(), got, shardBytes)
		return got
	}
	if got := run("local", text); got != 0 {
		t.Errorf("a local input streamed %d bytes", got)
	}
	if got := run("bucket, streamed", base+"/text"); got != shardBytes {
		t.Errorf("the streamed input downloaded %d bytes, want its shards' %d, each byte once", got, shardBytes)
	}
	s, err := objstore.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := objstore.ParseURL(base + "/text")
	start := time.Now()
	dir, _, err := s.Fetch(ctx, u, cache)
	if err != nil {
		t.Fatal(err)
	}
	fetch := time.Since(start)
	run("bucket, fetched whole", dir)
	t.Logf("(fetch whole took %.2fs before that run)", fetch.Seconds())
	run("local, again", text)
	run("bucket, streamed again", base+"/text")
}

package tokenize

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

func textArtifact(t *testing.T, lines ...string) string {
	return stagetest.TextArtifact(t, 2, lines...)
}

// run executes one stage process as the command does; published is false for
// a shard that left publication to another process.
func run(ctx context.Context, o Options) (m artifact.Manifest, published bool, err error) {
	if o.NumShards == 0 {
		o.NumShards = 1
	}
	return stage.Execute(ctx, stagetest.Env(), Def, &o)
}

// Run is run for a single process, which always publishes.
func Run(ctx context.Context, o Options) (artifact.Manifest, error) {
	m, _, err := run(ctx, o)
	return m, err
}

func readTokens(t *testing.T, dir string) []datasets.TokensRow {
	files, err := datasets.Shards(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	var rows []datasets.TokensRow
	for _, f := range files {
		datasets.ScanParquet(f, []string{"id", "ids"}, func(b []datasets.TokensRow) error {
			for _, r := range b {
				rows = append(rows, datasets.TokensRow{ID: r.ID, IDs: append([]int32{}, r.IDs...)})
			}
			return nil
		})
	}
	return rows
}

func TestShardedTokenizeResumesAndPublishesOnce(t *testing.T) {
	text := textArtifact(t, "Hello world", "don't stop", "In the beginning", "x", "the end")
	out := filepath.Join(t.TempDir(), "tokens")
	opts := Options{In: text, Out: out, Tokenizer: "gpt2", Sharding: stage.Sharding{NumShards: 2}}
	// Shard 0 finishes first: nothing is published yet.
	if _, published, err := run(context.Background(), opts); err != nil || published {
		t.Fatalf("shard 0: published %v, err %v; want neither", published, err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("published before every shard finished")
	}
	// A rerun of shard 0 skips its finished shards.
	before, _ := filepath.Glob(filepath.Join(out+".partial", "*.parquet"))
	if _, published, err := run(context.Background(), opts); err != nil || published {
		t.Fatal(published, err)
	}
	after, _ := filepath.Glob(filepath.Join(out+".partial", "*.parquet"))
	if !reflect.DeepEqual(before, after) || len(before) != 2 {
		t.Fatalf("rerun changed the finished shards: %v -> %v", before, after)
	}
	opts.ShardIndex = 1
	m, published, err := run(context.Background(), opts)
	if err != nil || !published {
		t.Fatal(published, err)
	}
	if m.Type != artifact.TokensType || m.Params["tokenizer"] != "gpt2" || m.Version != Def.Version {
		t.Errorf("manifest %+v", m)
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Error("partial directory left behind")
	}
	wantEncoded(t, readTokens(t, out), []string{"Hello world", "don't stop", "In the beginning", "x", "the end"})
}

// wantEncoded checks that rows are texts, in order, encoded by GPT-2.
func wantEncoded(t *testing.T, rows []datasets.TokensRow, texts []string) {
	t.Helper()
	if len(rows) != len(texts) {
		t.Fatalf("%d rows, want %d", len(rows), len(texts))
	}
	g, _ := tokenizer.Load("gpt2")
	for i, r := range rows {
		want := g.Encode(texts[i])
		got := make([]int, len(r.IDs))
		for j, x := range r.IDs {
			got[j] = int(x)
		}
		if r.ID != int64(i) || !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d: id %d ids %v, want %v", i, r.ID, got, want)
		}
	}
}

func TestTokenizeRejectsBadInputs(t *testing.T) {
	text := textArtifact(t, "a", "b", "c")
	tokens := filepath.Join(t.TempDir(), "tokens")
	if _, err := Run(context.Background(), Options{In: text, Out: tokens}); err != nil {
		t.Fatal(err)
	}
	// Wrong artifact type.
	if _, err := Run(context.Background(), Options{In: tokens, Out: filepath.Join(t.TempDir(), "x")}); err == nil || !strings.Contains(err.Error(), `"tokens/v1"`) {
		t.Errorf("wrong type: err = %v", err)
	}
	// A shard that no longer matches its manifest checksum.
	m, _ := artifact.Read(text, "")
	shard := filepath.Join(text, m.Files[0].Path)
	data, _ := os.ReadFile(shard)
	data[len(data)-5] ^= 1
	os.WriteFile(shard, data, 0o644)
	out := filepath.Join(t.TempDir(), "y")
	if _, err := Run(context.Background(), Options{In: text, Out: out}); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("corrupted input: err = %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("published from a corrupted input")
	}
}

// A shard cut into many chunks (one row group each) keeps the documents in
// order, whatever order the workers finish them in.
func TestTokenizeChunksKeepOrder(t *testing.T) {
	defer func(n int) { chunkBytes = n }(chunkBytes)
	chunkBytes = 20
	var lines []string
	for i := 0; i < 200; i++ {
		lines = append(lines, strings.Repeat("word ", i%13)+"line "+strings.Repeat("x", i%7))
	}
	text := textArtifact(t, lines...)
	out := filepath.Join(t.TempDir(), "tokens")
	if _, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: "gpt2", Workers: 4}); err != nil {
		t.Fatal(err)
	}
	wantEncoded(t, readTokens(t, out), lines)
	// An interrupted run publishes nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{In: text, Out: filepath.Join(t.TempDir(), "t2"), Tokenizer: "gpt2"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: err = %v", err)
	}
	shards, _ := datasets.Shards(text, "*")
	dst := filepath.Join(t.TempDir(), "shard.parquet")
	g, _ := tokenizer.Load("gpt2")
	if err := tokenizeShards(ctx, []shardJob{{shards[0], dst}}, g, nil, 2, func(shardJob) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled shard: err = %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), "*")); len(left) != 0 {
		t.Errorf("cancelled shard left %v", left)
	}
}

// A full disk is an error naming the file being written, and nothing is
// published. Needs a small tmpfs (root with mount rights); skipped otherwise.
func TestTokenizeFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v: %s)", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	var lines []string
	for i := 0; i < 400; i++ {
		lines = append(lines, strings.Repeat("token ", 80)+strconv.Itoa(i))
	}
	text := textArtifact(t, lines...)
	out := filepath.Join(mnt, "tokens")
	_, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: "gpt2"})
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), mnt) {
		t.Fatalf("err = %v, want ENOSPC naming a file under %s", err, mnt)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("something was published at %s", out)
	}
	if tmp, _ := filepath.Glob(filepath.Join(out+".partial", ".*tmp*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	t.Log(err)
	// With space again, a rerun keeps the finished shards and completes.
	done, _ := filepath.Glob(filepath.Join(out+".partial", "*.parquet"))
	if out, err := exec.Command("mount", "-o", "remount,size=16m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	if _, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: "gpt2"}); err != nil {
		t.Fatal(err)
	}
	if rows := readTokens(t, out); len(rows) != len(lines) || len(done) == 0 {
		t.Errorf("after resume: %d rows (want %d); %d shards had survived the full disk", len(rows), len(lines), len(done))
	}
}

// A publishing claim left by a process that died mid-publication is taken
// over once stale; a fresh one is respected.
func TestStalePublishingClaim(t *testing.T) {
	text := textArtifact(t, "one", "two")
	out := filepath.Join(t.TempDir(), "tokens")
	claim := filepath.Join(out+".partial", ".publishing")
	opts := Options{In: text, Out: out, Tokenizer: "gpt2"}
	if _, err := stage.PrepareScratch(Def, &opts); err != nil { // the marked partial directory Execute makes
		t.Fatal(err)
	}
	os.MkdirAll(claim, 0o755)
	if _, published, err := run(context.Background(), opts); err != nil || published {
		t.Fatalf("fresh claim: published %v, err %v; want neither", published, err)
	}
	old := time.Now().Add(-time.Hour) // stage.Execute takes over claims older than 30 minutes
	os.Chtimes(claim, old, old)
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatalf("stale claim: %v", err)
	}
	wantEncoded(t, readTokens(t, out), []string{"one", "two"})
}

// Shards read at once by several readers (workers beyond workersPerReader),
// each cut into many chunks, keep their documents in order; a damaged shard
// among them stops the run with an error naming it, leaves no temporary file
// and publishes nothing for it; once repaired, a rerun keeps the shards
// finished before and completes.
func TestTokenizeShardsInParallel(t *testing.T) {
	defer func(n int) { chunkBytes = n }(chunkBytes)
	chunkBytes = 40
	var lines []string
	for i := 0; i < 240; i++ {
		lines = append(lines, strings.Repeat("word ", i%11)+"line "+strconv.Itoa(i))
	}
	text := stagetest.TextArtifact(t, 30, lines...) // 8 shards
	opts := Options{In: text, Out: filepath.Join(t.TempDir(), "tokens"), Tokenizer: "gpt2", Workers: 3*workersPerReader + 1}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	wantEncoded(t, readTokens(t, opts.Out), lines)

	shards, _ := datasets.Shards(text, "*")
	if len(shards) != 8 {
		t.Fatalf("%d shards, want 8", len(shards))
	}
	damaged := shards[3]
	good, _ := os.ReadFile(damaged)
	bad := append([]byte{}, good...)
	bad[len(bad)/2] ^= 0x40
	os.WriteFile(damaged, bad, 0o644)
	opts.Out = filepath.Join(t.TempDir(), "again")
	_, err := Run(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(damaged)) {
		t.Fatalf("damaged shard: err = %v, want one naming %s", err, filepath.Base(damaged))
	}
	if _, err := os.Stat(opts.Out); err == nil {
		t.Fatal("published from a damaged shard")
	}
	partial := opts.Out + ".partial"
	if _, err := os.Stat(filepath.Join(partial, filepath.Base(damaged))); err == nil {
		t.Error("the damaged shard's tokens were kept")
	}
	if tmp, _ := filepath.Glob(filepath.Join(partial, ".*tmp*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	kept, _ := filepath.Glob(filepath.Join(partial, "*.parquet"))
	os.WriteFile(damaged, good, 0o644)
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	wantEncoded(t, readTokens(t, opts.Out), lines)
	t.Logf("%d shards survived the damaged one: %v", len(kept), kept)
}

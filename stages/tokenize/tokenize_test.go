package tokenize

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
	"github.com/mdlm-go/mdlm/stages/download"
	"github.com/mdlm-go/mdlm/stages/pack"
	"github.com/mdlm-go/mdlm/tokenizer"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func textArtifact(t *testing.T, lines ...string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(src, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := filepath.Join(t.TempDir(), "text")
	if _, err := download.Run(context.Background(), download.Options{Sources: []string{src}, Out: out, ShardRows: 2, Log: quiet()}); err != nil {
		t.Fatal(err)
	}
	return out
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
	opts := Options{In: text, Out: out, Tokenizer: "gpt2", NumShards: 2, Log: quiet()}
	// Shard 0 finishes first: nothing is published yet.
	if _, err := Run(context.Background(), opts); !errors.Is(err, ErrNotLast) {
		t.Fatalf("shard 0: err = %v, want ErrNotLast", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("published before every shard finished")
	}
	// A rerun of shard 0 skips its finished shards.
	before, _ := filepath.Glob(filepath.Join(out+".partial", "*.parquet"))
	if _, err := Run(context.Background(), opts); !errors.Is(err, ErrNotLast) {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(out+".partial", "*.parquet"))
	if !reflect.DeepEqual(before, after) || len(before) != 2 {
		t.Fatalf("rerun changed the finished shards: %v -> %v", before, after)
	}
	opts.ShardIndex = 1
	m, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != datasets.TokensType || m.Params["tokenizer"] != "gpt2" {
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
	if _, err := Run(context.Background(), Options{In: text, Out: tokens, Log: quiet()}); err != nil {
		t.Fatal(err)
	}
	// Wrong artifact type.
	if _, err := Run(context.Background(), Options{In: tokens, Out: filepath.Join(t.TempDir(), "x"), Log: quiet()}); err == nil || !strings.Contains(err.Error(), `"tokens/v1"`) {
		t.Errorf("wrong type: err = %v", err)
	}
	// A shard that no longer matches its manifest checksum.
	m, _ := artifact.Read(text, "")
	shard := filepath.Join(text, m.Files[0].Path)
	data, _ := os.ReadFile(shard)
	data[len(data)-5] ^= 1
	os.WriteFile(shard, data, 0o644)
	out := filepath.Join(t.TempDir(), "y")
	if _, err := Run(context.Background(), Options{In: text, Out: out, Log: quiet()}); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("corrupted input: err = %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("published from a corrupted input")
	}
	if _, err := pack.Run(context.Background(), pack.Options{In: text, Out: filepath.Join(t.TempDir(), "p"), Length: 8, Log: quiet()}); err == nil || !strings.Contains(err.Error(), `"text/v1"`) {
		t.Errorf("pack of a text artifact: err = %v", err)
	}
}

func TestPackPadModeWithBERT(t *testing.T) {
	text := textArtifact(t, "Hello world!", "a much longer sentence than the block can hold")
	tokens := filepath.Join(t.TempDir(), "tokens")
	if _, err := Run(context.Background(), Options{In: text, Out: tokens, Tokenizer: "bert-base-uncased", Log: quiet()}); err != nil {
		t.Fatal(err)
	}
	packed := filepath.Join(t.TempDir(), "packed")
	if _, err := pack.Run(context.Background(), pack.Options{In: tokens, Out: packed, Length: 8, Mode: "pad", Log: quiet()}); err != nil {
		t.Fatal(err)
	}
	a, err := datasets.OpenPackedArrow(filepath.Join(packed, "train.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ids0, mask0 := a.Row(0)
	ids1, mask1 := a.Row(1)
	// [CLS] hello world ! [SEP] [PAD] [PAD] [PAD]
	if !reflect.DeepEqual(ids0, []int32{101, 7592, 2088, 999, 102, 0, 0, 0}) || !reflect.DeepEqual(mask0, []int8{1, 1, 1, 1, 1, 0, 0, 0}) {
		t.Errorf("row 0 = %v %v", ids0, mask0)
	}
	if ids1[0] != 101 || ids1[7] != 102 || mask1[7] != 1 {
		t.Errorf("row 1 (truncated) = %v %v", ids1, mask1)
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
	if _, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: "gpt2", Workers: 4, Log: quiet()}); err != nil {
		t.Fatal(err)
	}
	wantEncoded(t, readTokens(t, out), lines)
	// An interrupted run publishes nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{In: text, Out: filepath.Join(t.TempDir(), "t2"), Tokenizer: "gpt2", Log: quiet()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: err = %v", err)
	}
	shards, _ := datasets.Shards(text, "*")
	dst := filepath.Join(t.TempDir(), "shard.parquet")
	g, _ := tokenizer.Load("gpt2")
	if err := tokenizeShard(ctx, shards[0], dst, g, nil, 2); !errors.Is(err, context.Canceled) {
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
	_, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: "gpt2", Log: quiet()})
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
	if _, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: "gpt2", Log: quiet()}); err != nil {
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
	os.MkdirAll(claim, 0o755)
	opts := Options{In: text, Out: out, Tokenizer: "gpt2", Log: quiet()}
	if _, err := Run(context.Background(), opts); !errors.Is(err, ErrNotLast) {
		t.Fatalf("fresh claim: err = %v, want ErrNotLast", err)
	}
	old := time.Now().Add(-2 * stalePublishing)
	os.Chtimes(claim, old, old)
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatalf("stale claim: %v", err)
	}
	wantEncoded(t, readTokens(t, out), []string{"one", "two"})
}

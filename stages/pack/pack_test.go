package pack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/stage"
)

func run(ctx context.Context, o Options) (artifact.Manifest, bool, error) {
	if o.NumShards == 0 {
		o.NumShards = 1
	}
	return stage.Execute(ctx, stagetest.Env(), Def, &o)
}

func TestPackPadModeWithBERT(t *testing.T) {
	tokens := stagetest.TokensArtifact(t, "bert-base-uncased", "Hello world!", "a much longer sentence than the block can hold")
	packed := filepath.Join(t.TempDir(), "packed")
	m, _, err := run(context.Background(), Options{In: tokens, Out: packed, Length: 8, Mode: "pad"})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := artifact.DecodeMeta[artifact.PackedMeta](m)
	if err != nil || meta.Splits["train"].Blocks != 2 || meta.Mode != "pad" {
		t.Errorf("meta %+v, err %v", meta, err)
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

// Packing sharded by split (train and valid in two processes) publishes once,
// from the process that finishes last, the same artifact as one process.
func TestShardedPackEqualsOneProcess(t *testing.T) {
	tokens := stagetest.TokensArtifact(t, "gpt2", strings.Repeat("In the beginning God created the heaven and the earth. ", 30))
	// A second split: copy train as valid into a new tokens artifact.
	two := filepath.Join(t.TempDir(), "tokens2")
	src := filepath.Join(tokens, "train-00000.parquet")
	_, err := artifact.Publish(two, artifact.Manifest{Type: artifact.TokensType, Params: map[string]any{"tokenizer": "gpt2", "vocab_size": 50257}},
		func(tmp string) error {
			raw, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			os.WriteFile(filepath.Join(tmp, "train-00000.parquet"), raw, 0o644)
			return os.WriteFile(filepath.Join(tmp, "valid-00000.parquet"), raw, 0o644)
		})
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(t.TempDir(), "one")
	want, _, err := run(context.Background(), Options{In: two, Out: one, Length: 32})
	if err != nil {
		t.Fatal(err)
	}
	sharded := filepath.Join(t.TempDir(), "sharded")
	o := Options{In: two, Out: sharded, Length: 32, Sharding: stage.Sharding{ShardIndex: 1, NumShards: 2}}
	if _, published, err := run(context.Background(), o); err != nil || published {
		t.Fatalf("shard 1: published %v, err %v", published, err)
	}
	o.ShardIndex = 0
	got, published, err := run(context.Background(), o)
	if err != nil || !published {
		t.Fatalf("shard 0: published %v, err %v", published, err)
	}
	if got.Digest() != want.Digest() || !reflect.DeepEqual(got.Params, want.Params) {
		t.Errorf("sharded pack differs:\n%v %v\n%v %v", got.Digest(), got.Params, want.Digest(), want.Params)
	}
	if _, err := os.Stat(sharded + stage.PartialSuffix); !os.IsNotExist(err) {
		t.Error("partial directory left behind")
	}
}

func TestPackRejectsBadInputs(t *testing.T) {
	text := stagetest.TextArtifact(t, 10, "a", "b")
	if _, _, err := run(context.Background(), Options{In: text, Out: filepath.Join(t.TempDir(), "p"), Length: 8}); err == nil || !strings.Contains(err.Error(), `"tokens/v1"`) {
		t.Errorf("pack of a text artifact: err = %v", err)
	}
	// A tokens artifact whose manifest lacks a required field.
	bad := filepath.Join(t.TempDir(), "bad")
	artifact.Publish(bad, artifact.Manifest{Type: artifact.TokensType, Params: map[string]any{"tokenizer": "gpt2"}}, func(string) error { return nil })
	if _, _, err := run(context.Background(), Options{In: bad, Out: filepath.Join(t.TempDir(), "p"), Length: 8}); err == nil || !strings.Contains(err.Error(), "params.vocab_size: missing") {
		t.Errorf("manifest without vocab_size: err = %v", err)
	}
}

// tokensWith publishes a tokens/v1 artifact (tokenizer bytes) whose splits hold
// the given documents' ids verbatim, without running a stage.
func tokensWith(t *testing.T, splits map[string][][]int32) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tokens")
	_, err := artifact.Publish(dir, artifact.Manifest{Type: artifact.TokensType, Stage: "test",
		Params: artifact.Params(artifact.TokensMeta{Tokenizer: "bytes", VocabSize: 257})}, func(tmp string) error {
		for split, docs := range splits {
			table := datasets.TokensTable{Offsets: []int64{0}}
			for i, d := range docs {
				table.Flat = append(table.Flat, d...)
				table.IDs = append(table.IDs, int64(i))
				table.Offsets = append(table.Offsets, int64(len(table.Flat)))
			}
			if err := datasets.WriteTokensTable(filepath.Join(tmp, split+"-00000.parquet"), table); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func ids(s string) []int32 {
	out := make([]int32, len(s))
	for i, c := range []byte(s) {
		out[i] = int32(c)
	}
	return out
}

// TestHostilePackEmptyTrainSplit guards issue 19, defect 10: three short
// documents used to publish "blocks: 0", and training on it divided by zero.
func TestHostilePackEmptyTrainSplit(t *testing.T) {
	short := [][]int32{ids("In the beginning"), ids("God created"), ids("the heaven")}
	cases := []struct {
		name string
		opts Options
		want []string
	}{
		{"wrap", Options{Length: 1024}, []string{`split "train" has no blocks`, "3 documents of 37 tokens", "needs at least 1022", "--length"}},
		{"grouped", Options{Length: 32, GroupDocs: 1}, []string{`split "train" has no blocks`, "--group-docs 1", "needs at least 30"}},
	}
	for _, c := range cases {
		c.opts.In = tokensWith(t, map[string][][]int32{"train": short})
		c.opts.Out = filepath.Join(t.TempDir(), "packed")
		_, _, err := run(context.Background(), c.opts)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want it to mention %q", c.name, err, w)
			}
		}
		if _, serr := os.Stat(c.opts.Out); !os.IsNotExist(serr) {
			t.Errorf("%s: published an artifact without training blocks", c.name)
		}
	}
}

// A hold-out too small for one block does not stop packing: the valid split is
// published empty (train and eval refuse it when they need it).
func TestHostilePackEmptyValidSplit(t *testing.T) {
	long := [][]int32{ids(strings.Repeat("In the beginning God created the heaven and the earth. ", 4))}
	in := tokensWith(t, map[string][][]int32{"train": long, "valid": {ids("amen")}})
	m, _, err := run(context.Background(), Options{In: in, Out: filepath.Join(t.TempDir(), "packed"), Length: 32})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := artifact.DecodeMeta[artifact.PackedMeta](m)
	if err != nil || meta.Splits["train"].Blocks == 0 || meta.Splits["valid"].Blocks != 0 {
		t.Errorf("splits %+v, err %v", meta.Splits, err)
	}
}

// TestHostilePackIDsBeyondVocabulary: a token id outside the model vocabulary
// is refused when packed, naming the document and the id (issue 19, defect 10).
func TestHostilePackIDsBeyondVocabulary(t *testing.T) {
	for _, bad := range []int32{1 << 20, -1} {
		doc := append(ids(strings.Repeat("In the beginning God created the heaven and the earth. ", 4)), bad)
		in := tokensWith(t, map[string][][]int32{"train": {ids("x"), doc}})
		out := filepath.Join(t.TempDir(), "packed")
		_, _, err := run(context.Background(), Options{In: in, Out: out, Length: 32})
		if err == nil || !strings.Contains(err.Error(), "document id 1") || !strings.Contains(err.Error(), fmt.Sprintf("token id %d is outside the vocabulary", bad)) {
			t.Errorf("id %d: err = %v", bad, err)
		}
		if _, serr := os.Stat(out); !os.IsNotExist(serr) {
			t.Errorf("id %d: published", bad)
		}
	}
}

// TestHostilePackTokenizerName: a tokens manifest whose tokenizer points
// outside its artifact, or at a file it does not hold, is refused naming the
// tokens artifact, and nothing is published.
func TestHostilePackTokenizerName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"../x.json", "neither a built-in name"},
		{"sub/tokenizer.json", "neither a built-in name"},
		{"/etc/passwd", "neither a built-in name"},
		{"/nowhere/bpe-1/tokenizer.json", "no longer exists"},
		{artifact.TokenizerFile, "holds no such file"},
	} {
		tokens := filepath.Join(t.TempDir(), "tokens")
		_, err := artifact.Publish(tokens, artifact.Manifest{Type: artifact.TokensType, Stage: "test",
			Params: artifact.Params(artifact.TokensMeta{Tokenizer: c.name, VocabSize: 257})}, func(string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "p")
		_, _, err = run(context.Background(), Options{In: tokens, Out: out, Length: 8})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), tokens) {
			t.Errorf("tokenizer %q: err = %v, want %q naming %s", c.name, err, c.want, tokens)
		}
		if _, serr := os.Stat(out); !os.IsNotExist(serr) {
			t.Errorf("tokenizer %q: published", c.name)
		}
	}
}

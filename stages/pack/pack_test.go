package pack

import (
	"context"
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
	meta, err := artifact.DecodeMeta[datasets.PackedMeta](m)
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
	_, err := artifact.Publish(two, artifact.Manifest{Type: datasets.TokensType, Params: map[string]any{"tokenizer": "gpt2", "vocab_size": 50257}},
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
	artifact.Publish(bad, artifact.Manifest{Type: datasets.TokensType, Params: map[string]any{"tokenizer": "gpt2"}}, func(string) error { return nil })
	if _, _, err := run(context.Background(), Options{In: bad, Out: filepath.Join(t.TempDir(), "p"), Length: 8}); err == nil || !strings.Contains(err.Error(), "params.vocab_size: missing") {
		t.Errorf("manifest without vocab_size: err = %v", err)
	}
}

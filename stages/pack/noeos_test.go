package pack

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

// The packer without per-block specials: documents each followed by EOS,
// cut into blocks of L with nothing inserted at the cuts; the stream's last
// remainder dropped, or each group's with groupDocs (hand-packed cases).
func TestPlainPacker(t *testing.T) {
	const E = 9
	docs := [][]int32{{1, 2}, {3, 4, 5}, {6}, {7, 8, 1, 2, 3}}
	cases := []struct {
		L, group int
		want     [][]int32
		dropped  int
	}{
		// stream 1 2 E 3 4 5 E 6 E 7 8 1 2 3 E
		{3, 0, [][]int32{{1, 2, E}, {3, 4, 5}, {E, 6, E}, {7, 8, 1}, {2, 3, E}}, 0},
		{4, 0, [][]int32{{1, 2, E, 3}, {4, 5, E, 6}, {E, 7, 8, 1}}, 3},
		// groups of 2 documents: [1 2 E 3 4 5 E] [6 E 7 8 1 2 3 E]
		{3, 2, [][]int32{{1, 2, E}, {3, 4, 5}, {6, E, 7}, {8, 1, 2}}, 3},
	}
	for _, c := range cases {
		var got [][]int32
		p, err := newPlainPacker(c.L, c.group, E, func(r datasets.PackedRow) error {
			got = append(got, append([]int32(nil), r.InputIDs...))
			if len(r.AttentionMask) != c.L {
				t.Errorf("mask of %d entries", len(r.AttentionMask))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if err := p.Add(d); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) || p.dropped() != c.dropped {
			t.Errorf("L %d group %d: blocks %v (dropped %d), want %v (%d)", c.L, c.group, got, p.dropped(), c.want, c.dropped)
		}
	}
}

// pack --no-eos publishes blocks of L document tokens without [BOS]/[EOS] at
// the cuts and says so in its params; a default pack's params have no such
// key; pad mode refuses it.
func TestPackNoEOS(t *testing.T) {
	tokens := stagetest.TokensArtifact(t, "bytes", "abcdef", "ghij")
	out := filepath.Join(t.TempDir(), "p")
	m, _, err := run(context.Background(), Options{In: tokens, Out: out, Length: 4, NoEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Params[NoEOSParam] != true {
		t.Errorf("params %v, want %s true", m.Params, NoEOSParam)
	}
	meta, err := artifact.DecodeMeta[artifact.PackedMeta](m)
	if err != nil {
		t.Fatal(err)
	}
	a, err := datasets.OpenPackedArrow(filepath.Join(out, "train.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	E := int32(meta.EOS)
	want := [][]int32{{'a', 'b', 'c', 'd'}, {'e', 'f', E, 'g'}, {'h', 'i', 'j', E}}
	if a.NumRows() != len(want) {
		t.Fatalf("%d blocks, want %d", a.NumRows(), len(want))
	}
	for i, w := range want {
		if ids, _ := a.Row(i); !reflect.DeepEqual(ids, w) {
			t.Errorf("block %d = %v, want %v", i, ids, w)
		}
	}
	dm, _, err := run(context.Background(), Options{In: tokens, Out: filepath.Join(t.TempDir(), "d"), Length: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dm.Params[NoEOSParam]; ok {
		t.Errorf("a default pack records %s", NoEOSParam)
	}
	if _, _, err := run(context.Background(), Options{In: tokens, Out: filepath.Join(t.TempDir(), "x"), Length: 4, Mode: "pad", NoEOS: true}); err == nil || !strings.Contains(err.Error(), "--no-eos") {
		t.Errorf("pad mode with --no-eos: err = %v", err)
	}
}

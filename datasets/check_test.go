package datasets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
)

// writePackedSplit writes "<split>.arrow" of blocks of length L into dir.
func writePackedSplit(t *testing.T, dir, split string, L int, blocks [][]int32) {
	t.Helper()
	w, err := NewPackedWriter(dir, split, L)
	if err != nil {
		t.Fatal(err)
	}
	for _, ids := range blocks {
		if err := w.Write(PackedRow{InputIDs: ids, AttentionMask: make([]int8, L)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func filled(L int, v int32) []int32 {
	ids := make([]int32, L)
	for i := range ids {
		ids[i] = v
	}
	return ids
}

// TestHostileOpenPackedSplit guards issue 19, defect 10: a split is checked when
// opened, and the error names the file and what is wrong.
func TestHostileOpenPackedSplit(t *testing.T) {
	meta := artifact.PackedMeta{Length: 4, VocabSize: 10}
	bad := filled(4, 3)
	bad[2] = 10
	cases := []struct {
		name   string
		L      int
		blocks [][]int32
		want   string // empty: opens
	}{
		{"good", 4, [][]int32{filled(4, 9), filled(4, 0)}, ""},
		{"no blocks", 4, nil, `split "s" has no blocks`},
		{"id at vocab_size", 4, [][]int32{filled(4, 1), bad}, "block 1, position 2: token id 10 is outside the vocabulary [0, 10)"},
		{"negative id", 4, [][]int32{filled(4, -7)}, "block 0, position 0: token id -7"},
		{"other length", 5, [][]int32{filled(5, 1)}, "blocks of 5 tokens, but the artifact's manifest says length 4"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		writePackedSplit(t, dir, "s", c.L, c.blocks)
		p, err := OpenPackedSplit(dir, "s", meta)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else {
				p.Close()
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, "s.arrow")) {
			t.Errorf("%s: err = %v, want the file and %q", c.name, err, c.want)
		}
	}
}

// A corrupt samples table is an error naming the file, never a panic.
func TestReadSamplesCorruptNamesFile(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("PAR1garbagePAR1"), append([]byte("PAR1"), make([]byte, 64)...)} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SamplesParquet), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadSamples(dir); err == nil || !strings.Contains(err.Error(), SamplesParquet) {
			t.Errorf("%q: err = %v", data, err)
		}
	}
}

// FuzzOpenPackedSplit: no Arrow file makes opening and checking a split panic,
// and a split that passes the checks can be read block by block.
func FuzzOpenPackedSplit(f *testing.F) {
	dir := f.TempDir()
	bad := filled(4, 3)
	bad[1] = 99
	for i, blocks := range [][][]int32{{filled(4, 1), filled(4, 9)}, nil, {bad}} {
		split := "s" + string(rune('0'+i))
		w, err := NewPackedWriter(dir, split, 4)
		if err != nil {
			f.Fatal(err)
		}
		for _, ids := range blocks {
			if err := w.Write(PackedRow{InputIDs: ids, AttentionMask: make([]int8, 4)}); err != nil {
				f.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, split+".arrow"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	meta := artifact.PackedMeta{Length: 4, VocabSize: 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "s.arrow"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := OpenPackedSplit(dir, "s", meta)
		if err != nil {
			return
		}
		defer p.Close()
		for i := 0; i < p.NumRows(); i++ {
			ids, mask := p.Row(i)
			if len(ids) != 4 || len(mask) != 4 {
				t.Fatalf("block %d: %d ids, %d mask values", i, len(ids), len(mask))
			}
			for _, id := range ids {
				if id < 0 || id >= 10 {
					t.Fatalf("block %d: id %d passed the check", i, id)
				}
			}
		}
	})
}

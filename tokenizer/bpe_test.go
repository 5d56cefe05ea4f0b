package tokenizer

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"
)

// TestCharToken checks the character table against the vocabulary it is
// built from: BMP and non-BMP characters, U+FFFD as a character and as the
// decoding of an invalid byte, and a model with a prefix (no table).
func TestCharToken(t *testing.T) {
	vocab := map[string]int{"a": 0, "▁": 1, "\uFFFD": 2, "😀": 3, "ab": 4, "é": 5, "\xff": 6}
	for _, prefix := range []string{"", "##"} {
		m, err := newBPE(vocab, nil, bpeOptions{prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if (m.charID != nil) != (prefix == "") {
			t.Fatalf("prefix %q: table present %v", prefix, m.charID != nil)
		}
		for _, s := range []string{"a", "b", "▁", "\uFFFD", "😀", "😁", "é", "ü", "\xff", "\xfe", "\x00"} {
			r, w := utf8.DecodeRuneInString(s)
			if w != len(s) {
				t.Fatalf("%q is not one character", s)
			}
			want, wantOK := vocab[s]
			id, ok := m.charToken(r, s)
			if ok != wantOK || (ok && int(id) != want) {
				t.Errorf("prefix %q: charToken(%q) = %d, %v; want %d, %v", prefix, s, id, ok, want, wantOK)
			}
		}
	}
}

// TestPairTableSlots checks inserts, overwrites and misses, pair (0, 0)
// included.
func TestPairTableSlots(t *testing.T) {
	p := newPairTable(3)
	p.insert(pairKey(0, 0), mergeRule{rank: 1, id: 7})
	p.insert(pairKey(1, 2), mergeRule{rank: 2, id: 8})
	p.insert(pairKey(1, 2), mergeRule{rank: 5, id: 9})
	for _, c := range []struct {
		a, b int32
		want mergeRule
		ok   bool
	}{{0, 0, mergeRule{1, 7}, true}, {1, 2, mergeRule{5, 9}, true}, {2, 1, mergeRule{}, false}, {0, 1, mergeRule{}, false}} {
		if r, ok := p.get(pairKey(c.a, c.b)); ok != c.ok || r != c.want {
			t.Errorf("get(%d, %d) = %v, %v; want %v, %v", c.a, c.b, r, ok, c.want, c.ok)
		}
	}
	if p.n != 2 {
		t.Errorf("n = %d, want 2", p.n)
	}
}

// TestPairTableInsertAll: inserting in home-slot order gives the table that
// inserting in rank order gives: every key's last rule, at every table size
// (one radix digit, two, and a partial second).
func TestPairTableInsertAll(t *testing.T) {
	for _, n := range []int{1, 5, 600, 3000, 70000} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		entries := make([]pairSlot, n)
		want := map[uint64]mergeRule{}
		for i := range entries {
			k := pairKey(int32(rng.IntN(n/3+2)), int32(rng.IntN(n/3+2))) // repeats
			entries[i] = pairSlot{key: k, rule: mergeRule{rank: int32(i), id: int32(rng.IntN(1000))}}
			want[k] = entries[i].rule
		}
		p := newPairTable(n)
		p.insertAll(slices.Clone(entries))
		if p.n != len(want) {
			t.Errorf("n = %d: %d keys stored, want %d", n, p.n, len(want))
		}
		for k, r := range want {
			if got, ok := p.get(k); !ok || got != r {
				t.Fatalf("n = %d: get(%#x) = %v, %v; want %v (the last rule)", n, k, got, ok, r)
			}
		}
	}
}

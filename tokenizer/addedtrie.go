package tokenizer

import "sort"

// addedTrie finds the longest added token starting at a position: a byte trie
// over the tokens' contents (Gemma 3 has 6,415 added tokens; scanning them at
// every position was most of its encoding time).
type addedTrie struct {
	root  [256]int32 // child of the root per byte, 0 = none
	nodes []trieNode // nodes[0] unused
}

type trieNode struct {
	edges []trieEdge // sorted by byte
	token int32      // index into the token list, -1 if no token ends here
}

type trieEdge struct {
	b    byte
	node int32
}

func newAddedTrie(list []addedToken) *addedTrie {
	t := &addedTrie{nodes: make([]trieNode, 1)}
	for i, a := range list {
		t.insert(a.Content, int32(i))
	}
	for i := range t.nodes {
		e := t.nodes[i].edges
		sort.Slice(e, func(a, b int) bool { return e[a].b < e[b].b })
	}
	return t
}

func (t *addedTrie) newNode() int32 {
	t.nodes = append(t.nodes, trieNode{token: -1})
	return int32(len(t.nodes) - 1)
}

func (t *addedTrie) insert(s string, idx int32) {
	n := t.root[s[0]]
	if n == 0 {
		n = t.newNode()
		t.root[s[0]] = n
	}
	for i := 1; i < len(s); i++ {
		next := t.child(n, s[i])
		if next == 0 {
			next = t.newNode()
			t.nodes[n].edges = append(t.nodes[n].edges, trieEdge{b: s[i], node: next})
		}
		n = next
	}
	if t.nodes[n].token < 0 {
		t.nodes[n].token = idx // the first of equal contents, as the list is deduplicated
	}
}

func (t *addedTrie) child(n int32, b byte) int32 {
	for _, e := range t.nodes[n].edges {
		if e.b == b {
			return e.node
		}
	}
	return 0
}

// longest returns the index of the longest token that text[i:] starts with.
func (t *addedTrie) longest(text string, i int) (int32, bool) {
	n := t.root[text[i]]
	best := int32(-1)
	for j := i + 1; n != 0; j++ {
		if tok := t.nodes[n].token; tok >= 0 {
			best = tok
		}
		if j >= len(text) {
			break
		}
		n = t.child(n, text[j])
	}
	return best, best >= 0
}

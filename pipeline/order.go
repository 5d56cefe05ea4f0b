package pipeline

import (
	"container/heap"
	"sort"
)

// The order of a pipeline's stages: topological, and the stages one needs.

// topoOrder is Kahn's topological order, taking the smallest ready name first
// (deterministic), in O((stages + edges) log stages). Stages on a cycle are
// left out; the caller reports them. (issue 19, defect 13: the old loop
// scanned every stage for each stage placed.)
func topoOrder(stages map[string]*Stage, names []string) []string {
	indeg := make(map[string]int, len(names))
	users := make(map[string][]string, len(names))
	for _, n := range names {
		indeg[n] += 0
		for _, from := range stages[n].Inputs {
			indeg[n]++
			users[from] = append(users[from], n)
		}
	}
	ready := &nameHeap{}
	for _, n := range names {
		if indeg[n] == 0 {
			*ready = append(*ready, n)
		}
	}
	heap.Init(ready)
	order := make([]string, 0, len(names))
	for ready.Len() > 0 {
		n := heap.Pop(ready).(string)
		order = append(order, n)
		for _, m := range users[n] {
			indeg[m]--
			if indeg[m] == 0 {
				heap.Push(ready, m)
			}
		}
	}
	return order
}

// nameHeap is a min-heap of stage names.
type nameHeap []string

func (h nameHeap) Len() int { return len(h) }

func (h nameHeap) Less(i, j int) bool { return h[i] < h[j] }

func (h nameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *nameHeap) Push(x any) { *h = append(*h, x.(string)) }

func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// upstream returns name and every stage it depends on, directly or not.
func (f *File) upstream(name string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, from := range f.Stages[n].Inputs {
			visit(from)
		}
	}
	visit(name)
	return seen
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

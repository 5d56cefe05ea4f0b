package chase

import "testing"

// TestRandomCycle: the links visit every line of the buffer exactly once
// before coming back to the first.
func TestRandomCycle(t *testing.T) {
	for _, size := range []int{64, 4096, 1 << 20} {
		buf := RandomCycle(size, 7)
		lines := len(buf) / LineWords
		seen := make([]bool, lines)
		at := uint32(0)
		for step := range lines {
			if at%LineWords != 0 || seen[at/LineWords] {
				t.Fatalf("size %d: step %d lands on word %d (a line seen before or not a line's first word)", size, step, at)
			}
			seen[at/LineWords] = true
			at = buf[at]
		}
		if at != 0 {
			t.Errorf("size %d: after %d links the walk is at %d, not back at 0", size, lines, at)
		}
		if got := Walk(buf, 0, lines); got != 0 {
			t.Errorf("size %d: Walk over the whole cycle ends at %d", size, got)
		}
	}
}

func TestStart(t *testing.T) {
	buf := RandomCycle(1<<16, 1) // 1,024 lines
	for _, c := range []struct {
		k, n int
		want uint32
	}{
		{0, 1, 0}, {0, 2, 0}, {1, 2, 512 * LineWords}, {3, 4, 768 * LineWords},
	} {
		if got := Start(buf, c.k, c.n); got != c.want {
			t.Errorf("Start(%d of %d) = %d, want %d", c.k, c.n, got, c.want)
		}
	}
}

package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// The pipeline file's syntax before decoding: its size, the keys the format
// defines (with a suggestion for a near miss), stage names and duplicates.

// MaxFileBytes bounds a pipeline file: a real one is a few kilobytes, and a
// file of 10,000 stages is under 1 MiB.
const MaxFileBytes = 16 << 20

// stageName is the documented pattern of a stage name (see the package doc):
// it becomes a directory name in the cache, a Slurm log name and a Kubernetes
// label, so it must be one path element of safe characters.
var stageName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// CheckStageName refuses a stage name that is not a safe, single path element
// (issue 19, defect 5: a stage named ../../../x published outside the cache).
func CheckStageName(name string) error {
	if !stageName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("stage name %q: want a letter or digit, then at most 62 letters, digits, '_', '.' or '-', and no \"..\"", name)
	}
	return nil
}

// readBounded reads a pipeline file of at most MaxFileBytes.
func readBounded(path string) ([]byte, error) {
	data, err := readAtMost(path, MaxFileBytes)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%s: larger than %d bytes; a pipeline file is a few kilobytes", path, MaxFileBytes)
	}
	return data, err
}

var errTooLarge = errors.New("too large")

// readAtMost reads a file of at most limit bytes, else errTooLarge.
func readAtMost(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	raw, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(raw)) > limit {
		return nil, errTooLarge
	}
	return raw, nil
}

var (
	topKeys   = []string{"version", "name", "vars", "stages"}
	stageKeys = []string{"run", "matrix", "inputs", "with", "shards", "slurm", "kubernetes"}
)

// checkKeys refuses keys the pipeline format does not define, at the top
// level and in every stage, naming file:line and a near miss (issue 19,
// defect 12: `stagez:`, `whith:` and `shard: 3` loaded without a word). Stage
// names are checked here too, at their own line. Values of the wrong shape are
// left to the decoder, which names them.
func checkKeys(path string, doc *yaml.Node) error {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if err := knownKeys(path, top, topKeys, ""); err != nil {
		return err
	}
	stages := mapValue(top, "stages")
	if stages == nil || stages.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(stages.Content); i += 2 {
		k, v := stages.Content[i], stages.Content[i+1]
		if err := CheckStageName(k.Value); err != nil {
			return fmt.Errorf("%s:%d: %w", path, k.Line, err)
		}
		if err := knownKeys(path, v, stageKeys, fmt.Sprintf("stage %q: ", k.Value)); err != nil {
			return err
		}
	}
	return nil
}

// stageNode is one entry of the stages: mapping.
type stageNode struct {
	name string
	node *yaml.Node
}

// stageNodes returns the entries of the stages: mapping in file order,
// refusing duplicate names. It walks the node itself: yaml.v3's decoder checks
// a mapping's keys for duplicates pairwise, quadratic in the number of stages
// (issue 19, defect 13).
func stageNodes(path string, doc *yaml.Node) ([]stageNode, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	m := mapValue(doc.Content[0], "stages")
	if m == nil || m.Tag == "!!null" {
		return nil, nil
	}
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: stages: want a mapping of stage names to stages", path, m.Line)
	}
	out := make([]stageNode, 0, len(m.Content)/2)
	seen := make(map[string]int, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if prev, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: stage %q is already defined at line %d", path, k.Line, k.Value, prev)
		}
		seen[k.Value] = k.Line
		out = append(out, stageNode{name: k.Value, node: m.Content[i+1]})
	}
	return out, nil
}

// knownKeys checks the keys of a mapping node against known.
func knownKeys(path string, m *yaml.Node, known []string, where string) error {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Tag == "!!merge" || contains(known, k.Value) {
			continue
		}
		msg := fmt.Sprintf("%s:%d: %sunknown key %q (keys: %s)", path, k.Line, where, k.Value, strings.Join(known, ", "))
		if s := nearest(k.Value, known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// mapValue returns the value of key in a mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// nearest is the known key within two edits of s (or having it as a prefix),
// or "".
func nearest(s string, known []string) string {
	best, bestD := "", 3
	ls := strings.ToLower(s)
	for _, k := range known {
		d := editDistance(ls, k)
		if strings.HasPrefix(k, ls) && len(ls) >= 3 || strings.HasPrefix(ls, k) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short strings (keys are
// compared only when neither is long).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

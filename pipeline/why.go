package pipeline

import (
	"fmt"

	"github.com/mdlm-go/mdlm/stage"
)

// why explains a cache miss against the stage's previous run in the lock
// file, cheapest check first: key format, kind and version, then params, then
// inputs (artifacts and files), then the output itself. Params recorded under
// another key format are not compared: their form differs (KeyFormat).
func why(prev LockEntry, sp stage.Spec, params map[string]any, inputs map[string]string) []string {
	if prev.Key == "" {
		return []string{"never ran (no lock entry)"}
	}
	var r []string
	if f := max(prev.Format, 1); f != KeyFormat { // 0: an entry older than the field, format 1
		r = append(r, fmt.Sprintf("cache key format changed (%d -> %d): parameters are now keyed with their defaults filled in", f, KeyFormat))
	}
	if prev.Kind != "" && (prev.Kind != sp.Kind || prev.Version != sp.Version) { // "": a lock entry of an older mdlm
		r = append(r, fmt.Sprintf("stage kind %s version %d -> %s version %d", prev.Kind, prev.Version, sp.Kind, sp.Version))
	}
	if prev.Format == KeyFormat {
		r = append(r, paramChanges(prev.Params, params)...)
	}
	r = append(r, inputChanges(prev.Inputs, inputs)...)
	if len(r) == 0 {
		r = append(r, fmt.Sprintf("output missing or failed verification (%s)", sp.Output))
	}
	return r
}

// paramChanges names each parameter whose value differs, in name order.
func paramChanges(was, now map[string]any) []string {
	var r []string
	for _, k := range unionKeys(now, was) {
		if fmt.Sprint(was[k]) != fmt.Sprint(now[k]) {
			r = append(r, fmt.Sprintf("param %s changed: %v -> %v", k, show(was[k]), show(now[k])))
		}
	}
	return r
}

// inputChanges names each input (artifact or file) added, removed, being
// rebuilt or changed, in name order.
func inputChanges(was, now map[string]string) []string {
	var r []string
	for _, in := range unionKeys(now, was) {
		before, had := was[in]
		after, has := now[in]
		switch {
		case !had:
			r = append(r, fmt.Sprintf("input %s added", in))
		case !has:
			r = append(r, fmt.Sprintf("input %s removed", in))
		case after == "":
			r = append(r, fmt.Sprintf("input %s is being rebuilt", in))
		case after != before:
			r = append(r, fmt.Sprintf("input %s changed: %.19s -> %.19s", in, before, after))
		}
	}
	return r
}

func show(v any) any {
	if v == nil {
		return "(default)"
	}
	return v
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	return sortedKeys(seen)
}

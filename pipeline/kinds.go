package pipeline

import (
	"fmt"
	"sort"
)

// Kind describes a stage kind to the engine: its inputs and output, the flags a
// pipeline may set, which of them do not change results (left out of the cache
// key), and a version bumped whenever the stage's code changes its output.
type Kind struct {
	Version    int
	Inputs     []string
	Optional   []string
	InputTypes map[string]string // input -> artifact type prefix
	Output     string            // artifact type of the output
	Flags      []string
	Cosmetic   []string // flags that never change the output (workers, log cadence)
	Positional string   // a flag given as positional arguments (download's sources)
	InputArgs  func(in map[string]string) []string
	// Shardable kinds take --shard-index/--num-shards: each process does its part,
	// and the one that completes the last part publishes the artifact.
	Shardable bool
}

// Kinds is the stage registry, in one place.
var Kinds = map[string]Kind{
	"download": {Version: 1, Output: "text/v1", Positional: "sources",
		Flags:    []string{"sources", "dataset", "revision", "cache-dir", "workers", "text-column", "text-split", "hold-out", "shard-rows", "chunk-chars"},
		Cosmetic: []string{"cache-dir", "workers"}},
	"tokenize": {Version: 1, Inputs: []string{"text"}, InputTypes: map[string]string{"text": "text/"}, Output: "tokens/v1",
		Flags: []string{"tokenizer", "detokenizer", "workers"}, Cosmetic: []string{"workers"}, Shardable: true,
		InputArgs: func(in map[string]string) []string { return []string{in["text"]} }},
	"pack": {Version: 1, Inputs: []string{"tokens"}, InputTypes: map[string]string{"tokens": "tokens/"}, Output: "packed/v1",
		Flags:     []string{"length", "mode", "group-docs", "tokenizer"},
		InputArgs: func(in map[string]string) []string { return []string{in["tokens"]} }},
	"train": {Version: 1, Inputs: []string{"data"}, InputTypes: map[string]string{"data": "packed/"}, Output: "checkpoint/v1",
		Flags: []string{"model", "hidden", "heads", "blocks", "cond", "dropout", "parameterization", "T", "time-conditioning",
			"noise", "steps", "batch", "accum", "lr", "warmup", "schedule", "clip", "weight-decay", "ema", "seed", "log-every",
			"eval-every", "eval-blocks", "checkpoint-every", "keep-last", "precision"},
		Cosmetic:  []string{"log-every", "keep-last"},
		InputArgs: func(in map[string]string) []string { return []string{"--data", in["data"]} }},
	"eval": {Version: 1, Inputs: []string{"model", "data"}, InputTypes: map[string]string{"model": "checkpoint/", "data": "packed/"},
		Output: "metrics/v1", Flags: []string{"split", "batch", "seed", "T", "max-blocks", "no-ema"},
		InputArgs: func(in map[string]string) []string {
			return []string{"--checkpoint", in["model"], "--data", in["data"]}
		}},
	"sample": {Version: 1, Inputs: []string{"model"}, InputTypes: map[string]string{"model": "checkpoint/"}, Output: "samples/v1",
		Flags:     []string{"sampler", "steps", "num", "batch", "seed", "eps", "noise-removal", "length", "template", "stride-length", "num-strides"},
		InputArgs: func(in map[string]string) []string { return []string{"--checkpoint", in["model"]} }},
}

// Args renders a stage as command-line arguments (flags sorted, so the command
// line is deterministic): the command, input paths, flags, then -o out.
func (k Kind) Args(run string, in map[string]string, with map[string]any, out string) []string {
	args := []string{run}
	if k.InputArgs != nil {
		args = append(args, k.InputArgs(in)...)
	}
	keys := make([]string, 0, len(with))
	for f := range with {
		keys = append(keys, f)
	}
	sort.Strings(keys)
	for _, f := range keys {
		v := with[f]
		if f == k.Positional {
			if list, ok := v.([]any); ok {
				for _, e := range list {
					args = append(args, fmt.Sprint(e))
				}
			} else {
				args = append(args, fmt.Sprint(v))
			}
			continue
		}
		switch x := v.(type) {
		case bool:
			if x {
				args = append(args, "--"+f)
			} else {
				args = append(args, "--no-"+f)
			}
		default:
			args = append(args, "--"+f+"="+fmt.Sprint(x))
		}
	}
	return append(args, "-o", out)
}

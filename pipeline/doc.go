// Package pipeline reads declarative pipeline files (see docs/architecture.md, The engine, and README.md, Pipelines)
// and runs them with content-addressed caching: a stage whose kind, version,
// meaningful parameters and input artifacts are unchanged is skipped, and the
// reason a stage runs is reported as data.
//
//	version: 1
//	name: demo
//	vars: {length: 64}
//	stages:
//	  text:   {run: download, with: {sources: [testdata/kjv/kjv.jsonl.gz], hold-out: 60}}
//	  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
//	  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: "${length}"}}
//
// `with` keys are the stage command's flag names, so a stage runs alike by hand
// and in a pipeline; `inputs` bind a stage's named input to another stage's
// output; ${var} substitutes vars (overridable). `shards: N` splits a stage that
// supports it (tokenize, pack) into N processes on a scheduler (see Slurm); it does not
// change the stage's output or cache key. `slurm: {gres: "gpu:1", time: "48:00:00"}`
// adds sbatch options to that stage's job only, `kubernetes: {nvidia.com/gpu: 1}`
// resource limits to its Kubernetes container.
//
// Stage names become directory names in the cache (<name>-<key>), Slurm log
// names and Kubernetes labels, so they must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$
// and hold no "..": a letter or digit, then at most 62 letters, digits, '_',
// '.' or '-'. Keys the file format does not define (at the top level, in a
// stage) are errors naming file:line, with a suggestion for a near miss.
//
// `matrix: {seed: [1, 2], steps: [16, 64]}` makes a stage a sweep: it expands
// into one stage per combination, named base@seed=1,steps=16 and so on, with
// ${axis} substituted like a var (see matrix.go for names, limits and how
// downstream stages take the expansions).
package pipeline

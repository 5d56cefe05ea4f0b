#!/usr/bin/env bash
# The main job, as far as the toolkit goes today: build mdlm, import the PyTorch
# reference checkpoint into a checkpoint/v1 artifact, inspect and verify it, export
# it back and check the round trip, sample from it, then time a full MDLM training step (forward,
# SUBS loss, backward, global-norm clip, AdamW) on the CPU backend.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd
fixtures=${MDLM_REFERENCE_FIXTURES:-../shared/fixtures/reference}
work=${MDLM_WORK:-$(mktemp -d)}

go build -o mdlm ./cmd/mdlm
./mdlm version
./mdlm checkpoint import "$fixtures/public/dit.safetensors" -o "$work/dit"
./mdlm checkpoint inspect "$work/dit"
./mdlm checkpoint export "$work/dit" -o "$work/dit-export.safetensors"
go test -count=1 -run 'TestReferenceImportExportRoundTrip' ./stages/checkpoint/
./mdlm sample --checkpoint "$work/dit" -o "$work/samples" --sampler ddpm_rowcache --steps 100 --num 4 --seed 1
head -c 400 "$work/samples/samples.jsonl"; echo
go test -count=1 -run '^$' -bench 'BenchmarkTrainStep/fixture' -benchtime 20x ./train/
echo "artifacts in $work"

// Package sample is the `mdlm sample` stage: load a checkpoint, run a sampler
// (package sampler), and publish a samples/v1 artifact:
//
//	samples.parquet  one row per sample: index (int64), tokens (list<int32>), nfe (int32),
//	                 text (the tokens decoded by the checkpoint's tokenizer, if it names one)
//	samples.jsonl    the same rows as JSON lines, for a quick look
//	artifact.json    manifest (sampler, steps, seed, checkpoint digest, NFE totals)
//
// The same checkpoint, options and seed give the same samples.
package sample

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	"github.com/parquet-go/parquet-go"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Type is the artifact type this stage writes.
const Type = "samples/v1"

// Options configure a run.
type Options struct {
	Checkpoint   string
	Out          string
	Sampler      sampler.Kind
	Steps        int
	Num          int // samples to draw
	Batch        int // rows per sampler run (0: Num)
	Seed         int64
	Eps          float64
	NoiseRemoval bool
	Length       int    // 0: the model length
	Template     string // comma-separated ids, "_" for [MASK]; the rest of the row is masked
	StrideLength int    // semi-autoregressive stride (0: off)
	NumStrides   int
	Tool         string
	Backend      string
}

// Row is one sample.
type Row struct {
	Index  int64   `parquet:"index" json:"index"`
	Tokens []int32 `parquet:"tokens,list" json:"tokens"`
	NFE    int32   `parquet:"nfe" json:"nfe"`
	// Text is the decoded sample (special tokens rendered, e.g. <|endoftext|>);
	// empty when the checkpoint names no tokenizer.
	Text string `parquet:"text" json:"text,omitempty"`
}

// Model builds the diffusion objective a checkpoint was trained with.
func Model(cfg checkpoint.Config) (diffusion.Model, error) {
	sched, err := diffusion.NewSchedule(cfg.Method.Noise, diffusion.DefaultSigmaMin, diffusion.DefaultSigmaMax)
	if err != nil {
		return diffusion.Model{}, err
	}
	m := diffusion.Model{Backbone: cfg.Model, Param: diffusion.Parameterization(cfg.Method.Parameterization),
		T: cfg.Method.T, TimeConditioning: cfg.Method.TimeConditioning, Schedule: sched}
	return m, m.Validate()
}

// checkpointTokenizer loads the tokenizer a checkpoint names (nil if none) and
// checks that its model vocabulary matches the checkpoint's.
func checkpointTokenizer(cfg checkpoint.Config) (*tokenizer.Vocab, error) {
	if cfg.Tokenizer == "" {
		return nil, nil
	}
	tok, err := tokenizer.Load(cfg.Tokenizer)
	if err != nil {
		return nil, err
	}
	v, err := tokenizer.ForModel(tok)
	if err != nil {
		return nil, err
	}
	if v.V != cfg.Model.Vocab || v.Mask != cfg.Model.MaskIndex {
		return nil, fmt.Errorf("tokenizer %s gives a model vocabulary of %d with [MASK] %d, the model has %d with mask_index %d",
			cfg.Tokenizer, v.V, v.Mask, cfg.Model.Vocab, cfg.Model.MaskIndex)
	}
	return v, nil
}

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// ParseTemplate reads "5,17,_,_,42" into ids with the mask id for "_".
func ParseTemplate(s string, mask, vocab int) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int32
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "_" {
			out = append(out, int32(mask))
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 || v >= vocab {
			return nil, fmt.Errorf("template entry %d %q: want a token id in [0, %d) or _", i, f, vocab)
		}
		out = append(out, int32(v))
	}
	return out, nil
}

// Run samples and publishes the artifact. Options are checked before any compute.
func Run(ctx context.Context, b compute.Backend, opts Options, progress func(done, total int)) (artifact.Manifest, error) {
	dir, err := checkpoint.Resolve(opts.Checkpoint)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	ck, err := checkpoint.Load(dir, true)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	m, err := Model(ck.Config)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: checkpoint %s: %w", opts.Checkpoint, err)
	}
	L := opts.Length
	if L == 0 {
		L = m.Backbone.Length
	}
	if L <= 0 {
		return artifact.Manifest{}, fmt.Errorf("sample: the checkpoint records no model length; pass --length")
	}
	so := sampler.Options{Kind: opts.Sampler, Steps: opts.Steps, Eps: opts.Eps, NoiseRemoval: opts.NoiseRemoval}
	if err := so.Validate(m, L); err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	tmpl, err := ParseTemplate(opts.Template, m.Backbone.MaskIndex, m.Backbone.Vocab)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: --template: %w", err)
	}
	if len(tmpl) > L {
		return artifact.Manifest{}, fmt.Errorf("sample: --template has %d tokens, longer than the length %d", len(tmpl), L)
	}
	if opts.Sampler == sampler.AR && len(tmpl) == 0 {
		return artifact.Manifest{}, fmt.Errorf("sample: the ar sampler starts from a BOS token: pass it as --template (50256 for GPT-2)")
	}
	if opts.Num < 1 {
		return artifact.Manifest{}, fmt.Errorf("sample: --num must be >= 1, got %d", opts.Num)
	}
	batch := opts.Batch
	if batch <= 0 || batch > opts.Num {
		batch = opts.Num
	}
	vocab, err := checkpointTokenizer(ck.Config)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: checkpoint %s: %w", opts.Checkpoint, err)
	}
	s, err := sampler.New(b, m, ck.ForInference(), opts.Seed, nil)
	if err != nil {
		return artifact.Manifest{}, err
	}
	rows, err := draw(ctx, s, opts, so, m, tmpl, L, batch, progress)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	if vocab != nil {
		for i := range rows {
			if rows[i].Text, err = vocab.Decode(toInts(rows[i].Tokens)); err != nil {
				return artifact.Manifest{}, fmt.Errorf("sample: decode sample %d: %w", i, err)
			}
		}
	}
	totalNFE := 0
	for _, r := range rows {
		totalNFE += int(r.NFE)
	}
	man := artifact.Manifest{Stage: "sample", Tool: opts.Tool, Backend: opts.Backend,
		Inputs: map[string]string{"checkpoint": ck.Manifest.Digest()},
		Params: map[string]any{"sampler": opts.Sampler, "steps": opts.Steps, "num": opts.Num, "batch": batch,
			"seed": opts.Seed, "eps": opts.Eps, "noise_removal": opts.NoiseRemoval, "length": L,
			"template": opts.Template, "stride_length": opts.StrideLength, "num_strides": opts.NumStrides,
			"nfe_total": totalNFE}}
	man.Type = Type
	return artifact.Publish(opts.Out, man, func(tmp string) error { return writeRows(tmp, rows) })
}

func draw(ctx context.Context, s *sampler.Sampler, opts Options, so sampler.Options, m diffusion.Model, tmpl []int32, L, batch int, progress func(int, int)) ([]Row, error) {
	var rows []Row
	for start := 0; start < opts.Num; start += batch {
		B := min(batch, opts.Num-start)
		var res *sampler.Result
		var err error
		if opts.StrideLength > 0 {
			res, err = s.SampleSemiAR(ctx, opts.Sampler, opts.Steps, B, L, opts.StrideLength, opts.NumStrides, nil)
		} else {
			prior := make([]int32, B*L)
			for b := 0; b < B; b++ {
				for i := 0; i < L; i++ {
					prior[b*L+i] = int32(m.Backbone.MaskIndex)
				}
				copy(prior[b*L:], tmpl)
			}
			res, err = s.Sample(ctx, so, prior, B, L, nil)
		}
		if err != nil {
			return nil, err
		}
		for b := 0; b < B; b++ {
			rows = append(rows, Row{Index: int64(start + b), Tokens: res.Tokens[b*res.L : (b+1)*res.L], NFE: int32(res.NFE[b])})
		}
		if progress != nil {
			progress(start+B, opts.Num)
		}
	}
	return rows, nil
}

func writeRows(dir string, rows []Row) error {
	if err := parquet.WriteFile(filepath.Join(dir, "samples.parquet"), rows); err != nil {
		return fmt.Errorf("write samples.parquet: %w", err)
	}
	return filehash.WriteFile(filepath.Join(dir, "samples.jsonl"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadRows reads a samples/v1 artifact's Parquet table.
func ReadRows(dir string) ([]Row, error) {
	if _, err := artifact.Read(dir, Type); err != nil {
		return nil, err
	}
	rows, err := parquet.ReadFile[Row](filepath.Join(dir, "samples.parquet"))
	if err != nil {
		return nil, fmt.Errorf("read %s/samples.parquet: %w", dir, err)
	}
	return rows, nil
}

package artifact

import "fmt"

// The artifact types, each with the stage that writes it and its typed
// metadata (the manifest's params, decoded and checked by Open). This file is
// the one list: a new type and its metadata struct go here.
const (
	// TextType: documents (download). text-NNNNN.parquet per split; TextMeta.
	TextType = "text/v1"
	// TokensType: token ids per document (tokenize). Arrow and Parquet token
	// tables per split; TokensMeta.
	TokensType = "tokens/v1"
	// PackedType: fixed-length blocks (pack). <split>.arrow (memory-mapped by
	// training) and <split>-NNNNN.parquet; PackedMeta.
	PackedType = "packed/v1"
	// CheckpointType: a model (train, checkpoint import/pull). config.json,
	// model.safetensors, optional ema.safetensors and training state;
	// CheckpointMeta.
	CheckpointType = "checkpoint/v1"
	// SamplesType: generated samples (sample); SamplesMeta. Files:
	//
	//	samples.parquet  one row per sample: index (int64), tokens (list<int32>), nfe (int32),
	//	                 text (the tokens decoded by the checkpoint's tokenizer, if it names one)
	//	samples.jsonl    the same rows as JSON lines, for a quick look
	SamplesType = "samples/v1"
	// MetricsType: evaluation results (eval, genppl). metrics.json; no
	// typed params beyond the manifest's.
	MetricsType = "metrics/v1"
	// TokenizerType: a learned tokenizer (train-tokenizer). tokenizer.json (a
	// Hugging Face tokenizer.json: byte-level BPE); TokenizerMeta.
	TokenizerType = "tokenizer/v1"
)

// TokenizerMeta is the typed metadata of a tokenizer/v1 artifact.
type TokenizerMeta struct {
	Model        string   `json:"model"` // "bpe-bytelevel"
	VocabSize    int      `json:"vocab_size"`
	Special      []string `json:"special,omitempty"`
	MinFrequency int64    `json:"min_frequency,omitempty"`
	Words        int      `json:"words"` // distinct pre-tokens counted
}

func (TokenizerMeta) ArtifactType() string { return TokenizerType }
func (TokenizerMeta) Required() []string   { return []string{"model", "vocab_size"} }
func (t TokenizerMeta) Validate() error {
	if t.VocabSize <= 0 {
		return fmt.Errorf("vocab_size %d: not positive", t.VocabSize)
	}
	return nil
}

// TextMeta is the typed metadata (manifest params) of a text/v1 artifact.
type TextMeta struct {
	Dataset     string   `json:"dataset,omitempty"` // registry name, for hub datasets
	Repo        string   `json:"repo,omitempty"`
	Revision    string   `json:"revision,omitempty"`
	Tokenizer   string   `json:"tokenizer,omitempty"`   // the dataset's default tokenizer
	Wrap        *bool    `json:"wrap,omitempty"`        // the dataset's packing mode (nil: not said)
	Detokenizer string   `json:"detokenizer,omitempty"` // the dataset's detokenizer
	Sources     []string `json:"sources,omitempty"`     // local sources, as given
	TextSplit   string   `json:"text_split"`
}

func (TextMeta) ArtifactType() string { return TextType }
func (TextMeta) Required() []string   { return []string{"text_split"} }
func (TextMeta) Validate() error      { return nil }

// TokensMeta is the typed metadata of a tokens/v1 artifact.
type TokensMeta struct {
	Tokenizer   string `json:"tokenizer"`
	Detokenizer string `json:"detokenizer,omitempty"`
	Dataset     string `json:"dataset,omitempty"`
	Wrap        *bool  `json:"wrap,omitempty"`
	VocabSize   int    `json:"vocab_size"`
}

func (TokensMeta) ArtifactType() string { return TokensType }
func (TokensMeta) Required() []string   { return []string{"tokenizer", "vocab_size"} }
func (t TokensMeta) Validate() error {
	if t.VocabSize <= 0 {
		return fmt.Errorf("vocab_size: %d, want > 0", t.VocabSize)
	}
	return nil
}

// SplitStats are a packed split's counts.
type SplitStats struct {
	Documents     int64 `json:"documents"`
	Tokens        int64 `json:"tokens"`
	Blocks        int64 `json:"blocks"`
	DroppedTokens int64 `json:"dropped_tokens"`
}

// PackedMeta is the typed metadata of a packed/v1 artifact.
type PackedMeta struct {
	Length    int                   `json:"length"`
	Mode      string                `json:"mode"` // wrap or pad
	GroupDocs int                   `json:"group_docs"`
	Tokenizer string                `json:"tokenizer"`
	VocabSize int                   `json:"vocab_size"` // the model vocabulary (tokenizer + [MASK] if added)
	MaskIndex int                   `json:"mask_index"`
	BOS       int                   `json:"bos"`
	EOS       int                   `json:"eos"`
	PAD       int                   `json:"pad"`
	Dataset   string                `json:"dataset,omitempty"`
	Splits    map[string]SplitStats `json:"splits"`
}

func (PackedMeta) ArtifactType() string { return PackedType }
func (PackedMeta) Required() []string {
	return []string{"length", "mode", "tokenizer", "vocab_size", "mask_index", "splits"}
}
func (p PackedMeta) Validate() error {
	switch {
	case p.Length < 3:
		return fmt.Errorf("length: %d, want >= 3", p.Length)
	case p.Mode != "wrap" && p.Mode != "pad":
		return fmt.Errorf("mode: %q, want wrap or pad", p.Mode)
	case p.VocabSize <= 0:
		return fmt.Errorf("vocab_size: %d, want > 0", p.VocabSize)
	case p.MaskIndex < 0 || p.MaskIndex >= p.VocabSize:
		return fmt.Errorf("mask_index: %d, want in [0, vocab_size %d)", p.MaskIndex, p.VocabSize)
	}
	return nil
}

// SamplesMeta is the typed metadata of a samples/v1 artifact.
type SamplesMeta struct {
	Sampler      string  `json:"sampler"`
	Steps        int     `json:"steps"`
	Num          int     `json:"num"`
	Batch        int     `json:"batch"`
	Seed         int64   `json:"seed"`
	Eps          float64 `json:"eps"`
	NoiseRemoval bool    `json:"noise_removal"`
	Length       int     `json:"length"`
	Template     string  `json:"template,omitempty"`
	StrideLength int     `json:"stride_length,omitempty"`
	NumStrides   int     `json:"num_strides,omitempty"`
	EMA          bool    `json:"ema"`
	Tokenizer    string  `json:"tokenizer,omitempty"` // the checkpoint's, which decoded the text column
	NFETotal     int     `json:"nfe_total"`
}

func (SamplesMeta) ArtifactType() string { return SamplesType }
func (SamplesMeta) Required() []string   { return []string{"sampler", "num", "length"} }
func (s SamplesMeta) Validate() error {
	if s.Num < 1 {
		return fmt.Errorf("num: %d, want >= 1", s.Num)
	}
	return nil
}

// CheckpointMeta is the typed metadata (manifest params) of a checkpoint/v1 artifact.
type CheckpointMeta struct {
	Step int `json:"step,omitempty"` // optimizer steps of a training checkpoint
}

func (CheckpointMeta) ArtifactType() string { return CheckpointType }
func (CheckpointMeta) Required() []string   { return nil }
func (CheckpointMeta) Validate() error      { return nil }

package datasets

import (
	"fmt"
	"sort"
	"strings"
)

// Dataset is one entry of the registry (dataloader.py: get_dataset): where a
// corpus comes from, how it splits, and how the reference prepares it.
type Dataset struct {
	Name string
	// Repo is the Hugging Face dataset repository; URL a plain download instead.
	Repo, URL string
	// Config selects a subset (files under that folder, or named after it).
	Config string
	// Splits maps our split names (train, valid) to the hub's split names.
	Splits map[string]string
	// HoldOut moves the last HoldOut documents of train to valid (OpenWebText's
	// train[-100000:]); Keep, if set, lists the splits to publish.
	HoldOut int
	Keep    []string
	// TextColumn holds the text (others are dropped).
	TextColumn  string
	Detokenizer string // dataset name for detokenize.For ("" none)
	Tokenizer   string // the reference's tokenizer
	Wrap        bool   // wrap mode (true) or pad/truncate (false)
	// CharSplits are text8's character ranges per split; ChunkChars its block size.
	CharSplits map[string][2]int
	Notes      string
}

// Registry lists every dataset name the reference knows, built in one place.
func Registry() map[string]Dataset {
	owt := Dataset{Repo: "Skylion007/openwebtext", TextColumn: "text", Tokenizer: "gpt2", Wrap: true,
		Notes: "8,013,769 documents; the hub's layout changed over time, so files are listed, never named"}
	wiki := func(cfg string) Dataset {
		return Dataset{Repo: "Salesforce/wikitext", Config: cfg, TextColumn: "text", Tokenizer: "gpt2", Wrap: true,
			Splits: map[string]string{"train": "train", "valid": "validation"}, Detokenizer: "wikitext"}
	}
	sci := func(cfg string) Dataset {
		return Dataset{Repo: "armanc/scientific_papers", Config: cfg, TextColumn: "article", Tokenizer: "gpt2", Wrap: true,
			Splits: map[string]string{"train": "train", "valid": "validation"}, Detokenizer: "scientific_papers"}
	}
	lm1b := Dataset{Repo: "billion-word-benchmark/lm1b", TextColumn: "text", Tokenizer: "bert-base-uncased", Wrap: false,
		Splits: map[string]string{"train": "train", "valid": "test"}, Detokenizer: "lm1b"}
	r := map[string]Dataset{
		"openwebtext": with(owt, func(d *Dataset) { d.Splits = map[string]string{"train": "train"} }),
		"openwebtext-train": with(owt, func(d *Dataset) {
			d.Splits, d.HoldOut, d.Keep = map[string]string{"train": "train"}, 100_000, []string{"train"}
		}),
		"openwebtext-valid": with(owt, func(d *Dataset) {
			d.Splits, d.HoldOut, d.Keep = map[string]string{"train": "train"}, 100_000, []string{"valid"}
		}),
		"openwebtext-split": with(owt, func(d *Dataset) { d.Splits, d.HoldOut = map[string]string{"train": "train"}, 100_000 }),
		"wikitext103":       wiki("wikitext-103-raw-v1"),
		"wikitext2":         wiki("wikitext-2-raw-v1"),
		"ptb": {Repo: "ptb-text-only/ptb_text_only", TextColumn: "sentence", Tokenizer: "gpt2", Wrap: true,
			Splits: map[string]string{"train": "train", "valid": "validation"}, Detokenizer: "ptb"},
		"lambada": {URL: "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl", TextColumn: "text",
			Tokenizer: "gpt2", Wrap: true, Splits: map[string]string{"valid": "test"}, Detokenizer: "lambada",
			Notes: "the OpenAI test jsonl, used whole for any split"},
		"lm1b":      lm1b,
		"lm1b-gpt2": with(lm1b, func(d *Dataset) { d.Tokenizer, d.Wrap = "gpt2", true }),
		"ag_news": {Repo: "fancyzhx/ag_news", TextColumn: "text", Tokenizer: "gpt2", Wrap: true,
			Splits: map[string]string{"train": "train", "valid": "test"}},
		"scientific_papers_arxiv":  sci("arxiv"),
		"scientific_papers_pubmed": sci("pubmed"),
		"text8": {URL: "http://mattmahoney.net/dc/text8.zip", Tokenizer: "text8", Wrap: true, TextColumn: "text",
			// The D3PM character splits are train [0, 90M), validation [90M, 95M),
			// test [95M, end); the reference validates text8 on its test split
			// (data.valid = text8 -> split "test"), so that slice is our valid.
			CharSplits: map[string][2]int{"train": {0, 90_000_000}, "valid": {95_000_000, -1}},
			Notes:      "the D3PM character splits (valid is the reference's: D3PM's test slice), cut into --chunk-chars blocks, last partial block dropped"},
	}
	r["text8-crop"] = with(r["text8"], func(d *Dataset) { d.Notes += "; train chunks are twice the block size (cropped at train time)" })
	for name, d := range r {
		d.Name = name
		r[name] = d
	}
	return r
}

func with(d Dataset, f func(*Dataset)) Dataset {
	d.Splits = copyMap(d.Splits)
	f(&d)
	return d
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Lookup returns a registry entry or an error listing the known names.
func Lookup(name string) (Dataset, error) {
	r := Registry()
	if d, ok := r[name]; ok {
		return d, nil
	}
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	return Dataset{}, fmt.Errorf("unknown dataset %q (known: %s)", name, strings.Join(names, ", "))
}

// SplitFiles picks, from a repository listing, the data files of one hub split:
// Parquet (or JSON lines) files under the config's folder whose name or folder
// names the split. The result is sorted, so document order is stable.
func (d Dataset) SplitFiles(paths []string, hubSplit string) []string {
	var out []string
	for _, p := range paths {
		lp := strings.ToLower(p)
		if !(strings.HasSuffix(lp, ".parquet") || strings.HasSuffix(lp, ".jsonl") || strings.HasSuffix(lp, ".jsonl.gz")) {
			continue
		}
		if d.Config != "" && !strings.Contains(p, d.Config+"/") && !strings.Contains(p, d.Config+"-") {
			continue
		}
		base := p[strings.LastIndex(p, "/")+1:]
		dir := p[:max(0, strings.LastIndex(p, "/"))]
		if strings.HasPrefix(base, hubSplit+"-") || strings.HasPrefix(base, hubSplit+".") ||
			strings.HasSuffix(dir, "/"+hubSplit) || dir == hubSplit {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

package checkpoint

// Checkpoints from the Hugging Face hub: `mdlm checkpoint pull
// kuleshov-group/mdlm-owt` downloads a model repository (listing, revisions,
// LFS sha256, resumable transfers, $HF_ENDPOINT, $HF_TOKEN) into the hub cache
// and imports it as a verified checkpoint/v1; a stage flag that takes a
// checkpoint also accepts hub:org/name[@revision], pulled on first use.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/internal/filehash"
)

// HubPrefix marks a checkpoint reference on the hub: hub:org/name[@revision].
const HubPrefix = "hub:"

// ParseHubRef splits hub:org/name[@revision] (revision default "main").
func ParseHubRef(ref string) (repo, revision string, ok bool) {
	rest, ok := strings.CutPrefix(ref, HubPrefix)
	if !ok {
		return "", "", false
	}
	repo, revision, found := strings.Cut(rest, "@")
	if !found || revision == "" {
		revision = "main"
	}
	return repo, revision, repo != ""
}

// PullOptions configure Pull.
type PullOptions struct {
	Repo, Revision string
	Out            string // the checkpoint/v1 to publish
	Cache          string // raw files go under <Cache>/models/<repo>/<revision> (hub.CachePath; default hub.CacheRoot)
	Tokenizer      string // default: gpt2 for GPT-2-sized vocabularies (50257, 50258)
	NoEMA          bool   // a .ckpt: the raw state_dict
	Workers        int
	Client         *hub.Client // default hub.NewClient()
	Tool           string
	Log            *slog.Logger
	Progress       func(int64)
}

// Pull downloads a model repository and imports it: a GPT-2 repository (a
// gen-PPL scorer), an MDLM repository in the Hugging Face layout (config.json
// and model.safetensors under "backbone."), or one holding a Lightning .ckpt.
// The manifest records the repository, revision and every file's sha256.
func Pull(ctx context.Context, opts PullOptions) (artifact.Manifest, error) {
	c := opts.Client
	if c == nil {
		c = hub.NewClient()
	}
	if opts.Revision == "" {
		opts.Revision = "main"
	}
	if opts.Cache == "" {
		opts.Cache = hub.CacheRoot()
	}
	fail := func(err error) (artifact.Manifest, error) {
		return artifact.Manifest{}, fmt.Errorf("pull %s@%s: %w", opts.Repo, opts.Revision, err)
	}
	// The repository id and revision become a cache path: check them first
	// (issue 19, defect 2); the listing's paths are checked by hub.
	raw, err := hub.CachePath(opts.Cache, "models", opts.Repo, opts.Revision)
	if err != nil {
		return fail(err)
	}
	files, err := c.ListModelFiles(ctx, opts.Repo, opts.Revision)
	if err != nil {
		return fail(err)
	}
	if hasManifest(files) {
		m, err := pullArtifact(ctx, c, opts, files, raw)
		if err != nil {
			return fail(err)
		}
		return m, nil
	}
	want, src, err := pickFiles(files)
	if err != nil {
		return fail(err)
	}
	if opts.Log != nil {
		opts.Log.Info("downloading model", "repo", opts.Repo, "revision", opts.Revision, "files", len(want), "to", raw)
	}
	if err := c.DownloadAll(ctx, opts.Repo, opts.Revision, want, raw, opts.Workers, opts.Progress); err != nil {
		return fail(err)
	}
	digests := map[string]string{}
	for _, f := range want {
		digests[f.Path] = f.SHA256
	}
	tok := opts.Tokenizer
	if tok == "" {
		tok = defaultTokenizer(filepath.Join(raw, "config.json"))
	}
	srcPath := raw
	if src != "." {
		if srcPath, err = hub.LocalPath(raw, src); err != nil {
			return fail(err)
		}
	}
	m, err := Import(ImportOptions{Src: srcPath, Out: opts.Out, Tokenizer: tok, NoEMA: opts.NoEMA,
		Tool: opts.Tool, Extra: map[string]any{"hub_repo": opts.Repo, "revision": opts.Revision, "hub_files": digests}})
	if err != nil {
		return fail(err)
	}
	return m, nil
}

// hasManifest reports whether a repository holds an mdlm artifact at its
// root (what `mdlm checkpoint push` uploads).
func hasManifest(files []hub.File) bool {
	for _, f := range files {
		if f.Path == artifact.ManifestName {
			return true
		}
	}
	return false
}

// pullArtifact downloads a repository that `mdlm checkpoint push` filled (a
// checkpoint/v1 manifest and the files it lists), verifies every file against
// that manifest, and publishes the files as they are, so a push then a pull
// gives back the same artifact digest, file for file. The listing must hold
// exactly the manifest's files: anything else was not pushed by mdlm.
func pullArtifact(ctx context.Context, c *hub.Client, opts PullOptions, files []hub.File, raw string) (artifact.Manifest, error) {
	if err := c.DownloadAll(ctx, opts.Repo, opts.Revision, files, raw, opts.Workers, opts.Progress); err != nil {
		return artifact.Manifest{}, err
	}
	m, err := artifact.Read(raw, artifact.CheckpointType)
	if err != nil {
		return m, err
	}
	if err := artifact.Verify(raw, m); err != nil {
		return m, err
	}
	listed := map[string]bool{artifact.ManifestName: true, ".gitattributes": true}
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	for _, f := range files {
		if !listed[f.Path] {
			return m, fmt.Errorf("%s is not listed in the repository's %s", f.Path, artifact.ManifestName)
		}
	}
	if opts.Log != nil {
		opts.Log.Info("publishing the pushed checkpoint as it is", "repo", opts.Repo, "revision", opts.Revision, "digest", m.Digest())
	}
	return artifact.Publish(opts.Out, m, func(tmp string) error {
		for _, f := range m.Files {
			src, err := hub.LocalPath(raw, f.Path)
			if err != nil {
				return err
			}
			dst := filepath.Join(tmp, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := filehash.CopyFile(src, dst); err != nil {
				return err
			}
		}
		return nil
	})
}

// pickFiles chooses what to download and what to import: config.json with
// model.safetensors (imported as the directory, with tokenizer.json when the
// repository has one), else a single .ckpt.
func pickFiles(files []hub.File) ([]hub.File, string, error) {
	var cfg, weights, tok, ckpt *hub.File
	var names []string
	for i, f := range files {
		names = append(names, f.Path)
		switch {
		case f.Path == "config.json":
			cfg = &files[i]
		case f.Path == "model.safetensors":
			weights = &files[i]
		case f.Path == artifact.TokenizerFile:
			tok = &files[i]
		case strings.HasSuffix(f.Path, ".ckpt") && ckpt == nil:
			ckpt = &files[i]
		}
	}
	switch {
	case weights != nil && cfg != nil:
		if tok != nil { // recorded when no --tokenizer is given and it fits (Import)
			return []hub.File{*cfg, *weights, *tok}, ".", nil
		}
		return []hub.File{*cfg, *weights}, ".", nil
	case ckpt != nil:
		return []hub.File{*ckpt}, ckpt.Path, nil
	}
	return nil, "", fmt.Errorf("no config.json with model.safetensors, nor a .ckpt, among %v", names)
}

// defaultTokenizer names gpt2 for a config whose vocabulary is GPT-2's
// (50257, or 50258 with MDLM's [MASK]).
func defaultTokenizer(configPath string) string {
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return ""
	}
	var c struct {
		VocabSize int `json:"vocab_size"`
	}
	if json.Unmarshal(raw, &c) == nil && (c.VocabSize == 50257 || c.VocabSize == 50258) {
		return "gpt2"
	}
	return ""
}

// OpenRef is Open for a stage's checkpoint flag: a directory, or a hub
// reference pulled (once) into <hub.CacheRoot>/checkpoints/<org>--<name>@<revision>
// (the revision as one escaped name: hub.RevisionDir).
func OpenRef(ctx context.Context, ref string, log *slog.Logger) (*Checkpoint, error) {
	repo, rev, ok := ParseHubRef(ref)
	if !ok {
		return Open(ref)
	}
	dir, err := hubRefDir(hub.CacheRoot(), repo, rev)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %q: %w", ref, err)
	}
	if ck, err := Load(dir, true); err == nil {
		return ck, nil
	}
	if _, err := Pull(ctx, PullOptions{Repo: repo, Revision: rev, Out: dir, Log: log}); err != nil {
		return nil, err
	}
	return Load(dir, true)
}

// hubRefDir is where a hub reference is imported: <cache>/checkpoints/
// <org>--<name>@<revision>, after validating both names (issue 19, defect 2:
// a revision of "../../x" in a pipeline's with: value wrote outside the cache).
func hubRefDir(cache, repo, rev string) (string, error) {
	if err := hub.ValidateRepoID(repo); err != nil {
		return "", err
	}
	if err := hub.ValidateRevision(rev); err != nil {
		return "", err
	}
	rel := filepath.Join("checkpoints", strings.ReplaceAll(repo, "/", "--")+"@"+hub.RevisionDir(rev))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("hub reference %s@%s: cache path %q is not local", repo, rev, rel)
	}
	return filepath.Join(cache, rel), nil
}

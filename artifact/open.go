package artifact

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Meta is the typed metadata of one artifact type: the manifest's params as a
// struct. Each artifact format declares one (artifact.PackedMeta, ...).
type Meta interface {
	// ArtifactType is the type this metadata belongs to, e.g. "packed/v1".
	ArtifactType() string
	// Required lists the params keys that must be present.
	Required() []string
	// Validate checks values; its error names the field.
	Validate() error
}

// Open is how a stage reads an input: it reads the manifest of dir, checks its
// type against T's, verifies every file (through the stat cache), and decodes
// the params into T, refusing a missing required field or a value of the wrong
// type with an error that names the directory and the field.
func Open[T Meta](dir string) (Manifest, T, error) {
	var meta T
	want := meta.ArtifactType()
	m, err := Read(dir, want)
	if err != nil {
		return m, meta, err
	}
	if err := Verify(dir, m); err != nil {
		return m, meta, err
	}
	meta, err = DecodeMeta[T](m)
	if err != nil {
		return m, meta, fmt.Errorf("artifact %s: %w", dir, err)
	}
	return m, meta, nil
}

// DecodeMeta decodes and validates a manifest's params as T.
func DecodeMeta[T Meta](m Manifest) (T, error) {
	var meta T
	for _, k := range meta.Required() {
		if _, ok := m.Params[k]; !ok {
			return meta, fmt.Errorf("%s params.%s: missing", m.Type, k)
		}
	}
	raw, err := json.Marshal(m.Params)
	if err != nil {
		return meta, fmt.Errorf("%s params: %w", m.Type, err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			return meta, fmt.Errorf("%s params.%s: %s is not a valid %s", m.Type, te.Field, te.Value, te.Type)
		}
		return meta, fmt.Errorf("%s params: %w", m.Type, err)
	}
	if err := meta.Validate(); err != nil {
		return meta, fmt.Errorf("%s params.%w", m.Type, err)
	}
	return meta, nil
}

// Params turns typed metadata into a manifest's params map.
func Params(meta any) map[string]any {
	raw, err := json.Marshal(meta)
	if err != nil {
		panic(fmt.Sprintf("artifact.Params: %v", err)) // metadata structs are plain data
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(fmt.Sprintf("artifact.Params: %v", err))
	}
	return out
}

// PublishBuilt publishes dir from build, which writes the files into tmp and
// returns the manifest (type, stage, params, inputs); Publish then adds the file
// list. Nothing is published when build fails.
func PublishBuilt(dir string, build func(tmp string) (Manifest, error)) (Manifest, error) {
	var built Manifest
	m, err := Publish(dir, Manifest{}, func(tmp string) error {
		var err error
		built, err = build(tmp)
		return err
	}, func(m *Manifest) { keep := m.Created; *m = built; m.Created = keep })
	return m, err
}

// ListFiles lists the regular files under dir (relative, slash-separated,
// sorted), the manifest and stat cache excluded.
func ListFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel != ManifestName && rel != StatCacheName {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

package stage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
)

// fingerprintHashLimit is the largest plain file (not an artifact) whose
// content a fingerprint hashes; a larger one enters as its size and mtime.
const fingerprintHashLimit = 64 << 20

// Fingerprint identifies a run of a stage as the stage process alone can see
// it: the kind and version, every option that can change the output (the
// flags a pipeline's CacheKey keeps: not cosmetic, not pipeline:"-", not the
// output) and, for file-valued options (input:"..." or digest:"..."), the
// digest of the artifact they name, the sha256 of a plain file up to 64 MiB,
// the size and mtime of a larger one, or the value as written (a reference
// such as hub:org/name@rev, a glob, a built-in name). It goes into the
// manifest (Manifest.Run) and into the marker of <out>.work and <out>.partial,
// so a shard or a work directory of another run is never mixed in (issue 19,
// defects 4 and 7). It also returns the local paths the options name, which
// CheckOutputPath keeps from being overwritten.
func Fingerprint(def Def, opts Options) (run string, paths []string, err error) {
	params := map[string]any{}
	v := reflect.ValueOf(opts)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", nil, fmt.Errorf("%s: nil options", def.Kind)
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "", nil, fmt.Errorf("%s: options %T are not a struct", def.Kind, opts)
	}
	if err := collect(v, "", params, &paths); err != nil {
		return "", nil, fmt.Errorf("%s: %w", def.Kind, err)
	}
	canon, err := json.Marshal(map[string]any{"kind": def.Kind, "version": def.Version, "params": params})
	if err != nil {
		return "", nil, fmt.Errorf("%s: options: %w", def.Kind, err)
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), paths, nil
}

// collect adds v's fields to params (embedded structs flattened, depth bounded
// by the Options type itself).
func collect(v reflect.Value, prefix string, params map[string]any, paths *[]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag
		if _, ok := tag.Lookup("output"); ok {
			continue
		}
		if _, ok := tag.Lookup("cosmetic"); ok {
			continue
		}
		if tag.Get("pipeline") == "-" || tag.Get("kong") == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && fv.Kind() == reflect.Struct {
			if err := collect(fv, prefix, params, paths); err != nil {
				return err
			}
			continue
		}
		name := prefix + f.Name
		_, isInput := tag.Lookup("input")
		_, isDigest := tag.Lookup("digest")
		if !isInput && !isDigest {
			params[name] = fv.Interface()
			continue
		}
		var vals []string
		switch x := fv.Interface().(type) {
		case string:
			vals = []string{x}
		case []string:
			vals = x
		default:
			params[name] = fv.Interface()
			continue
		}
		ids := make([]string, len(vals))
		for j, val := range vals {
			id, local, err := identify(val)
			if err != nil {
				return fmt.Errorf("option %s %q: %w", name, val, err)
			}
			ids[j] = id
			if local {
				*paths = append(*paths, val)
			}
		}
		params[name] = ids
	}
	return nil
}

// identify names a file-valued option's value by its content where it can;
// local reports a value that names something on this file system.
func identify(val string) (id string, local bool, err error) {
	if val == "" || IsReference(val) {
		return "as-written:" + val, false, nil
	}
	fi, err := os.Stat(val)
	if err != nil {
		return "as-written:" + val, false, nil // a glob, a built-in name, or missing: the stage says
	}
	if fi.IsDir() {
		if m, err := artifact.Read(val, ""); err == nil {
			return "artifact:" + m.Digest(), true, nil
		}
		abs, _ := filepath.Abs(val)
		return "dir:" + abs, true, nil
	}
	if !fi.Mode().IsRegular() || fi.Size() > fingerprintHashLimit {
		return fmt.Sprintf("file:%d:%d", fi.Size(), fi.ModTime().UnixNano()), true, nil
	}
	f, err := os.Open(val)
	if err != nil {
		return "", true, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, fingerprintHashLimit+1)); err != nil {
		return "", true, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), true, nil
}

// ownerName is the marker Execute writes into the <out>.work and <out>.partial
// directories it creates: which stage kind and run they belong to.
const ownerName = ".mdlm-owner.json"

type owner struct {
	Kind   string `json:"kind"`
	Run    string `json:"run"`
	Shards int    `json:"shards,omitempty"`
}

// readOwner reads dir's marker; ok false when dir has none (or an unreadable
// one), err only when dir itself cannot be examined.
func readOwner(dir string) (o owner, ok bool) {
	p := filepath.Join(dir, ownerName)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() > 4096 {
		return o, false
	}
	raw, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(raw, &o) != nil || o.Kind == "" || !strings.HasPrefix(o.Run, "sha256:") {
		return owner{}, false
	}
	return o, true
}

// createOwned creates dir with its marker, atomically: built under a
// temporary name and renamed, so a directory without a marker was never
// made by Execute.
func createOwned(dir string, o owner) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	os.Chmod(tmp, 0o755)
	raw, _ := json.Marshal(o)
	if err := os.WriteFile(filepath.Join(tmp, ownerName), append(raw, '\n'), 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// PrepareScratch creates the scratch directory Execute would give this run of
// def (opts): <out>.work for a Builder, <out>.partial for a Sharder, with the
// marker that ties it to the run, and returns its path. An existing one of the
// same run is kept; anything else there is an error. It is for tests and tools
// that simulate or prepare an interrupted run; Execute does this itself.
func PrepareScratch(def Def, opts Options) (string, error) {
	run, _, err := Fingerprint(def, opts)
	if err != nil {
		return "", err
	}
	out, err := OutDir(def, opts)
	if err != nil {
		return "", err
	}
	dir, own := out+WorkSuffix, owner{Kind: def.Kind, Run: run}
	if s, ok := opts.(Sharder); ok {
		dir, own.Shards = out+PartialSuffix, max(s.Shard().NumShards, 1)
		defer os.MkdirAll(filepath.Join(dir, doneDir), 0o755)
	}
	return dir, ownedDir(nil, def, dir, own, false)
}

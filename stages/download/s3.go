package download

import (
	"context"
	"fmt"
	"strings"

	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/objstore"
)

// s3Object records one object an s3:// source named, for the manifest: which
// version of it was read.
type s3Object struct {
	URL  string `json:"url"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

// expandSources resolves the sources into the files to read, in order: the
// local sources as datasets.ExpandSources gives them (sorted together), then
// each s3:// source's objects in key order, fetched once into the local
// object cache (objstore.FetchObject, keyed by key and ETag). A source URL
// names one object, or a prefix whose data files (the extensions a local
// folder is searched for) are all read.
func expandSources(ctx context.Context, o *Options) ([]string, []s3Object, error) {
	var local, remote []string
	for _, s := range o.Sources {
		if objstore.IsURL(s) {
			remote = append(remote, s)
		} else {
			local = append(local, s)
		}
	}
	var files []string
	if len(local) > 0 {
		var err error
		if files, err = datasets.ExpandSources(local); err != nil {
			return nil, nil, fmt.Errorf("download: %w", err)
		}
	}
	if len(remote) == 0 {
		return files, nil, nil
	}
	store, err := objstore.Open(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("download: %w", err)
	}
	store.Log = o.log
	if o.Workers > 0 {
		store.Workers = o.Workers
	}
	cache := o.CacheDir
	if cache == "" {
		cache = hub.CacheRoot()
	}
	var read []s3Object
	for _, src := range remote {
		u, err := objstore.ParseURL(src)
		if err != nil {
			return nil, nil, fmt.Errorf("download: source: %w", err)
		}
		objs, err := store.Objects(ctx, u)
		if err != nil {
			return nil, nil, fmt.Errorf("download: source: %w", err)
		}
		single := len(objs) == 1 && objs[0].Key == u.Prefix
		n := 0
		for _, obj := range objs {
			if !single && !isDataKey(obj.Key) {
				continue
			}
			path, err := store.FetchObject(ctx, u.Bucket, obj, cache)
			if err != nil {
				return nil, nil, fmt.Errorf("download: source: %w", err)
			}
			o.progress(obj.Size)
			files = append(files, path)
			read = append(read, s3Object{URL: "s3://" + u.Bucket + "/" + obj.Key, Size: obj.Size, ETag: obj.ETag})
			n++
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("download: source %s: no data files (.txt, .text, .jsonl, .json, .parquet, optionally .gz) under it", src)
		}
		o.log.Info("source from the object store", "url", src, "objects", n)
	}
	return files, read, nil
}

// isDataKey reports whether an object key has the extension of a data file,
// as datasets/sources.go's isDataFile decides for the files of a local folder.
func isDataKey(key string) bool {
	k := strings.TrimSuffix(strings.ToLower(key), ".gz")
	for _, ext := range []string{".txt", ".text", ".jsonl", ".json", ".parquet"} {
		if strings.HasSuffix(k, ext) {
			return true
		}
	}
	return false
}

package objstore

import (
	"errors"
	"fmt"
)

// DamagedError is a file of a committed artifact whose object in the store is
// not what the manifest lists: missing, of another size, or with other bytes
// (deleted, overwritten or corrupted behind the store's back). A Put of the
// same artifact with the file named (Repair) uploads it again.
type DamagedError struct {
	Bucket, Key string // the object
	Path        string // the artifact file it holds
	WantSize    int64
	WantSHA256  string
	Got         string // what was found: "missing", "N bytes sha256 H", ...
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("object store: s3://%s/%s is damaged: the manifest lists %d bytes sha256 %s, the store has %s "+
		"(deleted, overwritten or corrupted behind the store's back; publishing the same artifact again repairs it)",
		e.Bucket, e.Key, e.WantSize, e.WantSHA256, e.Got)
}

// DamagedFiles lists the artifact files err reports damaged (every
// *DamagedError in its tree, errors.Join included), in the order found.
func DamagedFiles(err error) []string {
	var out []string
	walkErrors(err, 0, func(e error) {
		if d, ok := e.(*DamagedError); ok {
			out = append(out, d.Path)
		}
	})
	return out
}

// maxErrorDepth bounds the wrapping walkErrors follows.
const maxErrorDepth = 32

// walkErrors calls fn on err and every error it wraps, depth-first.
func walkErrors(err error, depth int, fn func(error)) {
	if err == nil || depth > maxErrorDepth {
		return
	}
	fn(err)
	switch x := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			walkErrors(e, depth+1, fn)
		}
	case interface{ Unwrap() error }:
		walkErrors(x.Unwrap(), depth+1, fn)
	}
}

// errShortRange marks a ranged read that returned another length than asked
// (the object is not the size the manifest lists).
var errShortRange = errors.New("the object has another size")

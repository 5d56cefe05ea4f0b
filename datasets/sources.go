package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// TextSplit says how a plain-text file becomes documents.
type TextSplit string

const (
	ByLine      TextSplit = "line"      // one document per line (Hugging Face's text loader)
	ByParagraph TextSplit = "paragraph" // blank-line separated
	ByDocument  TextSplit = "document"  // the whole file
)

// ExpandSources turns files, folders and globs into a sorted file list.
func ExpandSources(sources []string) ([]string, error) {
	var files []string
	for _, s := range sources {
		matches, err := filepath.Glob(s)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", s, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("source %q: no such file, folder or glob match", s)
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, err
			}
			if !st.IsDir() {
				files = append(files, m)
				continue
			}
			err = filepath.WalkDir(m, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && isDataFile(p) {
					files = append(files, p)
				}
				return err
			})
			if err != nil {
				return nil, err
			}
		}
	}
	sort.Strings(files)
	return files, nil
}

func isDataFile(p string) bool {
	p = strings.TrimSuffix(strings.ToLower(p), ".gz")
	for _, ext := range []string{".txt", ".text", ".jsonl", ".json", ".parquet"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// ReadDocs streams the documents of one source file: .txt (split per ts), .jsonl
// or .json lines (field column), .parquet (column column); .gz is decompressed.
func ReadDocs(path, column string, ts TextSplit, fn func(string) error) error {
	if strings.HasSuffix(strings.ToLower(path), ".parquet") {
		return readParquetText(path, column, fn)
	}
	return withSource(path, func(r io.Reader, jsonl bool) error {
		if jsonl {
			return readJSONL(path, r, column, fn)
		}
		return readText(path, r, ts, fn)
	})
}

// withSource opens a text or JSON-lines source, decompressing .gz, and says
// which of the two it is.
func withSource(path string, fn func(r io.Reader, jsonl bool) error) error {
	lower := strings.ToLower(path)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(lower, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
		lower = strings.TrimSuffix(lower, ".gz")
	}
	return fn(r, strings.HasSuffix(lower, ".jsonl") || strings.HasSuffix(lower, ".json"))
}

func readJSONL(path string, r io.Reader, column string, fn func(string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	// One pass per line that keeps only the wanted field's bytes (a struct type
	// made for the column name), instead of a map of every field's raw value.
	typ := reflect.StructOf([]reflect.StructField{{Name: "Text", Type: reflect.TypeFor[json.RawMessage](),
		Tag: reflect.StructTag(fmt.Sprintf("json:%q", column))}})
	row := reflect.New(typ)
	field := row.Elem().Field(0)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		field.SetZero()
		if err := json.Unmarshal(sc.Bytes(), row.Interface()); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		raw := field.Bytes()
		if len(raw) == 0 {
			return fmt.Errorf("%s:%d: no field %q", path, line, column)
		}
		var text string // null reads as an empty document
		if err := json.Unmarshal(raw, &text); err != nil {
			return fmt.Errorf("%s:%d: field %q is not a string", path, line, column)
		}
		if err := fn(text); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readText(path string, r io.Reader, ts TextSplit, fn func(string) error) error {
	switch ts {
	case ByDocument:
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return fn(string(data))
	case ByLine, ByParagraph, "":
	default:
		return fmt.Errorf("text split %q: want line, paragraph or document", ts)
	}
	br := bufio.NewReaderSize(r, 1<<20)
	var para strings.Builder
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			text := strings.TrimRight(line, "\r\n")
			switch {
			case ts == ByParagraph && strings.TrimSpace(text) == "":
				if para.Len() > 0 {
					if err := fn(para.String()); err != nil {
						return err
					}
					para.Reset()
				}
			case ts == ByParagraph:
				if para.Len() > 0 {
					para.WriteByte('\n')
				}
				para.WriteString(text)
			default:
				if err := fn(text); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if para.Len() > 0 {
		return fn(para.String())
	}
	return nil
}

// readParquetText streams the documents of a Parquet source's string column
// (scanColumnTexts).
func readParquetText(path, column string, fn func(string) error) error {
	f, size, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanColumnTexts(f, size, path, column, func(docs []string) error {
		for _, doc := range docs {
			if err := fn(doc); err != nil {
				return err
			}
		}
		return nil
	})
}

// CountDocs counts a source file's documents: Parquet from its metadata, JSON
// lines as non-blank lines (one document each; the reading pass validates
// them), text by splitting it.
func CountDocs(path, column string, ts TextSplit) (int64, error) {
	if strings.HasSuffix(strings.ToLower(path), ".parquet") {
		pf, closeFile, err := openParquet(path)
		if err != nil {
			return 0, err
		}
		defer closeFile()
		return pf.NumRows(), nil
	}
	var n int64
	err := withSource(path, func(r io.Reader, jsonl bool) error {
		if !jsonl {
			return readText(path, r, ts, func(string) error { n++; return nil })
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<30)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) > 0 {
				n++
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	return n, err
}

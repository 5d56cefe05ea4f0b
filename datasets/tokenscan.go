package datasets

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// ScanTokensTables reads a tokens/v1 shard row group by row group; each table
// is freshly allocated, so fn may keep it (say, hand it to another goroutine).
func ScanTokensTables(path string, fn func(TokensTable) error) error {
	f, size, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return ScanTokensTablesAt(f, size, path, fn)
}

// ScanTokensTablesAt is ScanTokensTables over size bytes of r (a local file,
// or one streamed from an object store), naming the file name in errors.
//
// It reads any Parquet file with an int64 "id" column and a list<int32> "ids"
// column (one repetition level; lists and elements required or optional, as
// other writers make them), page by page: a page's levels give the documents'
// boundaries and its values are copied once into the table. An empty or null
// list is an empty document; a null id or token id is an error.
func ScanTokensTablesAt(r io.ReaderAt, size int64, name string, fn func(TokensTable) error) (err error) {
	defer recoverCorrupt(name, &err)
	pf, err := openParquetAt(r, size, name)
	if err != nil {
		return err
	}
	cols, err := findTokenColumns(pf, name)
	if err != nil {
		return err
	}
	meta := pf.Metadata()
	for g, rg := range pf.RowGroups() {
		where := fmt.Sprintf("%s: row group %d", name, g)
		hint := int64(0) // the chunk's bytes as a count of int32s; the footer's claim is capped by the file
		if g < len(meta.RowGroups) && cols.list < len(meta.RowGroups[g].Columns) {
			hint = min(meta.RowGroups[g].Columns[cols.list].MetaData.TotalCompressedSize, size) / 4
		}
		t, err := cols.readGroup(rg, hint, where)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

// tokenColumns locates a tokens/v1 shard's columns: the leaf indices of id
// and of the list's element, the element's highest definition level (a
// value) and the level from which a list entry exists (its repeated node is
// defined: below it, an empty or null list; from it up to maxDef, a null).
type tokenColumns struct {
	id               idColumn
	list             int
	maxDef, entryDef int
	listPath         string
}

func findTokenColumns(pf *parquet.File, name string) (tokenColumns, error) {
	s := pf.Schema()
	id, err := documentIDColumn(pf, name)
	if err != nil {
		return tokenColumns{}, err
	}
	var list parquet.LeafColumn
	ok := false
	var leafPath []string // (a LeafColumn's Path holds only the leaf's name)
	for _, p := range s.Columns() {
		if len(p) > 1 && p[0] == "ids" {
			list, ok = s.Lookup(p...)
			leafPath = p
			break
		}
	}
	path := strings.Join(leafPath, ".")
	if !ok || path == "" {
		return tokenColumns{}, fmt.Errorf("%s: missing column %q (has %s)", name, "ids", leafPaths(s))
	}
	if k, isLeaf := leafKind(list); !isLeaf || k != parquet.Int32 || list.MaxRepetitionLevel != 1 {
		return tokenColumns{}, fmt.Errorf("%s: column %q is %s with repetition depth %d, want a list of int32", name, path, leafType(list), list.MaxRepetitionLevel)
	}
	if err := typeMismatch(pf, name, path, list); err != nil {
		return tokenColumns{}, err
	}
	return tokenColumns{id: id, list: list.ColumnIndex, maxDef: list.MaxDefinitionLevel,
		entryDef: entryDefLevel(s, leafPath), listPath: path}, nil
}

// entryDefLevel is the definition level of the first repeated node on path
// from n: the optional and repeated nodes down to it, itself included.
func entryDefLevel(n parquet.Node, path []string) int {
	def := 0
	for _, name := range path {
		i := slices.IndexFunc(n.Fields(), func(f parquet.Field) bool { return f.Name() == name })
		if i < 0 {
			break // never: path is one of the schema's columns
		}
		if n = n.Fields()[i]; n.Optional() || n.Repeated() {
			def++
		}
		if n.Repeated() {
			break
		}
	}
	return def
}

func leafPaths(s *parquet.Schema) string {
	var out []string
	for _, p := range s.Columns() {
		out = append(out, strings.Join(p, "."))
	}
	return strings.Join(out, ", ")
}

// readGroup reads one row group into a table: the ids whole, then the list
// column's pages, each page's values appended to Flat at once. hint sizes
// Flat (it comes from the chunk's size in the file, so a claimed count is
// never allocated).
func (c tokenColumns) readGroup(rg parquet.RowGroup, hint int64, where string) (TokensTable, error) {
	rows := rg.NumRows()
	if rows < 0 {
		return TokensTable{}, fmt.Errorf("%s: %d rows claimed", where, rows)
	}
	chunks := rg.ColumnChunks()
	ids, err := readIDs(chunks[c.id.index], rows, c.id.unsigned)
	if err != nil {
		return TokensTable{}, fmt.Errorf("%s: column id: %w", where, err)
	}
	t := TokensTable{IDs: ids, Offsets: make([]int64, 1, len(ids)+1), Flat: make([]int32, 0, max(0, hint))}
	pages := chunks[c.list].Pages()
	defer pages.Close()
	var st listState
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return TokensTable{}, fmt.Errorf("%s: column %s: %w", where, c.listPath, err)
		}
		err = c.appendPage(&t, p, &st)
		parquet.Release(p)
		if err != nil {
			return TokensTable{}, fmt.Errorf("%s: column %s: %w", where, c.listPath, err)
		}
	}
	if st.started {
		t.Offsets = append(t.Offsets, int64(len(t.Flat)))
	}
	if docs := len(t.Offsets) - 1; docs != len(ids) || int64(docs) != rows {
		return TokensTable{}, fmt.Errorf("%s: the columns disagree on the number of rows: column %s has %d lists, column id %d values, the row group %d rows", where, c.listPath, docs, len(ids), rows)
	}
	return t, nil
}

// listState is what appendPage carries from one page of a row group's list
// column to the next: whether a document has started, and whether it started
// as an empty or null list (which no entry may continue).
type listState struct{ started, empty bool }

// appendPage appends one page of the list column to t: a repetition level of
// 0 starts a document (closing the one before), a definition level of maxDef
// is a token id, one below entryDef an empty or null list (only where a
// document starts, and then the whole document), any other a null id (an
// error).
func (c tokenColumns) appendPage(t *TokensTable, p parquet.Page, st *listState) error {
	rep, def := p.RepetitionLevels(), p.DefinitionLevels()
	var vals []int32
	// A dictionary-encoded page's Data is its indexes, also int32: those go
	// value by value, as does anything else unusual.
	if d := p.Data(); p.Dictionary() == nil && d.Kind() == encoding.Int32 && int64(len(rep)) == p.NumValues() {
		vals = d.Int32()
	} else {
		var err error
		if rep, def, vals, err = pageLevels(p); err != nil {
			return err
		}
	}
	if len(rep) != len(def) {
		return fmt.Errorf("a page with %d repetition and %d definition levels", len(rep), len(def))
	}
	base, n := int64(len(t.Flat)), 0
	for k, r := range rep {
		d := int(def[k])
		switch {
		case r == 0:
			if st.started {
				t.Offsets = append(t.Offsets, base+int64(n))
			}
			st.started, st.empty = true, d < c.entryDef
		case !st.started:
			return errors.New("the first list entry continues a row that never started")
		case st.empty:
			// parquet-go's row reader reads such a document as empty,
			// arrow-go's as the entries (FuzzScanTokens input f87a5fc872776f27).
			return fmt.Errorf("document %d: an empty or null list continued by an entry", len(t.Offsets)-1)
		}
		switch {
		case d == c.maxDef:
			n++
		case d > c.maxDef:
			return fmt.Errorf("definition level %d above the column's %d", d, c.maxDef)
		case d >= c.entryDef:
			return fmt.Errorf("document %d holds a null token id", len(t.Offsets)-1)
		case r > 0: // an empty or null list is a whole row's, never inside one
			return fmt.Errorf("document %d: an entry inside its list with definition level %d, below the %d of an entry", len(t.Offsets)-1, d, c.entryDef)
		}
	}
	if n != len(vals) {
		return fmt.Errorf("a page with %d values for %d defined entries", len(vals), n)
	}
	t.Flat = append(t.Flat, vals...)
	return nil
}

// pageLevels reads a page value by value (through appendValues, so its
// claimed count is not trusted for an allocation): the levels of every entry
// and the non-null values.
func pageLevels(p parquet.Page) (rep, def []byte, vals []int32, err error) {
	vs, err := appendValues(nil, p, func(v parquet.Value) parquet.Value { return v })
	if err != nil {
		return nil, nil, nil, err
	}
	rep, def = make([]byte, len(vs)), make([]byte, len(vs))
	for i, v := range vs {
		rep[i], def[i] = byte(v.RepetitionLevel()), byte(v.DefinitionLevel())
		if !v.IsNull() {
			vals = append(vals, v.Int32())
		}
	}
	return rep, def, vals, nil
}

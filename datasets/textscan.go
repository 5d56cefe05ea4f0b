package datasets

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// TextBatch is a run of consecutive documents of a text/v1 shard: document i
// has id IDs[i] and text Texts[i]. A batch owns its memory (no later read
// reuses it), so a caller may keep it or hand it to another goroutine.
type TextBatch struct {
	IDs   []int64
	Texts []string
}

// ScanTextAt streams the documents of a text/v1 shard (size bytes of r; name
// in errors) in order, a batch at a time, with every text in a batch's own
// storage. It reads what ScanParquetAt reads into TextRow; on a damaged file
// it may refuse where that row reader reads on (FuzzScanText), never the
// reverse.
//
// Shards as the download stage writes them (columns id INT64 and text
// BYTE_ARRAY, both required) are read page by page: a text page's bytes are
// copied once into one buffer and the batch's strings point into it, where the
// row reader builds each row by reflection and a string per text, which the
// caller then has to copy (its buffers are reused). A nullable text column
// (as pandas, Arrow and Hugging Face datasets write strings) is read page by
// page too, a null as "" as the row reader reads it. Any other layout (a
// nullable id, other types, nesting) goes through that row reader.
func ScanTextAt(r io.ReaderAt, size int64, name string, fn func(TextBatch) error) (err error) {
	defer recoverCorrupt(name, &err)
	pf, err := openParquetAt(r, size, name)
	if err != nil {
		return err
	}
	text, okText := plainColumn(pf.Schema(), "text", parquet.ByteArray, true)
	id, okID := plainColumn(pf.Schema(), "id", parquet.Int64, false)
	if !okText || !okID {
		return scanTextRows(pf, name, fn)
	}
	return scanTextGroups(pf, name, id.index, text, fn)
}

// ScanTextsAt streams the texts of a Parquet file's column "text" in order, a
// batch at a time, each batch in its own storage, as ScanTextAt does but
// without ids: the file needs no id column, and one it has is not read (what
// `mdlm tokenizer train` reads from text/v1 shards and users' files). The
// column is read page by page (scanColumnTexts): strings, required or nullable
// (a null reads as ""); any other column "text" is refused. On a damaged file
// it may refuse where the row reader reads on, never the reverse
// (FuzzScanText).
func ScanTextsAt(r io.ReaderAt, size int64, name string, fn func([]string) error) error {
	return scanColumnTexts(r, size, name, "text", fn)
}

// ScanTexts is ScanTextsAt over the local file path.
func ScanTexts(path string, fn func([]string) error) error {
	f, size, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return ScanTextsAt(f, size, path, fn)
}

// scanTextGroups reads pf's row groups with scanTextGroup.
func scanTextGroups(pf *parquet.File, name string, idCol int, text leafColumn, fn func(TextBatch) error) error {
	for g, rg := range pf.RowGroups() {
		if err := scanTextGroup(rg, idCol, text, fmt.Sprintf("%s: row group %d", name, g), fn); err != nil {
			return err
		}
	}
	return nil
}

// scanColumnTexts streams the texts of a file's string column (ScanTextsAt's
// "text", or a user's choice of column, what ReadDocs reads) page by page:
// required or nullable (a null reads as ""), checked against its row groups'
// row counts. A column that is missing, of another
// type, repeated or a group is refused with what it is: its values are no
// documents (parquet-go would print a null as "<null>" and a number as its
// digits).
func scanColumnTexts(r io.ReaderAt, size int64, name, column string, fn func([]string) error) (err error) {
	defer recoverCorrupt(name, &err)
	pf, err := openParquetAt(r, size, name)
	if err != nil {
		return err
	}
	text, ok := plainColumn(pf.Schema(), column, parquet.ByteArray, true)
	if !ok {
		return notStringColumn(pf.Schema(), name, column)
	}
	return scanTextGroups(pf, name, -1, text, func(b TextBatch) error { return fn(b.Texts) })
}

// notStringColumn is the error for a column plainColumn does not take as text:
// missing, a group (a list or a struct), or a leaf of another layout.
func notStringColumn(s *parquet.Schema, name, column string) error {
	have := columnNames(s)
	leaf, ok := s.Lookup(column)
	switch {
	case !ok && !slices.Contains(have, column):
		return fmt.Errorf("%s: missing column %q (has %v)", name, column, have)
	case !ok:
		return fmt.Errorf("%s: column %q is a group (a list or a struct), not a string column", name, column)
	}
	what := leaf.Node.Type().Kind().String()
	if lt := leaf.Node.Type().LogicalType(); lt != nil && lt.Value != nil {
		what += " " + lt.String()
	}
	if leaf.MaxRepetitionLevel > 0 {
		what = "repeated " + what
	}
	return fmt.Errorf("%s: column %q is %s, not a string column (BYTE_ARRAY, unnested)", name, column, what)
}

// leafColumn is a leaf column of a file: its name, its index, and whether it
// is nullable.
type leafColumn struct {
	name     string
	index    int
	optional bool
}

// plainColumn finds column name when it is laid out as the download stage
// writes it: unnested, required (or, where nullable, optional), of kind
// (INT64 without a logical type or a signed 64-bit one; BYTE_ARRAY without one
// or STRING).
func plainColumn(s *parquet.Schema, name string, kind parquet.Kind, nullable bool) (leafColumn, bool) {
	c, ok := s.Lookup(name)
	if !ok || c.MaxRepetitionLevel != 0 || c.MaxDefinitionLevel > 1 || (c.MaxDefinitionLevel == 1 && !nullable) {
		return leafColumn{}, false
	}
	t := c.Node.Type()
	if t.Kind() != kind {
		return leafColumn{}, false
	}
	if lt := t.LogicalType(); lt != nil && lt.Value != nil {
		switch v := lt.Value.(type) {
		case *format.IntType:
			if kind != parquet.Int64 || v.BitWidth != 64 || !v.IsSigned {
				return leafColumn{}, false
			}
		case *format.StringType:
			if kind != parquet.ByteArray {
				return leafColumn{}, false
			}
		default:
			return leafColumn{}, false
		}
	}
	return leafColumn{name: name, index: c.ColumnIndex, optional: c.MaxDefinitionLevel == 1}, true
}

// scanTextGroup reads one row group: its ids whole (8 bytes a row; none when
// idCol < 0), then its text pages, each a batch. Like the row reader, it reads
// each column's pages only until it has a value for each of the group's rows
// (with ids, each id): pages after those are not read. A column holding more
// values than the group's rows is refused (parquet-go's row reader makes the
// extra rows of zeros). Its own errors start with where (the file and row
// group); the caller's come back as they are.
func scanTextGroup(rg parquet.RowGroup, idCol int, text leafColumn, where string, fn func(TextBatch) error) error {
	rows := rg.NumRows()
	if rows < 0 {
		return fmt.Errorf("%s: %d rows claimed", where, rows)
	}
	chunks := rg.ColumnChunks()
	if err := oneValueARow(chunks[text.index], rows); err != nil {
		return fmt.Errorf("%s: column %s: %w", where, text.name, err)
	}
	var ids []int64
	want := rows // values the text column must give
	if idCol >= 0 {
		var err error
		if ids, err = readIDs(chunks[idCol], rows); err != nil {
			return fmt.Errorf("%s: column id: %w", where, err)
		}
		want = int64(len(ids))
	}
	pages := chunks[text.index].Pages()
	defer pages.Close()
	row := int64(0)
	for row < want {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: column %s: %w", where, text.name, err)
		}
		texts, err := pageTexts(p, text.optional)
		parquet.Release(p)
		if err != nil {
			return fmt.Errorf("%s: column %s: %w", where, text.name, err)
		}
		n := int64(len(texts))
		if n > want-row {
			return fmt.Errorf("%s: column %s holds more values than the row group's %d rows", where, text.name, rows)
		}
		if n > 0 {
			b := TextBatch{Texts: texts}
			if idCol >= 0 {
				b.IDs = ids[row : row+n : row+n]
			}
			if err := fn(b); err != nil {
				return err
			}
		}
		row += n
	}
	switch {
	case idCol >= 0 && (row != want || row != rows):
		return fmt.Errorf("%s: the columns disagree on the number of rows: column %s has %d values, column id %d, the row group %d rows", where, text.name, row, len(ids), rows)
	case row != rows:
		return fmt.Errorf("%s: column %s has %d values, the row group %d rows", where, text.name, row, rows)
	}
	return nil
}

// readIDs reads the values of an INT64 column chunk with no nulls, which must
// state one value a row and hold no more than the row group's rows (it stops
// reading pages once it has that many). The slice grows with the pages
// actually decoded, not with a count the file claims.
func readIDs(cc parquet.ColumnChunk, rows int64) ([]int64, error) {
	if err := oneValueARow(cc, rows); err != nil {
		return nil, err
	}
	pages := cc.Pages()
	defer pages.Close()
	var ids []int64
	for int64(len(ids)) < rows {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if p.NumNulls() > 0 {
			return nil, fmt.Errorf("a null document id near row %d", len(ids))
		}
		if d := p.Data(); d.Kind() == encoding.Int64 {
			ids = append(ids, d.Int64()...)
		} else {
			ids, err = appendValues(ids, p, parquet.Value.Int64)
		}
		parquet.Release(p)
		if err != nil {
			return nil, err
		}
	}
	if int64(len(ids)) > rows { // a damaged page: the row reader would make rows of zeros
		return nil, fmt.Errorf("%d values in a row group of %d rows", len(ids), rows)
	}
	return ids, nil
}

// oneValueARow refuses an unnested column chunk that states other than one
// value (a null counts as one) for each of its row group's rows: it is damaged
// even where the pages a reader would take are intact (a group of 0 rows over
// a damaged page: regression input affd290f4b2609fb).
func oneValueARow(cc parquet.ColumnChunk, rows int64) error {
	if n := cc.NumValues(); n != rows {
		return fmt.Errorf("%d values in a row group of %d rows", n, rows)
	}
	return nil
}

// pageTexts copies the texts of one page of a BYTE_ARRAY column into one
// buffer and returns strings over it, one a row; a null of an optional column
// is "".
func pageTexts(p parquet.Page, optional bool) ([]string, error) {
	d := p.Data()
	if d.Kind() != encoding.ByteArray { // dictionary-encoded
		return valueTexts(p, optional)
	}
	var texts []string
	if data, offsets := d.ByteArray(); len(offsets) >= 2 {
		lo, hi := offsets[0], offsets[len(offsets)-1]
		own := string(data[lo:hi])
		texts = make([]string, len(offsets)-1)
		for i := range texts {
			texts[i] = own[offsets[i]-lo : offsets[i+1]-lo]
		}
	}
	if !optional { // Data holds one value a row
		return texts, nil
	}
	return placeNulls(texts, p.DefinitionLevels()) // Data holds the values present
}

// valueTexts is pageTexts through the page's values (nulls among them), for
// pages whose Data is not the texts.
func valueTexts(p parquet.Page, optional bool) ([]string, error) {
	vals, err := appendValues(nil, p, func(v parquet.Value) []byte { return v.ByteArray() })
	if err != nil {
		return nil, err
	}
	if levels := p.DefinitionLevels(); optional && len(vals) != len(levels) {
		return nil, fmt.Errorf("a page of %d rows gives %d values", len(levels), len(vals))
	}
	n := 0
	for _, v := range vals {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range vals {
		b.Write(v)
	}
	return splitString(b.String(), vals, func(v []byte) int { return len(v) }), nil
}

// placeNulls spreads present, the values of an optional column's page, over
// its rows: row i holds the next value where levels[i] is 1 and "" (a null)
// where it is 0. The levels must mark as many rows present as there are
// values.
func placeNulls(present []string, levels []byte) ([]string, error) {
	n := 0
	for i, l := range levels {
		if l > 1 {
			return nil, fmt.Errorf("definition level %d at row %d of a page, over the column's 1", l, i)
		}
		n += int(l)
	}
	if n != len(present) {
		return nil, fmt.Errorf("a page marks %d of its %d rows present and holds %d values", n, len(levels), len(present))
	}
	if n == len(levels) {
		return present, nil
	}
	texts := make([]string, len(levels))
	k := 0
	for i, l := range levels {
		if l == 1 {
			texts[i] = present[k]
			k++
		}
	}
	return texts, nil
}

// splitString cuts s into consecutive strings of the lengths of items.
func splitString[T any](s string, items []T, length func(T) int) []string {
	out := make([]string, len(items))
	at := 0
	for i, it := range items {
		n := length(it)
		out[i] = s[at : at+n]
		at += n
	}
	return out
}

// appendValues appends f of each value of page p to dst (values read in
// batches, so a page's claimed count is not trusted for an allocation).
func appendValues[T any](dst []T, p parquet.Page, f func(parquet.Value) T) ([]T, error) {
	r := p.Values()
	buf := make([]parquet.Value, 1024)
	for {
		n, err := r.ReadValues(buf)
		for _, v := range buf[:n] {
			dst = append(dst, f(v))
		}
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
		if n == 0 {
			return dst, io.ErrNoProgress
		}
	}
}

// scanTextRows is ScanTextAt's general path: parquet-go's row reader into
// TextRow, each text copied (the reader reuses its buffers) into one string
// per batch.
func scanTextRows(pf *parquet.File, name string, fn func(TextBatch) error) error {
	if err := requireColumns(pf, name, []string{"id", "text"}); err != nil {
		return err
	}
	return scanRows(pf, name, func(rows []TextRow) error {
		n := 0
		for _, r := range rows {
			n += len(r.Text)
		}
		var b strings.Builder
		b.Grow(n)
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
			b.WriteString(r.Text)
		}
		return fn(TextBatch{IDs: ids, Texts: splitString(b.String(), rows, func(r TextRow) int { return len(r.Text) })})
	})
}

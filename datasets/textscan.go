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
// storage. Where it reads a file, parquet-go's row reader (ScanParquetAt into
// TextRow) reads the same texts and ids, but for unsigned 32-bit ids over
// 2^31-1, which that reader reads as negative numbers; it refuses some files
// the row reader reads on (below, and damaged files: FuzzScanText), never the
// reverse.
//
// The shard is read page by page: a text page's bytes are copied once into
// one buffer and the batch's strings point into it, where the row reader
// builds each row by reflection and a string per text, which the caller then
// has to copy (its buffers are reused). The column text is a string column,
// required or nullable (as pandas, Arrow and Hugging Face datasets write
// strings; a null reads as ""); the column id an integer column
// (documentIDColumn), required or nullable without nulls. Any other column of
// either name, or one whose logical type does not fit its stored type
// (typeMismatch), is refused with what it is: the row reader would read a
// column text of numbers as their digits and a null id as 0.
func ScanTextAt(r io.ReaderAt, size int64, name string, fn func(TextBatch) error) (err error) {
	defer recoverCorrupt(name, &err)
	pf, err := openParquetAt(r, size, name)
	if err != nil {
		return err
	}
	id, err := documentIDColumn(pf, name)
	if err != nil {
		return err
	}
	text, err := stringColumn(pf, name, "text")
	if err != nil {
		return err
	}
	return scanTextGroups(pf, name, &id, text, fn)
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
func scanTextGroups(pf *parquet.File, name string, id *idColumn, text leafColumn, fn func(TextBatch) error) error {
	for g, rg := range pf.RowGroups() {
		if err := scanTextGroup(rg, id, text, fmt.Sprintf("%s: row group %d", name, g), fn); err != nil {
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
	text, err := stringColumn(pf, name, column)
	if err != nil {
		return err
	}
	return scanTextGroups(pf, name, nil, text, func(b TextBatch) error { return fn(b.Texts) })
}

// leafOf finds column, a leaf of pf whose logical type fits the physical type
// the file states for it (typeMismatch), or says what it is instead: missing,
// or a group (a list or a struct), which is not want ("a string column").
func leafOf(pf *parquet.File, name, column, want string) (parquet.LeafColumn, error) {
	leaf, ok := pf.Schema().Lookup(column)
	if !ok {
		if have := columnNames(pf.Schema()); !slices.Contains(have, column) {
			return leaf, fmt.Errorf("%s: missing column %q (has %v)", name, column, have)
		}
		return leaf, fmt.Errorf("%s: column %q is a group (a list or a struct), not %s", name, column, want)
	}
	if _, ok := leafKind(leaf); !ok {
		return leaf, fmt.Errorf("%s: column %q is a leaf annotated %s, which only a group can be, not %s", name, column, leaf.Node.Type(), want)
	}
	return leaf, typeMismatch(pf, name, column, leaf)
}

// leafKind is leaf's Kind; false for a leaf whose schema element is annotated
// with a group's type (MAP, LIST, VARIANT), which a damaged file can state and
// whose Kind parquet-go panics on: it has no physical type.
func leafKind(leaf parquet.LeafColumn) (parquet.Kind, bool) {
	t := leaf.Node.Type()
	if t.PhysicalType() == nil {
		return 0, false
	}
	return t.Kind(), true
}

// statedKind is the physical type pf's schema states for its leaf column
// (the schema lists its elements depth first, so its leaves in column
// order). parquet-go gives a column the Kind of its logical type (INT(32) is
// INT32) and decodes the column's pages by that: where the two disagree (an
// INT64 column annotated INT(32)) the values would be read at the wrong
// width, without an error.
func statedKind(pf *parquet.File, column int) (parquet.Kind, bool) {
	schema := pf.Metadata().Schema
	n := 0
	for _, e := range schema[min(1, len(schema)):] {
		if !e.Type.Valid { // a group
			continue
		}
		if n == column {
			return parquet.Kind(e.Type.V), true
		}
		n++
	}
	return 0, false
}

// typeMismatch is the error for leaf, the file's column named column, when its
// logical type does not fit the physical type the file states for it (nil when
// they agree).
func typeMismatch(pf *parquet.File, name, column string, leaf parquet.LeafColumn) error {
	stated, ok := statedKind(pf, leaf.ColumnIndex)
	if kind, isLeaf := leafKind(leaf); ok && isLeaf && stated == kind {
		return nil
	}
	what := "no physical type"
	switch {
	case ok && stated >= parquet.Boolean && stated <= parquet.FixedLenByteArray:
		what = stated.String()
	case ok:
		what = fmt.Sprintf("physical type %d, which Parquet does not define", int(stated))
	}
	return fmt.Errorf("%s: column %q is %s stored as %s: its logical type does not fit its physical type", name, column, leafType(leaf), what)
}

// leafType describes a leaf column's type for an error: its physical type,
// logical type and repetition (INT64 INT(64,true), repeated BYTE_ARRAY).
func leafType(leaf parquet.LeafColumn) string {
	kind, ok := leafKind(leaf)
	if !ok {
		return "a leaf annotated " + leaf.Node.Type().String()
	}
	what := kind.String()
	if lt := leaf.Node.Type().LogicalType(); lt != nil && lt.Value != nil {
		what += " " + lt.String()
	}
	if leaf.MaxRepetitionLevel > 0 {
		what = "repeated " + what
	}
	return what
}

// leafColumn is a leaf column of a file: its name, its index, and whether it
// is nullable.
type leafColumn struct {
	name     string
	index    int
	optional bool
}

// stringColumn finds column, a string column as the download stage writes
// it, or nullable: unnested, BYTE_ARRAY without a logical type or with one of
// the text annotations, STRING, ENUM (strings from a set) or JSON (the text of
// JSON values). Binary annotations (BSON, DECIMAL, geometry) are no text. Any
// other column is refused naming what it is.
func stringColumn(pf *parquet.File, name, column string) (leafColumn, error) {
	c, err := leafOf(pf, name, column, "a string column")
	if err != nil {
		return leafColumn{}, err
	}
	ok := c.MaxRepetitionLevel == 0 && c.MaxDefinitionLevel <= 1 && c.Node.Type().Kind() == parquet.ByteArray
	if lt := c.Node.Type().LogicalType(); ok && lt != nil && lt.Value != nil {
		switch lt.Value.(type) {
		case *format.StringType, *format.EnumType, *format.JsonType:
		default:
			ok = false
		}
	}
	if !ok {
		return leafColumn{}, fmt.Errorf("%s: column %q is %s, not a string column (BYTE_ARRAY, unnested; STRING, ENUM, JSON or no annotation)", name, column, leafType(c))
	}
	return leafColumn{name: column, index: c.ColumnIndex, optional: c.MaxDefinitionLevel == 1}, nil
}

// idColumn is a shard's document id column (documentIDColumn).
type idColumn struct {
	leafColumn
	// unsigned: the logical type is an unsigned integer. An INT32 value's
	// bits are then a uint32, and an INT64 value's a uint64, refused over
	// 2^63-1 (a document id is an int64).
	unsigned bool
}

// documentIDColumn finds the column id of a text/v1 or tokens/v1 shard: an
// unnested INT64 or INT32 column, required or nullable (a null id is refused
// where it is read), without a logical type or with an integer one, signed or
// unsigned. It names what the column is otherwise.
func documentIDColumn(pf *parquet.File, name string) (idColumn, error) {
	c, err := leafOf(pf, name, "id", "an integer column")
	if err != nil {
		return idColumn{}, err
	}
	kind := c.Node.Type().Kind()
	ok := c.MaxRepetitionLevel == 0 && c.MaxDefinitionLevel <= 1 && (kind == parquet.Int64 || kind == parquet.Int32)
	unsigned := false
	if lt := c.Node.Type().LogicalType(); ok && lt != nil && lt.Value != nil {
		it, isInt := lt.Value.(*format.IntType)
		ok, unsigned = isInt, isInt && !it.IsSigned
	}
	if !ok {
		return idColumn{}, fmt.Errorf("%s: column \"id\" is %s, not an integer column (INT64 or INT32, unnested)", name, leafType(c))
	}
	return idColumn{leafColumn{name: "id", index: c.ColumnIndex, optional: c.MaxDefinitionLevel == 1}, unsigned}, nil
}

// scanTextGroup reads one row group: its ids whole (8 bytes a row; none when
// id is nil), then its text pages, each a batch. Like the row reader, it reads
// each column's pages only until it has a value for each of the group's rows
// (with ids, each id): pages after those are not read. A column holding more
// values than the group's rows is refused (parquet-go's row reader makes the
// extra rows of zeros). Its own errors start with where (the file and row
// group); the caller's come back as they are.
func scanTextGroup(rg parquet.RowGroup, id *idColumn, text leafColumn, where string, fn func(TextBatch) error) error {
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
	if id != nil {
		var err error
		if ids, err = readIDs(chunks[id.index], rows, id.unsigned); err != nil {
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
			if id != nil {
				b.IDs = ids[row : row+n : row+n]
			}
			if err := fn(b); err != nil {
				return err
			}
		}
		row += n
	}
	switch {
	case id != nil && (row != want || row != rows):
		return fmt.Errorf("%s: the columns disagree on the number of rows: column %s has %d values, column id %d, the row group %d rows", where, text.name, row, len(ids), rows)
	case row != rows:
		return fmt.Errorf("%s: column %s has %d values, the row group %d rows", where, text.name, row, rows)
	}
	return nil
}

// readIDs reads the values of an integer column chunk with no nulls, which
// must state one value a row and hold no more than the row group's rows (it
// stops reading pages once it has that many). The slice grows with the pages
// actually decoded, not with a count the file claims. unsigned: the column's
// logical type is unsigned (idColumn).
func readIDs(cc parquet.ColumnChunk, rows int64, unsigned bool) ([]int64, error) {
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
		start := len(ids)
		ids, err = appendPageIDs(ids, p, unsigned)
		parquet.Release(p)
		if err != nil {
			return nil, err
		}
		if unsigned {
			if i := slices.IndexFunc(ids[start:], func(v int64) bool { return v < 0 }); i >= 0 {
				return nil, fmt.Errorf("document id %d at row %d is over 2^63-1 (ids are signed 64-bit)", uint64(ids[start+i]), start+i)
			}
		}
	}
	if int64(len(ids)) > rows { // a damaged page: the row reader would make rows of zeros
		return nil, fmt.Errorf("%d values in a row group of %d rows", len(ids), rows)
	}
	return ids, nil
}

// appendPageIDs appends the ids of one page of an integer column to ids: an
// INT32 value widened (as a uint32 where unsigned), an INT64 as it is (a
// uint64's bits where unsigned: readIDs refuses those over 2^63-1).
func appendPageIDs(ids []int64, p parquet.Page, unsigned bool) ([]int64, error) {
	d := p.Data()
	switch {
	case p.Dictionary() != nil: // Data holds the indexes into the dictionary
	case d.Kind() == encoding.Int64:
		return append(ids, d.Int64()...), nil
	case d.Kind() == encoding.Int32:
		for _, v := range d.Int32() {
			ids = append(ids, widenID(v, unsigned))
		}
		return ids, nil
	}
	null := false
	ids, err := appendValues(ids, p, func(v parquet.Value) int64 { // dictionary pages
		null = null || v.IsNull()
		if v.Kind() == parquet.Int32 {
			return widenID(v.Int32(), unsigned)
		}
		return v.Int64()
	})
	if err == nil && null {
		err = errors.New("a null document id in a page that counts none")
	}
	return ids, err
}

// widenID is an INT32 id as an int64: its bits as a uint32 where the column
// is unsigned.
func widenID(v int32, unsigned bool) int64 {
	if unsigned {
		return int64(uint32(v))
	}
	return int64(v)
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

package objstore

import (
	"fmt"
	"strconv"
	"strings"
)

// parseContentRange parses a Content-Range header of a ranged GET,
// "bytes FIRST-LAST/TOTAL" (TOTAL may be "*": total is then -1). It refuses
// anything else: negative or overflowing numbers, LAST before FIRST, a
// range ending past TOTAL.
func parseContentRange(h string) (first, last, total int64, err error) {
	bad := func(why string) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: %s", truncateHeader(h), why)
	}
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return bad(`not "bytes "`)
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no /total")
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return bad("no first-last")
	}
	if first, err = parseOffset(a); err != nil {
		return bad("first: " + err.Error())
	}
	if last, err = parseOffset(b); err != nil {
		return bad("last: " + err.Error())
	}
	if last < first {
		return bad("last before first")
	}
	if size == "*" {
		return first, last, -1, nil
	}
	if total, err = parseOffset(size); err != nil {
		return bad("total: " + err.Error())
	}
	if last >= total {
		return bad("range ends past the total")
	}
	return first, last, total, nil
}

// parseOffset parses a non-negative decimal (digits only, no sign).
func parseOffset(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal", truncateHeader(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", truncateHeader(s)) // strconv's error echoes all of s
	}
	return n, nil
}

// truncateHeader bounds a header echoed into an error.
func truncateHeader(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

package torchckpt

// The pre-scan of a .ckpt's data.pkl (issue 19, defect 3). gopickle allocates
// whatever a length field asks for (FRAME, BINUNICODE8, BINBYTES8, LONG4 ...)
// and panics on a few malformed opcodes (a LONG1 of zero bytes, an opcode
// byte of 0xff), so every opcode of the exact bytes it will decode is walked
// first, without building anything, and a pickle that could make it allocate
// more than the entry holds is refused. The opcode table is the decoder's
// own (gopickle's pickle/pickle.go dispatch table, protocols 2 to 5).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

const (
	// maxPickle bounds data.pkl: tensors live in separate records, so even a
	// large model's pickle is a few MB (the fixtures' are 11 and 18 KB).
	maxPickle = 64 << 20
	// maxPickleOps bounds the opcodes decoded: each can make the decoder
	// allocate an object (a dict is ~200 bytes), so 2M opcodes stay under
	// ~0.5 GB. A Lightning checkpoint holding a pickled GPT-2 tokenizer has
	// well under a million; the fixtures have 3,081 and 5,827.
	maxPickleOps = 2_000_000
	// maxNumberLine bounds the text argument of INT, LONG and FLOAT: a long
	// decimal is parsed in quadratic time.
	maxNumberLine = 256
	// maxLongBytes bounds LONG1/LONG4 integers (a checkpoint's are counters).
	maxLongBytes = 1024
)

// Opcode argument shapes.
var (
	// fixed: opcodes followed by an argument of a fixed number of bytes.
	pickleFixed = map[byte]int{'K': 1, 'q': 1, 'h': 1, 'M': 2, 'J': 4, 'r': 4, 'j': 4, 'G': 8}
	// sized: opcodes followed by a little-endian length of this many bytes,
	// then that many bytes.
	pickleSized = map[byte]int{'U': 1, 0x8c: 1, 'C': 1, 0x8a: 1, 'T': 4, 'X': 4, 'B': 4, 0x8b: 4, 0x8d: 8, 0x8e: 8, 0x96: 8}
	// lines: opcodes followed by this many newline-terminated arguments.
	pickleLines = map[byte]int{'I': 1, 'L': 1, 'S': 1, 'V': 1, 'F': 1, 'P': 1, 'g': 1, 'p': 1, 'c': 2, 'i': 2}
)

// pickleNoArg lists the opcodes without an argument.
const pickleNoArg = "(.012NRbaesu}dl]t)\x85\x86\x87\x88\x89\x81\x92\x93\x94\x8f\x90\x91Qo\x97\x98"

// scanPickle walks the opcodes of a pickle of protocol 2 to 5 up to its first
// STOP (where the decoder stops) without building anything. It refuses an
// unknown opcode, a protocol outside 2-5, a FRAME or an argument whose length
// runs past the data, a number too long to parse in linear time, an integer
// of zero bytes, copyreg extensions, and more than maxPickleOps opcodes.
func scanPickle(data []byte) error {
	ops := 0
	for i := 0; i < len(data); {
		op, at := data[i], i
		i++
		if ops++; ops > maxPickleOps {
			return fmt.Errorf("pickle at offset %d: more than %d opcodes", at, maxPickleOps)
		}
		next, err := scanArg(data, op, i)
		if err != nil {
			return fmt.Errorf("pickle at offset %d: %w", at, err)
		}
		if op == '.' {
			return nil
		}
		i = next
	}
	return fmt.Errorf("pickle: no STOP opcode (truncated)")
}

// scanArg checks the argument of op, which starts at data[i], and returns the
// offset of the next opcode.
func scanArg(data []byte, op byte, i int) (int, error) {
	rest := len(data) - i
	switch {
	case op == 0x80: // PROTO
		if rest < 1 {
			return 0, fmt.Errorf("truncated PROTO")
		}
		if v := data[i]; v < 2 || v > 5 {
			return 0, fmt.Errorf("protocol %d, want 2 to 5", v)
		}
		return i + 1, nil
	case op == 0x95: // FRAME: an 8-byte length, then the frame's opcodes inline
		if rest < 8 {
			return 0, fmt.Errorf("truncated FRAME")
		}
		if n := binary.LittleEndian.Uint64(data[i:]); n > uint64(rest-8) {
			return 0, fmt.Errorf("FRAME of %s bytes exceeds the %d bytes left", sizeText(n), rest-8)
		}
		return i + 8, nil
	case op >= 0x82 && op <= 0x84:
		return 0, fmt.Errorf("copyreg extension opcode 0x%02x is not used by torch.save", op)
	case pickleFixed[op] > 0:
		if w := pickleFixed[op]; w <= rest {
			return i + w, nil
		}
		return 0, fmt.Errorf("truncated opcode 0x%02x", op)
	case pickleSized[op] > 0:
		return scanSized(data, op, i)
	case pickleLines[op] > 0:
		return scanLines(data, op, i)
	case strings.IndexByte(pickleNoArg, op) >= 0:
		return i, nil
	}
	return 0, fmt.Errorf("unknown opcode 0x%02x", op)
}

// scanSized checks a length-prefixed argument against the bytes left.
func scanSized(data []byte, op byte, i int) (int, error) {
	w := pickleSized[op]
	if i+w > len(data) {
		return 0, fmt.Errorf("truncated opcode 0x%02x", op)
	}
	var n uint64
	for k := w - 1; k >= 0; k-- {
		n = n<<8 | uint64(data[i+k])
	}
	i += w
	if left := len(data) - i; n > uint64(left) {
		return 0, fmt.Errorf("opcode 0x%02x claims %s bytes, %d remain", op, sizeText(n), left)
	}
	if op == 0x8a || op == 0x8b { // LONG1, LONG4
		if n == 0 {
			return 0, fmt.Errorf("integer of 0 bytes (opcode 0x%02x) is not supported", op)
		}
		if n > maxLongBytes {
			return 0, fmt.Errorf("integer of %d bytes exceeds %d", n, maxLongBytes)
		}
	}
	return i + int(n), nil
}

// scanLines checks newline-terminated arguments.
func scanLines(data []byte, op byte, i int) (int, error) {
	for k := 0; k < pickleLines[op]; k++ {
		nl := bytes.IndexByte(data[i:], '\n')
		if nl < 0 {
			return 0, fmt.Errorf("truncated opcode 0x%02x", op)
		}
		if (op == 'I' || op == 'L' || op == 'F') && nl > maxNumberLine {
			return 0, fmt.Errorf("number of %d digits exceeds %d", nl, maxNumberLine)
		}
		i += nl + 1
	}
	return i, nil
}

// sizeText writes a size, as a power of two where it is one (2^62).
func sizeText(n uint64) string {
	if n >= 1<<20 && n&(n-1) == 0 {
		k := 0
		for m := n; m > 1; m >>= 1 {
			k++
		}
		return fmt.Sprintf("2^%d", k)
	}
	return fmt.Sprint(n)
}

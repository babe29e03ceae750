package httpconfig

import (
	"encoding/binary"
	"fmt"
)

// The proposal codec is the body of POST /internal/propose and its answer.
// It faces the network, so decoding validates everything and bounds every
// allocation by the input length.
//
//	request:  version(1 byte) uvarint(count) { uvarint(len) bytes }*count
//	response: version(1 byte) uvarint(count) { uvarint(index) uvarint(errLen) errBytes }*count
//
// Varints must be minimally encoded, count must be at least 1, and no bytes
// may follow the last item, so every accepted message has exactly one
// encoding.

// CodecVersion is the version byte that starts every encoded message.
const CodecVersion byte = 1

// contentTypeBinary is the Content-Type of encoded proposals and results.
const contentTypeBinary = "application/octet-stream"

// EncodeProposals encodes items as a POST /internal/propose body.
// DecodeProposals rejects an encoding of zero items.
func EncodeProposals(items [][]byte) []byte {
	size := 1 + uvarintLen(uint64(len(items)))
	for _, it := range items {
		size += uvarintLen(uint64(len(it))) + len(it)
	}
	b := make([]byte, 0, size)
	b = append(b, CodecVersion)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = binary.AppendUvarint(b, uint64(len(it)))
		b = append(b, it...)
	}
	return b
}

// DecodeProposals decodes a POST /internal/propose body. maxItems > 0 caps
// the number of items (0 or less: only the input length bounds it). The
// returned items alias b (each with its capacity capped at its length, so
// appending to one never overwrites another). Any malformed input returns
// an error that matches ErrInvalid.
func DecodeProposals(b []byte, maxItems int) ([][]byte, error) {
	d := decoder{buf: b, what: "proposals"}
	count, err := d.header()
	if err != nil {
		return nil, err
	}
	// Each item takes at least one byte (its length).
	if count > uint64(d.remaining()) {
		return nil, d.errorf("count %d larger than %d remaining bytes allow", count, d.remaining())
	}
	if maxItems > 0 && count > uint64(maxItems) {
		return nil, d.errorf("count %d over the limit of %d", count, maxItems)
	}
	items := make([][]byte, 0, int(count))
	for i := uint64(0); i < count; i++ {
		n, err := d.uvarint("item length")
		if err != nil {
			return nil, err
		}
		it, err := d.bytes(n, "item")
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return items, nil
}

// EncodeResults encodes results as the answer of POST /internal/propose.
// DecodeResults rejects an encoding of zero results.
func EncodeResults(results []Result) []byte {
	size := 1 + uvarintLen(uint64(len(results)))
	for _, r := range results {
		size += uvarintLen(r.Index) + uvarintLen(uint64(len(r.Err))) + len(r.Err)
	}
	b := make([]byte, 0, size)
	b = append(b, CodecVersion)
	b = binary.AppendUvarint(b, uint64(len(results)))
	for _, r := range results {
		b = binary.AppendUvarint(b, r.Index)
		b = binary.AppendUvarint(b, uint64(len(r.Err)))
		b = append(b, r.Err...)
	}
	return b
}

// DecodeResults decodes the answer of POST /internal/propose. Any malformed
// input returns an error.
func DecodeResults(b []byte) ([]Result, error) {
	d := decoder{buf: b, what: "results"}
	count, err := d.header()
	if err != nil {
		return nil, err
	}
	// Each result takes at least two bytes (index and error length).
	if count > uint64(d.remaining()/2) {
		return nil, d.errorf("count %d larger than %d remaining bytes allow", count, d.remaining())
	}
	results := make([]Result, 0, int(count))
	for i := uint64(0); i < count; i++ {
		idx, err := d.uvarint("index")
		if err != nil {
			return nil, err
		}
		n, err := d.uvarint("error length")
		if err != nil {
			return nil, err
		}
		msg, err := d.bytes(n, "error text")
		if err != nil {
			return nil, err
		}
		results = append(results, Result{Index: idx, Err: string(msg)})
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return results, nil
}

// errMalformed is what every codec error wraps; it matches ErrInvalid so
// that the server answers a bad body with 400.
var errMalformed = fmt.Errorf("%w: malformed binary body", ErrInvalid)

// decoder reads the codec's primitives from buf, strictly.
type decoder struct {
	buf  []byte
	off  int
	what string // "proposals" or "results", for error messages
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errMalformed, d.what, fmt.Sprintf(format, args...))
}

func (d *decoder) remaining() int { return len(d.buf) - d.off }

// header reads the version byte and a nonzero count.
func (d *decoder) header() (uint64, error) {
	if len(d.buf) == 0 {
		return 0, d.errorf("empty")
	}
	if v := d.buf[0]; v != CodecVersion {
		return 0, d.errorf("unknown version %d", v)
	}
	d.off = 1
	count, err := d.uvarint("count")
	if err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, d.errorf("zero items")
	}
	return count, nil
}

// uvarint reads one minimally encoded uvarint.
func (d *decoder) uvarint(field string) (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.off:])
	switch {
	case n == 0:
		return 0, d.errorf("truncated %s", field)
	case n < 0:
		return 0, d.errorf("%s overflows 64 bits", field)
	case n > 1 && d.buf[d.off+n-1] == 0:
		return 0, d.errorf("%s not minimally encoded", field)
	}
	d.off += n
	return v, nil
}

// bytes returns the next n bytes, aliasing buf with capacity capped.
func (d *decoder) bytes(n uint64, field string) ([]byte, error) {
	if n > uint64(d.remaining()) {
		return nil, d.errorf("%s length %d larger than %d remaining bytes", field, n, d.remaining())
	}
	end := d.off + int(n)
	b := d.buf[d.off:end:end]
	d.off = end
	return b, nil
}

// end reports trailing bytes.
func (d *decoder) end() error {
	if r := d.remaining(); r != 0 {
		return d.errorf("%d trailing bytes", r)
	}
	return nil
}

// uvarintLen is the length of v's uvarint encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

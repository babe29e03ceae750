package canoe

import (
	"crypto/rand"
	"encoding/binary"
)

// Uint64UUID returns a random nonzero uint64, suitable as a node ID.
func Uint64UUID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

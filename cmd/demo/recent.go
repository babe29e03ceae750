package main

import (
	"encoding/hex"
	"slices"
	"strconv"
	"unicode/utf8"
)

const (
	maxRecentKeys   = 20  // keys the dashboard lists
	keyPreviewLen   = 120 // bytes of a key shown before it is cut
	valuePreviewLen = 160 // bytes of a text value shown before it is cut
	binaryPreview   = 24  // bytes of a binary value shown, in hex
)

// recentKeys is the keys changed last, newest last, at most maxRecentKeys.
type recentKeys struct{ keys []string }

// touch makes key the newest.
func (r *recentKeys) touch(key string) {
	r.remove(key)
	if len(r.keys) == maxRecentKeys {
		r.keys = append(r.keys[:0], r.keys[1:]...)
	}
	r.keys = append(r.keys, key)
}

func (r *recentKeys) remove(key string) {
	if i := slices.Index(r.keys, key); i >= 0 {
		r.keys = slices.Delete(r.keys, i, i+1)
	}
}

// keyPreview is one key as the dashboard lists it: the key and its value,
// both cut to a readable length, with the value's full size.
type keyPreview struct {
	Key          string `json:"key"`
	KeyTruncated bool   `json:"key_truncated,omitempty"`
	Size         int    `json:"size"`             // value length in bytes
	Value        string `json:"value"`            // text, or hex of the first bytes when Binary
	Binary       bool   `json:"binary,omitempty"` // the value is not UTF-8 text
	Truncated    bool   `json:"truncated,omitempty"`
}

// keysView is the dashboard's summary of one node's store.
type keysView struct {
	Node    string       `json:"node"`    // whose store
	Version string       `json:"version"` // changes whenever the content may have
	Count   int          `json:"count"`   // number of keys
	Bytes   int64        `json:"bytes"`   // size of every key and value
	Recent  []keyPreview `json:"recent"`  // the keys changed last, newest first
	Error   string       `json:"error,omitempty"`
}

// contentVersion identifies the store's content: it changes with every
// write and with every new store (a restarted node has a new one).
func (s *kvStore) contentVersion() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.contentVersionLocked()
}

// contentVersionLocked is contentVersion with s.mu held.
func (s *kvStore) contentVersionLocked() string {
	return strconv.FormatUint(s.gen, 10) + "." + strconv.FormatUint(s.version, 10)
}

// summary returns the store's size and its recent keys, newest first.
func (s *kvStore) summary() keysView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := keysView{
		Version: s.contentVersionLocked(),
		Count:   len(s.data),
		Bytes:   s.bytes,
		Recent:  make([]keyPreview, 0, len(s.recent.keys)),
	}
	for i := len(s.recent.keys) - 1; i >= 0; i-- {
		k := s.recent.keys[i]
		v.Recent = append(v.Recent, preview(k, s.data[k]))
	}
	return v
}

// preview cuts key and value for display, never inside a UTF-8 sequence.
func preview(key string, value []byte) keyPreview {
	p := keyPreview{Size: len(value)}
	p.Key, p.KeyTruncated = cutText(key, keyPreviewLen)
	if !utf8.Valid(value) {
		p.Binary = true
		p.Value = hex.EncodeToString(value[:min(len(value), binaryPreview)])
		p.Truncated = len(value) > binaryPreview
		return p
	}
	p.Value, p.Truncated = cutText(string(value), valuePreviewLen)
	return p
}

// cutText returns s cut to at most n bytes at a rune boundary, and whether
// it was cut. Invalid UTF-8 in s comes out as U+FFFD.
func cutText(s string, n int) (string, bool) {
	if len(s) <= n && utf8.ValidString(s) {
		return s, false
	}
	cut := len(s) > n
	if cut {
		s = s[:n]
		for len(s) > 0 {
			r, size := utf8.DecodeLastRuneInString(s)
			if r != utf8.RuneError || size != 1 {
				break
			}
			s = s[:len(s)-1] // a sequence the cut split, or invalid bytes
		}
	}
	return string([]rune(s)), cut
}

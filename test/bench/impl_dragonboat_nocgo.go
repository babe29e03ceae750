//go:build !cgo

package main

import (
	"context"
	"errors"
)

// errNoCgo explains why dragonboat is missing from a cgo-less build.
var errNoCgo = errors.New("dragonboat not built: its pebble LogDB needs cgo (github.com/DataDog/zstd); rebuild with CGO_ENABLED=1 and a C compiler")

func init() {
	impls["dragonboat"] = func(int) impl { return dragonboatStub{} }
}

// dragonboatStub fails every trial with errNoCgo, so the report says so.
type dragonboatStub struct{}

func (dragonboatStub) name() string                          { return "dragonboat" }
func (dragonboatStub) start(string) error                    { return errNoCgo }
func (dragonboatStub) propose(context.Context, []byte) error { return errNoCgo }
func (dragonboatStub) stop()                                 {}
func (dragonboatStub) useKV()                                {}
func (dragonboatStub) read(context.Context, uint64) ([]byte, error) {
	return nil, errNoCgo
}

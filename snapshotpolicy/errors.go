package snapshotpolicy

import "errors"

// ErrInvalidConfig matches (with errors.Is) every problem Config.Validate
// reports.
var ErrInvalidConfig = errors.New("snapshotpolicy: invalid config")

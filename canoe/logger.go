package canoe

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// Logger is the logger canoe, raft and memberlist write to. The original
// canoe cloned etcd's logger interface; hclog is what raft and memberlist
// speak natively, so no adapter loses levels or fields.
type Logger = hclog.Logger

// DefaultLogger is used when NodeConfig.Logger is nil: a logger named
// "canoe" at INFO level on stderr.
var DefaultLogger Logger = hclog.New(&hclog.LoggerOptions{
	Name:   "canoe",
	Level:  hclog.Info,
	Output: os.Stderr,
})

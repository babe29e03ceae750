package main

import (
	"testing"
	"time"

	"github.com/canoe-raft/canoe/canoe"
)

func TestScratchStopStart(t *testing.T) {
	for i := 0; i < 5; i++ {
		n, err := canoe.NewNode(&canoe.NodeConfig{FSM: newKVStore(), BootstrapNode: true, DataDir: t.TempDir(), BindAddr: "127.0.0.1", Timing: canoe.LocalProfile()})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !n.IsLeader() {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: no leader after 5s: %+v", i, n.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := n.Start(); err != nil {
			t.Errorf("restart %d: %v", i, err)
		}
		n.Stop()
	}
}

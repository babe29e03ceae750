// Package discovery finds canoe nodes by gossip, on hashicorp/memberlist.
//
// Each node runs one Discovery. It gossips a small Meta about itself (node
// ID, cluster ID, raft and HTTP addresses, bootstrap intent, whether it has
// state, whether it is leaving) and reports what happens to the others as
// typed Events. It knows nothing about raft: package canoe turns the events
// into membership changes.
//
// # Lifecycle
//
//	d, err := discovery.New(discovery.Config{
//		BindAddr: "127.0.0.1", // BindPort 0: pick a free port
//		Meta:     discovery.Meta{ID: id, ClusterID: cid, RaftAddr: raftAddr},
//	})
//	if err != nil { ... }
//	defer d.Shutdown()
//	go func() {
//		for ev := range d.Events() { // closed by Shutdown
//			switch ev.Kind {
//			case discovery.EventJoin, discovery.EventUpdate: // maybe add ev.Member.Meta.ID
//			case discovery.EventLeave:                       // remove it
//			case discovery.EventFailed:                      // crashed or partitioned
//			}
//		}
//	}()
//	if _, err := d.Join(ctx, []string{"10.0.0.1:7946"}); err != nil { ... }
//	...
//	d.UpdateMeta(ctx, func(m *discovery.Meta) { m.HasState = true })
//	...
//	d.Leave(ctx) // graceful: peers see EventLeave
//	d.Shutdown() // without Leave, peers see EventFailed
//
// Shutdown is idempotent and waits for the goroutine this package owns;
// after Leave a Discovery cannot join again.
//
// # Leave versus failure
//
// memberlist reports a graceful leave and a failure the same way. Leave
// therefore first sets Meta.Leaving and waits until that update is gossiped
// (peers see an EventUpdate with Leaving set), then leaves; peers report a
// member that disappears with Leaving set as EventLeave, any other as
// EventFailed.
//
// # Isolation and security
//
// Nodes of different clusters never merge: gossip carries the label
// "canoe/<ClusterID>" (packets and streams with another label are dropped),
// and peers whose Meta.ClusterID differs or whose Meta does not decode are
// refused both when joining and when they appear in gossip (logged at
// WARN). With Config.SecretKey (16, 24 or 32 bytes) all gossip is encrypted
// with AES-GCM, and a node with another key cannot join: Join returns a
// *JoinError (errors.Is(err, ErrJoinFailed)) that names the likely cause.
//
// # Timing
//
// Config.Profile chooses memberlist's timing: LAN (memberlist's defaults)
// or Local, tuned for loopback and tests (a crash is detected in about
// 1-2 s). See the Profile constants for the values.
//
// # Metadata
//
// Meta has a compact, versioned binary encoding that must fit memberlist's
// 512-byte limit (MaxMetaSize); Encode checks it and DecodeMeta never
// panics on any input.
package discovery

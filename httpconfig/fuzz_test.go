package httpconfig

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"testing"
)

// FuzzPeersRequest feeds arbitrary bodies to the POST and DELETE /peers
// decoders and to the handler: nothing may panic, every accepted request is
// valid, and the node is asked to change membership only for valid input.
func FuzzPeersRequest(f *testing.F) {
	for _, s := range []string{
		validAdd,
		`{"id":4,"host":"10.0.0.4","raft_port":7004,"config_port":8004,"gossip_port":7946}`,
		`{"id":18446744073709551615,"raft_port":65535,"config_port":1}`,
		`{"id":2}`,
		`{"id":0,"raft_port":1,"config_port":1}`,
		`{"id":4,"raft_port":70000,"config_port":1}`,
		`{"id":-1}`,
		`{"id":1.5}`,
		`{"id":1e3,"raft_port":1,"config_port":1}`,
		`{"ID":4,"RAFT_PORT":1,"config_port":1}`,
		`{"id":4,"raft_port":1,"config_port":1,"extra":null}`,
		`{"id":4,"raft_port":1,"config_port":1}{}`,
		`{"id":4,"host":"fe80::1%eth0","raft_port":1,"config_port":1}`,
		`{"id":4,"host":"a..b","raft_port":1,"config_port":1}`,
		`{"id":4,"raft_port":1,"config_port":1,"cluster_id":256}`,
		`{"id":4,"raft_port":1,"config_port":1,"cluster_id":-1}`,
		`null`, `[]`, `"x"`, ``, `{`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeAddPeer(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("decodeAddPeer error %v does not match ErrInvalid", err)
			}
		} else {
			if p.ID == 0 {
				t.Errorf("accepted id 0 from %q", body)
			}
			for _, port := range []int{p.RaftPort, p.ConfigPort} {
				if port < 1 || port > 65535 {
					t.Errorf("accepted port %d from %q", port, body)
				}
			}
			if p.GossipPort < 0 || p.GossipPort > 65535 {
				t.Errorf("accepted gossip port %d from %q", p.GossipPort, body)
			}
			if p.Host != "" && !validHost(p.Host) {
				t.Errorf("accepted host %q", p.Host)
			}
		}
		id, err := decodeRemovePeer(bytes.NewReader(body))
		if err == nil && id == 0 {
			t.Errorf("DELETE accepted id 0 from %q", body)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("decodeRemovePeer error %v does not match ErrInvalid", err)
		}

		for _, method := range []string{"POST", "DELETE"} {
			fk := newFakeNode()
			rec := httptest.NewRecorder()
			NewHandler(fk.config()).ServeHTTP(rec, httptest.NewRequest(method, "/peers", bytes.NewReader(body)))
			calls := fk.mutations()
			if rec.Code != 200 && rec.Code != 404 && rec.Code != 400 {
				t.Errorf("%s /peers %q: status %d", method, body, rec.Code)
			}
			if rec.Code != 200 && calls != 0 {
				t.Errorf("%s /peers %q: status %d but the node was called", method, body, rec.Code)
			}
			if rec.Code == 200 && calls != 1 {
				t.Errorf("%s /peers %q: status 200 but %d node calls", method, body, calls)
			}
		}
	})
}

// FuzzDecodeProposals checks that decoding never panics and that every
// accepted input has exactly one encoding.
func FuzzDecodeProposals(f *testing.F) {
	f.Add(EncodeProposals([][]byte{[]byte("a")}))
	f.Add(EncodeProposals([][]byte{{}, []byte("bb"), bytes.Repeat([]byte{9}, 200)}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 0x81, 0x00, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{2, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		items, err := DecodeProposals(in, 0)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if len(items) == 0 {
			t.Fatalf("accepted %v with zero items", in)
		}
		if out := EncodeProposals(items); !bytes.Equal(out, in) {
			t.Errorf("re-encoding %v gave %v", in, out)
		}
	})
}

// FuzzDecodeResults is FuzzDecodeProposals for the answer.
func FuzzDecodeResults(f *testing.F) {
	f.Add(EncodeResults([]Result{{Index: 1}}))
	f.Add(EncodeResults([]Result{{Index: 300, Err: "bad"}, {Index: 1 << 62}}))
	f.Add([]byte{1, 1, 0x80, 0x00, 0})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, in []byte) {
		results, err := DecodeResults(in)
		if err != nil {
			return
		}
		if out := EncodeResults(results); !bytes.Equal(out, in) {
			t.Errorf("re-encoding %v gave %v", in, out)
		}
	})
}

package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memberView is one node's view of the membership: ids and suffrage.
func memberView(m *member) []string {
	var out []string
	for _, p := range m.node.Peers() {
		out = append(out, fmt.Sprintf("%x/voter=%v", p.ID, p.Voter))
	}
	slices.Sort(out)
	return out
}

// TestHTTPAPIBadInputNeverChangesMembership sends malformed, unknown-field,
// id-less, oversized and wrong-method requests to /peers of a follower and
// of the leader: each gets a 4xx JSON error, the membership stays as it was,
// and the node keeps serving proposals. It also checks that GET /peers has
// the original canoe's fields.
func TestHTTPAPIBadInputNeverChangesMembership(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	hc := httpClient(t, nil)
	leader := c.leader()
	follower := c.followers()[0]
	other := c.followers()[1]
	before := memberView(leader)

	// Bodies that would remove or add a member if they were accepted.
	victim := strconv.FormatUint(other.id, 10)
	padded := append([]byte(`{"id":`+victim), bytes.Repeat([]byte(" "), 2<<20)...)
	padded = append(padded, '}')
	bigAdd := []byte(`{"id":4242,"raft_port":1234,"config_port":1235,"host":"` + strings.Repeat("a", 2<<20) + `"}`)

	cases := []struct {
		name   string
		method string
		body   []byte
		want   int
	}{
		{"POST malformed JSON", http.MethodPost, []byte(`{"id": 4242, "raft_port":`), http.StatusBadRequest},
		{"POST not an object", http.MethodPost, []byte(`[4242]`), http.StatusBadRequest},
		{"POST empty body", http.MethodPost, nil, http.StatusBadRequest},
		{"POST unknown field", http.MethodPost, []byte(`{"id":4242,"raft_port":1234,"config_port":1235,"bogus":true}`), http.StatusBadRequest},
		{"POST missing id", http.MethodPost, []byte(`{"raft_port":1234,"config_port":1235}`), http.StatusBadRequest},
		{"POST zero id", http.MethodPost, []byte(`{"id":0,"raft_port":1234,"config_port":1235}`), http.StatusBadRequest},
		{"POST missing ports", http.MethodPost, []byte(`{"id":4242}`), http.StatusBadRequest},
		{"POST port out of range", http.MethodPost, []byte(`{"id":4242,"raft_port":70000,"config_port":1235}`), http.StatusBadRequest},
		{"POST bad host", http.MethodPost, []byte(`{"id":4242,"raft_port":1234,"config_port":1235,"host":"a b/c"}`), http.StatusBadRequest},
		{"POST trailing data", http.MethodPost, []byte(`{"id":4242,"raft_port":1234,"config_port":1235} {"id":4243}`), http.StatusBadRequest},
		{"POST oversized", http.MethodPost, bigAdd, http.StatusRequestEntityTooLarge},
		{"DELETE malformed JSON", http.MethodDelete, []byte(`{"id":`), http.StatusBadRequest},
		{"DELETE empty body", http.MethodDelete, nil, http.StatusBadRequest},
		{"DELETE unknown field", http.MethodDelete, []byte(`{"id":` + victim + `,"force":true}`), http.StatusBadRequest},
		{"DELETE missing id", http.MethodDelete, []byte(`{}`), http.StatusBadRequest},
		{"DELETE id as string", http.MethodDelete, []byte(`{"id":"` + victim + `"}`), http.StatusBadRequest},
		{"DELETE negative id", http.MethodDelete, []byte(`{"id":-1}`), http.StatusBadRequest},
		{"DELETE trailing data", http.MethodDelete, []byte(`{"id":` + victim + `}x`), http.StatusBadRequest},
		{"DELETE oversized", http.MethodDelete, padded, http.StatusRequestEntityTooLarge},
		{"PUT", http.MethodPut, []byte(`{"id":` + victim + `}`), http.StatusMethodNotAllowed},
		{"PATCH", http.MethodPatch, []byte(`{"id":` + victim + `}`), http.StatusMethodNotAllowed},
	}
	for _, target := range []*member{follower, leader} {
		for _, tc := range cases {
			t.Run(tc.name+" to "+role(target, leader), func(t *testing.T) {
				code, hdr, body := apiCall(t, hc, tc.method, target.url+"/peers", http.Header{"Content-Type": {"application/json"}}, tc.body)
				if code != tc.want {
					t.Errorf("got %d %s, want %d; body %.200q", code, http.StatusText(code), tc.want, body)
				}
				if ct, _, _ := mime.ParseMediaType(hdr.Get("Content-Type")); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", hdr.Get("Content-Type"))
				}
				var e struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("body %.200q is not a JSON error with an \"error\" message (%v)", body, err)
				}
			})
		}
	}

	// Nothing changed, on any node, and every node still serves.
	for _, m := range c.running() {
		if got := memberView(m); !slices.Equal(got, before) {
			t.Errorf("node %v sees members %v after bad requests, want %v", m, got, before)
		}
	}
	if n := len(c.running()); n != 3 {
		t.Fatalf("%d nodes running after bad requests, want 3", n)
	}
	for _, m := range c.running() {
		mustPropose(t, m, fmt.Sprintf("after-bad-input-%v", m))
	}
	waitSameState(t, 10*time.Second, 3, c.running()...)

	// GET /peers keeps the original canoe's fields.
	for _, m := range c.running() {
		code, _, body := apiCall(t, hc, http.MethodGet, m.url+"/peers", nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /peers on %v: %d %.200q", m, code, body)
		}
		checkPeersJSON(t, m, c.running(), body)
	}
}

// checkPeersJSON checks a GET /peers answer of m: id, raft_port,
// config_port and remote_peers, each remote peer with id, raft_port and
// config_port, all matching the cluster.
func checkPeersJSON(t *testing.T, m *member, all []*member, body []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var got map[string]any
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("GET /peers on %v: %v in %.300q", m, err, body)
	}
	num := func(obj map[string]any, key string) string {
		v, ok := obj[key].(json.Number)
		if !ok {
			t.Errorf("GET /peers on %v: field %q is %T (%v), want a number; body %.300q", m, key, obj[key], obj[key], body)
		}
		return v.String()
	}
	self := m.node.Self()
	if id := num(got, "id"); id != strconv.FormatUint(m.id, 10) {
		t.Errorf("GET /peers on %v: id %s, want %d", m, id, m.id)
	}
	if p := num(got, "raft_port"); p != strconv.Itoa(self.RaftPort) {
		t.Errorf("GET /peers on %v: raft_port %s, want %d", m, p, self.RaftPort)
	}
	if p := num(got, "config_port"); p != strconv.Itoa(self.ConfigPort) {
		t.Errorf("GET /peers on %v: config_port %s, want %d", m, p, self.ConfigPort)
	}
	remote, ok := got["remote_peers"].([]any)
	if !ok {
		t.Fatalf("GET /peers on %v: remote_peers is %T, want an array; body %.300q", m, got["remote_peers"], body)
	}
	want := map[string]*member{}
	for _, o := range all {
		if o != m {
			want[strconv.FormatUint(o.id, 10)] = o
		}
	}
	if len(remote) != len(want) {
		t.Errorf("GET /peers on %v: %d remote_peers, want %d", m, len(remote), len(want))
	}
	for _, r := range remote {
		obj, ok := r.(map[string]any)
		if !ok {
			t.Errorf("GET /peers on %v: remote peer %v is not an object", m, r)
			continue
		}
		o, ok := want[num(obj, "id")]
		if !ok {
			t.Errorf("GET /peers on %v: unexpected remote peer %v", m, obj)
			continue
		}
		os := o.node.Self()
		if p := num(obj, "raft_port"); p != strconv.Itoa(os.RaftPort) {
			t.Errorf("GET /peers on %v: remote %v raft_port %s, want %d", m, o, p, os.RaftPort)
		}
		if p := num(obj, "config_port"); p != strconv.Itoa(os.ConfigPort) {
			t.Errorf("GET /peers on %v: remote %v config_port %s, want %d", m, o, p, os.ConfigPort)
		}
	}
}

func role(m, leader *member) string {
	if m == leader {
		return "leader"
	}
	return "follower"
}

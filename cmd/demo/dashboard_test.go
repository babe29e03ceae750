package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func dashboardOf(t *testing.T, url, query string) dashboardView {
	t.Helper()
	code, body := do(t, "GET", url+"/api/dashboard"+query, "")
	var v dashboardView
	if code != 200 {
		t.Fatalf("GET /api/dashboard%s: %d %s", query, code, body)
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET /api/dashboard%s: %v in %s", query, err, body)
	}
	return v
}

// TestDashboardEndpoint: the page's poll returns only what changed since
// the cursors it sends.
func TestDashboardEndpoint(t *testing.T) {
	node, _, s, url := singleNodeServer(t)
	id := strconv.FormatUint(node.UniqueID(), 10)
	if code, body := do(t, "PUT", url+"/kv/big", strings.Repeat("€", 100000)); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	s.monitor.refresh(context.Background(), true)
	s.monitor.events.add(kindLeader, "leads", id, "node "+id+" leads (term 2)", "leader elected")

	v := dashboardOf(t, url, "")
	if v.Self != id || v.LeaderID != id || len(v.Nodes) != 1 || v.Controls || v.WindowMS != 300000 || v.Now == 0 {
		t.Fatalf("view %+v: want node %s alone, leading, no controls, a 5 minute window", v.clusterView, id)
	}
	if len(v.Samples) != 1 || len(v.Events) != 1 || v.Events[0].Seq != 1 {
		t.Fatalf("%d samples, events %+v: want 1 and the one event", len(v.Samples), v.Events)
	}
	k := v.Keys
	if k == nil || k.Node != id || k.Count != 1 || k.Bytes != 3+300000 || len(k.Recent) != 1 {
		t.Fatalf("keys %+v: want the one key of node %s", k, id)
	}
	if it := k.Recent[0]; it.Key != "big" || it.Size != 300000 || !it.Truncated || len(it.Value) > valuePreviewLen || !strings.HasPrefix(it.Value, "€€") {
		t.Fatalf("big value listed as %+v, want its size and a cut preview", it)
	}

	// Nothing new since the cursors: no samples, events or keys.
	q := "?samples_after=" + strconv.FormatInt(v.Samples[0].T, 10) + "&events_after=1&keys=" + k.Version
	if v := dashboardOf(t, url, q); len(v.Samples) != 0 || len(v.Events) != 0 || v.Keys != nil {
		t.Fatalf("with current cursors: %d samples, %d events, keys %+v; want nothing", len(v.Samples), len(v.Events), v.Keys)
	}
	if code, body := do(t, "PUT", url+"/kv/small", "x"); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if v := dashboardOf(t, url, q); v.Keys == nil || v.Keys.Count != 2 || v.Keys.Recent[0].Key != "small" {
		t.Fatalf("after a write: keys %+v, want both keys, small first", v.Keys)
	}

	for _, bad := range []string{"?samples_after=yesterday", "?events_after=-1"} {
		code, body := do(t, "GET", url+"/api/dashboard"+bad, "")
		if code != 400 || !strings.Contains(errorOf(t, body), strings.SplitN(bad[1:], "=", 2)[0]) {
			t.Errorf("GET /api/dashboard%s: %d %s, want 400 naming the parameter", bad, code, body)
		}
	}
	if code, body := do(t, "POST", url+"/api/dashboard", ""); code != 405 {
		t.Errorf("POST /api/dashboard: %d %s, want 405", code, body)
	}
	for path, ctype := range map[string]string{"/": "text/html", "/static/dashboard.js": "text/javascript", "/static/dashboard.css": "text/css"} {
		resp, err := testClient.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(got, ctype) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, resp.StatusCode, got, ctype)
		}
	}
	// Only the dashboard's own files: nothing else, and nothing outside
	// static/ by an escaped slash.
	for _, path := range []string{"/static/nothing.js", "/static/..%2Fkvhttp.go", "/static/..%2Fstatic%2Findex.html", "/static/%2E%2E"} {
		if code, _ := do(t, "GET", url+path, ""); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}

	// A stopped node's keys say so.
	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	if v := dashboardOf(t, url, "?keys="+k.Version); v.Keys == nil || !strings.Contains(v.Keys.Error, "stopped") {
		t.Fatalf("stopped node's keys %+v, want an error saying it is stopped", v.Keys)
	}
}

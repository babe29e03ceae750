package main

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"time"
)

// The dashboard is one page of plain HTML, CSS and JavaScript that draws
// its charts and cluster picture as SVG; it loads nothing from elsewhere,
// so it works offline.
//
//go:embed static
var staticFiles embed.FS

// staticTypes are the files the dashboard serves, by extension.
var staticTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

// serveDashboard serves the page; it polls /api/dashboard.
func serveDashboard(w http.ResponseWriter, r *http.Request) {
	serveStatic(w, "index.html")
}

// serveAsset serves GET /static/{name}.
func serveAsset(w http.ResponseWriter, r *http.Request) {
	serveStatic(w, r.PathValue("name"))
}

func serveStatic(w http.ResponseWriter, name string) {
	ctype, ok := staticTypes[path.Ext(name)]
	b, err := fs.ReadFile(staticFiles, "static/"+name)
	if !ok || err != nil {
		writeError(w, http.StatusNotFound, "no such file: /static/"+name)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// dashboardView is what GET /api/dashboard returns: the cluster now, and
// what changed since the cursors the page sent.
type dashboardView struct {
	clusterView          // Events holds only the events after events_after
	Now         int64    `json:"now"`       // Unix milliseconds
	WindowMS    int64    `json:"window_ms"` // how far back the history goes
	Samples     []sample `json:"samples"`   // taken after samples_after
	// Keys is the serving node's store, omitted when its version equals
	// the keys parameter (nothing changed).
	Keys *keysView `json:"keys,omitempty"`
}

// dashboardQuery is GET /api/dashboard's parameters, each optional:
// samples_after (Unix milliseconds), events_after (event seq) and keys
// (the keys version the page shows).
type dashboardQuery struct {
	samplesAfter int64
	eventsAfter  uint64
	keys         string
}

func parseDashboardQuery(r *http.Request) (dashboardQuery, string) {
	var q dashboardQuery
	var err error
	v := r.URL.Query()
	if s := v.Get("samples_after"); s != "" {
		if q.samplesAfter, err = strconv.ParseInt(s, 10, 64); err != nil {
			return q, "samples_after must be a Unix time in milliseconds, not " + strconv.Quote(s)
		}
	}
	if s := v.Get("events_after"); s != "" {
		if q.eventsAfter, err = strconv.ParseUint(s, 10, 64); err != nil {
			return q, "events_after must be an event sequence number, not " + strconv.Quote(s)
		}
	}
	q.keys = v.Get("keys")
	return q, ""
}

func (s *server) dashboard(w http.ResponseWriter, r *http.Request) {
	q, bad := parseDashboardQuery(r)
	if bad != "" {
		writeError(w, http.StatusBadRequest, bad)
		return
	}
	out := dashboardView{
		clusterView: s.view(r),
		Now:         time.Now().UnixMilli(),
		WindowMS:    (time.Duration(s.monitor.keep) * s.monitor.interval).Milliseconds(),
		Samples:     s.monitor.history(q.samplesAfter),
	}
	out.Events = s.monitor.events.since(q.eventsAfter)
	out.Keys = s.keys(q.keys)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// keys summarizes the serving node's store, or returns nil when its
// version is still known.
func (s *server) keys(known string) *keysView {
	node, kv := s.backend()
	var v keysView
	switch {
	case node == nil || kv == nil:
		v = keysView{Version: "none", Error: "this node has no store yet"}
	case !node.IsRunning():
		id := idString(node.UniqueID())
		v = keysView{Node: id, Version: "stopped", Error: "node " + id + " is stopped: its keys come back when it starts"}
	case kv.contentVersion() == known:
		return nil
	default:
		v = kv.summary()
		v.Node = idString(node.UniqueID())
	}
	if v.Version == known {
		return nil
	}
	if v.Recent == nil {
		v.Recent = []keyPreview{}
	}
	return &v
}

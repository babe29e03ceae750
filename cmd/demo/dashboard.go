package main

import (
	_ "embed"
	"net/http"
)

//go:embed static/index.html
var dashboardHTML []byte

// serveDashboard serves the single-page dashboard; it polls /api/cluster.
func serveDashboard(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(dashboardHTML)
}

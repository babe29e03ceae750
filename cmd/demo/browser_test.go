package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// TestDashboardBrowser drives the dashboard in headless Chromium: it shows
// three members and a leader, and clicking Stop on the leader shows a new one.
func TestDashboardBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	c := startLocal(t)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	eval := func(js string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return out
	}
	const leaderJS = `(document.querySelector("#nodes tr.leader") || {dataset: {}}).dataset.nodeId || ""`
	const rowsJS = `String(document.querySelectorAll("#nodes tr[data-node-id]").length)`

	if err := chromedp.Do(ctx, chromedp.Navigate(c.slots[0].kvURL+"/")); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}
	waitFor(t, 15*time.Second, "three members and a leader", func() bool {
		return eval(rowsJS) == "3" && eval(leaderJS) != ""
	})
	old := eval(leaderJS)
	if got := eval(`document.getElementById("leader").textContent`); got != "node "+old {
		t.Fatalf("header shows leader %q, table shows node %s", got, old)
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#nodes tr.leader button[data-action="stop"]`))); err != nil {
		t.Fatalf("click Stop on the leader: %v", err)
	}
	var now string
	waitFor(t, 15*time.Second, "a new leader on the dashboard", func() bool {
		now = eval(leaderJS)
		return now != "" && now != old
	})
	t.Logf("leader moved from node %s to node %s", old, now)
	stoppedRow := `#nodes tr[data-node-id="` + old + `"]`
	waitFor(t, 5*time.Second, "the old leader shown stopped", func() bool {
		return eval(`document.querySelector('`+stoppedRow+`').className`) == "stopped"
	})

	// Start it again from the dashboard.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(stoppedRow+` button[data-action="start"]`))); err != nil {
		t.Fatalf("click Start: %v", err)
	}
	waitFor(t, 15*time.Second, "the node running again", func() bool {
		return eval(`document.querySelector('`+stoppedRow+` .badge').textContent`) == "follower"
	})
}

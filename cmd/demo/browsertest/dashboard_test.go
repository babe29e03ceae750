package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium returns the browser to drive, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CANOE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIP: the dashboard browser test needs Chromium and none is on PATH " +
		"(Debian: apt-get install -y chromium; or set CANOE_CHROMIUM to a binary)")
	return ""
}

// artifactDir is where screenshots go: $CANOE_TEST_ARTIFACTS, else the
// test's temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CANOE_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex // guards errors
	errors []string   // uncaught JavaScript exceptions of the page
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancel()
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			text := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				text += " " + e.ExceptionDetails.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, text)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("JavaScript exception on the page: %s", e)
		}
	})
	return b
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression whose value is a string.
func (b *browser) eval(js string) string {
	b.t.Helper()
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return out
}

func (b *browser) number(js string) float64 {
	b.t.Helper()
	s := b.eval(js)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		b.t.Fatalf("%s = %q, not a number", js, s)
	}
	return f
}

// overflow lists the elements that reach past the right edge of the
// page, "" if none: the page must never scroll sideways.
const overflowJS = `(() => {
  const w = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= w) return "";
  const out = [];
  for (const e of document.querySelectorAll("body *")) {
    const r = e.getBoundingClientRect();
    if (r.right > w + 1) out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && e.className.baseVal === undefined ? "." + e.className : "") + " right=" + Math.round(r.right));
    if (out.length >= 8) break;
  }
  return "page " + document.documentElement.scrollWidth + "px wide in a " + w + "px window: " + out.join(", ");
})()`

func (b *browser) noOverflow(viewport string) {
	b.t.Helper()
	if got := b.eval(overflowJS); got != "" {
		b.t.Errorf("%s: horizontal overflow: %s", viewport, got)
	}
}

func (b *browser) screenshot(dir, name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

const (
	leaderCardJS = `(document.querySelector("#nodes .node.leader") || {dataset: {}}).dataset.nodeId || ""`
	cardsJS      = `String(document.querySelectorAll("#nodes .node[data-node-id]").length)`
	writesMaxJS  = `(document.querySelector("#chart-writes svg") || {getAttribute: () => "0"}).getAttribute("data-max") || "0"`
	writesPathJS = `Array.from(document.querySelectorAll("#chart-writes path.series")).map(p => p.getAttribute("d")).join("|")`
	commitMaxJS  = `(document.querySelector("#chart-commit svg") || {getAttribute: () => "0"}).getAttribute("data-max") || "0"`
)

// commitOfJS reads the commit index on node id's card.
func commitOfJS(id string) string {
	return `((document.querySelector('#nodes .node[data-node-id="` + id + `"] .node-nums') || {}).textContent || "").replace(/.*commit ([0-9,]+).*/, "$1").replace(/,/g, "") || "0"`
}

// markJS finds a timeline mark: an event of kind and what about node.
func markJS(kind, what, node string) string {
	return `String(document.querySelectorAll('#timeline g.mark[data-kind="` + kind + `"][data-what="` + what + `"][data-node="` + node + `"]').length)`
}

// TestDashboard runs the demo, opens its dashboard at a laptop's and a
// phone's width, writes while watching the charts move, stops the leader
// and starts it again from the page, and keeps screenshots.
func TestDashboard(t *testing.T) {
	browserPath := chromium(t)
	d := startDemo(t, buildDemo(t))
	art := artifactDir(t)
	first := d.kv[d.ids[0]]

	// What broke the old page: a 1 MiB value and a long key.
	if err := put(first, "big/blob", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)); err != nil {
		t.Fatal(err)
	}
	if err := put(first, "long/"+strings.Repeat("k", 600), []byte(strings.Repeat("a long value without spaces ", 40))); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, browserPath)
	b.do("laptop viewport", chromedp.EmulateViewport(1366, 900))
	b.do("open the dashboard", chromedp.Navigate(first+"/"))
	waitFor(t, 20*time.Second, "three node cards and a leader", func() bool {
		return b.eval(cardsJS) == "3" && b.eval(leaderCardJS) != ""
	})
	if got, want := b.eval(`document.getElementById("leader").textContent`), "node "+b.eval(leaderCardJS); got != want {
		t.Fatalf("header says leader %q, cards say %q", got, want)
	}
	waitFor(t, 10*time.Second, "the 1 MiB value listed with its size", func() bool {
		return b.eval(`(document.querySelector('#keys tr[data-key="big/blob"] td.n') || {}).textContent || ""`) == "1.0 MiB"
	})

	// The writes chart rises and moves while writes run.
	w := startWriter(d, 40)
	defer w.stop()
	waitFor(t, 20*time.Second, "the writes chart to show writes", func() bool {
		return b.number(writesMaxJS) > 0
	})
	before, commitBefore := b.eval(writesPathJS), b.number(commitMaxJS)
	waitFor(t, 10*time.Second, "the writes chart to move", func() bool {
		return b.eval(writesPathJS) != before && b.number(commitMaxJS) > commitBefore
	})
	b.noOverflow("laptop")

	// Stop the leader from the page: a new leader takes over, the stopped
	// node keeps its suffrage and last indexes, the timeline shows it.
	old := b.eval(leaderCardJS)
	b.do("click Stop on the leader", chromedp.Click(`#nodes .node.leader button[data-action="stop"]`))
	var now string
	waitFor(t, 20*time.Second, "a new leader on the page", func() bool {
		now = b.eval(leaderCardJS)
		return now != "" && now != old
	})
	t.Logf("leader moved from node %s to node %s", old, now)
	atStop := b.number(commitMaxJS)
	waitFor(t, 10*time.Second, "the stop in the timeline", func() bool {
		return b.eval(markJS("node", "stopped", old)) != "0"
	})
	card := `#nodes .node[data-node-id="` + old + `"]`
	waitFor(t, 10*time.Second, "the stopped node's card", func() bool {
		return b.eval(`document.querySelector('`+card+`').dataset.state`) == "stopped"
	})
	if got := b.eval(`document.querySelector('` + card + `').textContent`); !strings.Contains(got, "voter") ||
		strings.Contains(got, "non-voter") || !strings.Contains(got, "last seen") || strings.Contains(got, "commit 0 ") {
		t.Errorf("stopped node's card %q: want it still a voter, with its last seen indexes", got)
	}
	if v, err := getCluster(d.kv[now]); err != nil {
		t.Fatal(err)
	} else {
		for _, n := range v.Nodes {
			if n.ID == old && (!n.Voter || n.State != "stopped") {
				t.Errorf("GET /api/cluster shows the stopped node as %+v, want a stopped voter", n)
			}
		}
	}

	waitFor(t, 20*time.Second, "writes to go on with a node down", func() bool {
		return b.number(commitMaxJS) >= atStop+40
	})
	b.noOverflow("laptop, a node stopped")
	b.screenshot(art, "dashboard-laptop-node-stopped.png")

	leaderCommit := b.number(commitOfJS(now))
	b.do("click Start", chromedp.Click(card+` button[data-action="start"]`))
	waitFor(t, 20*time.Second, "the start in the timeline", func() bool {
		return b.eval(markJS("node", "started", old)) != "0"
	})
	waitFor(t, 20*time.Second, "the node running again", func() bool {
		s := b.eval(`document.querySelector('` + card + `').dataset.state`)
		return s == "follower" || s == "leader"
	})
	waitFor(t, 20*time.Second, "the restarted node to catch up", func() bool {
		return b.number(commitOfJS(old)) >= leaderCommit
	})
	if got := b.eval(`String(document.querySelectorAll("#events li[data-kind=node]").length)`); got == "0" {
		t.Error("the events list shows no stop or start")
	}
	b.noOverflow("laptop")
	b.screenshot(art, "dashboard-laptop.png")

	// A phone: one column, still no sideways scrolling.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	waitFor(t, 5*time.Second, "the page laid out for a phone", func() bool {
		return b.number(`String(document.documentElement.clientWidth)`) <= 390 && b.eval(cardsJS) == "3"
	})
	// Let one poll redraw the charts at the new width.
	t1 := b.eval(`document.querySelector("#chart-writes svg").getAttribute("data-t1")`)
	waitFor(t, 5*time.Second, "a redraw", func() bool {
		return b.eval(`document.querySelector("#chart-writes svg").getAttribute("data-t1")`) != t1
	})
	b.noOverflow("phone")
	b.screenshot(art, "dashboard-phone.png")

	ok, failed := w.stop()
	t.Logf("writer: %d writes acknowledged, %d refused (while a node was stopped)", ok, failed)
	if ok == 0 {
		t.Error("no write succeeded")
	}
}

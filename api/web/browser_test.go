package web

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

const testCluster = "ai-infn"

// unix is a UTC time in Unix seconds.
func unix(month time.Month, day, hour int) int64 {
	return time.Date(2026, month, day, hour, 0, 0, 0, time.UTC).Unix()
}

// allocation is an allocation of the browser test's ledger.
func allocation(pod, project, user string, weight, start, end int64) observe.Interval {
	x := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "GPU-" + pod, PodUID: "uid-" + pod, Resource: "nvidia.com/gpu"},
		Attrs: observe.Attrs{Class: "gpu", GPUUUID: "GPU-" + pod, Model: "A100", Namespace: project + "-ns",
			Pod: pod, User: user, Project: project},
		Start: start, End: end, EndExact: true, LastSeen: end * 1000, WeightMilli: weight, Devices: 1,
	}
	if weight < 1000 {
		x.Class, x.Profile, x.Resource = "mig", "3g.20gb", "nvidia.com/mig-3g.20gb"
	}
	return x
}

// The browser test's ledger: two users in two projects.
//
//	cms/alice    a whole GPU, 2026-10-30 10:00 → 14:00 (4 GPU-h), 200 used
//	             and 100 idle milli-GPU-s… ×1000 in its first 5 minutes
//	cms/alice    a 3g slice (429), 2026-11-03 08:00 → 18:00 (4.29 GPU-h)
//	atlas/bob    a whole GPU, 2026-11-02 00:00 → 2026-11-03 00:00 (24 GPU-h)
var (
	ivAliceGPU = allocation("alice-1", "cms", "alice", 1000, unix(10, 30, 10), unix(10, 30, 14))
	ivAliceMIG = allocation("alice-2", "cms", "alice", 429, unix(11, 3, 8), unix(11, 3, 18))
	ivBob      = allocation("bob-1", "atlas", "bob", 1000, unix(11, 2, 0), unix(11, 3, 0))
)

// newBrowserLedger fills a PostgreSQL ledger through ApplyWindow.
func newBrowserLedger(t *testing.T) *ledger.Store {
	t.Helper()
	ctx := context.Background()
	s, err := ledger.Open(ctx, pgtest.New(t), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	all := []observe.Interval{ivAliceGPU, ivAliceMIG, ivBob}
	windows := []observe.Window{
		{Cluster: testCluster, From: ivAliceGPU.Start, To: unix(11, 4, 0), Intervals: all},
		{Cluster: testCluster, From: ivAliceGPU.Start, To: ivAliceGPU.Start + 300, Intervals: []observe.Interval{ivAliceGPU},
			Usage: []observe.Usage{{AllocKey: ivAliceGPU.AllocKey, UsedMilliGPUSeconds: 200_000, IdleMilliGPUSeconds: 100_000}}},
		{Cluster: testCluster, From: ivBob.Start, To: ivBob.Start + 300, Intervals: []observe.Interval{ivBob},
			Usage: []observe.Usage{{AllocKey: ivBob.AllocKey, UsedMilliGPUSeconds: 300_000}}},
	}
	for _, w := range windows {
		if err := s.ApplyWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// chromium returns the browser to drive: $GPULEDGER_CHROMIUM, else
// chromium on the PATH. Without one the test is skipped, or fails under
// CI.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GPULEDGER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("headless Chromium is required under CI: install the Debian package chromium (or set GPULEDGER_CHROMIUM)")
	}
	t.Skip("no chromium on the PATH: install the Debian package chromium (or set GPULEDGER_CHROMIUM) to run the browser test")
	return ""
}

// TestBrowser logs alice in with headless Chromium, through the test
// provider, and reads the page as she sees it: her GPU-hours in the
// tables and in the chart, nothing of bob's, and a 403 when the page's
// own context asks the API for bob's usage. Then she logs out, and the
// API no longer answers her browser.
func TestBrowser(t *testing.T) {
	browser := chromium(t)
	e := newEnv(t, newBrowserLedger(t), nil) // Secure __Host- cookies: 127.0.0.1 is a secure context

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("no-default-browser-check", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", browser, err)
	}
	// Every console message and uncaught exception of the page.
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	var console []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			console = append(console, string(m.Type)+": "+m.Text)
		}
	}()
	readConsole := func() []string {
		stopConsole()
		<-consoleDone
		return console
	}
	// A bound on the whole session, so that a broken page fails the test
	// instead of hanging it.
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	page := e.url + "/?from=2026-10&to=2026-11"
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a); err != nil {
			t.Fatalf("%s: %v (console: %v)", what, err, readConsole())
		}
	}
	value := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v (console: %v)", what, err, readConsole())
		}
	}
	run("open the page", chromedp.Navigate(page))
	landing, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#landing")))
	value("read the login page", err)
	run("log in", chromedp.Steps(chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#scope"))))
	location, err := chromedp.Run(ctx, chromedp.Location())
	value("location", err)
	run("open the range", chromedp.Steps(chromedp.Navigate(page),
		chromedp.WaitReady(chromedp.CSS(`#chart:not([data-state="loading"])`))))
	state, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#chart"), "data-state"))
	value("chart state", err)
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status")))
	value("status", err)
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	value("page text", err)
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("#chart rect.bar")).map(
		r => [r.dataset.month, r.dataset.project, r.dataset.value, r.getAttribute("height")])`))
	value("chart bars", err)
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	value("cookies", err)
	bobStatus, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`fetch("/api/v1/usage?user=bob&granularity=month&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z",
			{credentials: "same-origin"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	value("fetch bob's usage", err)
	run("log out", chromedp.Steps(chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#landing"))))
	loggedOut, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#notice")))
	value("logged out", err)
	afterLogout, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`fetch("/api/v1/usage?granularity=month&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z").then(r => r.status)`,
		chromedp.EvalAwaitPromise))
	value("fetch after logout", err)

	if !strings.Contains(landing, "Log in") {
		t.Errorf("the first visit is not the login page: %q", landing)
	}
	if location != e.url+"/" {
		t.Errorf("after the login the browser is at %s", location)
	}
	if state.Value != "ready" {
		t.Fatalf("chart state %q, status %q (console: %v)", state.Value, status, readConsole())
	}
	// Alice's rows: October 4 GPU-h (0.03 idle of them), November 4.29.
	for _, want := range []string{"alice", "cms", "You see your own usage.", "2026-10", "4.00", "2026-11", "4.29", "8.29",
		"0.06", "0.03", "0.7 %"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not show %q:\n%s", want, body)
		}
	}
	for _, absent := range []string{"bob", "atlas", "24.00"} {
		if strings.Contains(body, absent) {
			t.Errorf("alice's page shows %q:\n%s", absent, body)
		}
	}
	want := [][]string{{"2026-10", "cms", "4.000000"}, {"2026-11", "cms", "4.290000"}}
	if len(bars) != len(want) {
		t.Fatalf("chart bars %v, want %v", bars, want)
	}
	for i, b := range bars {
		if !slices.Equal(b[:3], want[i]) || b[3] == "" || b[3] == "0" {
			t.Errorf("bar %d: %v, want %v with a height", i, b, want[i])
		}
	}
	if bobStatus != 403 {
		t.Errorf("alice's page fetching bob's usage: %d, want 403", bobStatus)
	}
	if loggedOut != "You are logged out." || afterLogout != 401 {
		t.Errorf("after logout: %q, and the API answers %d (want 401)", loggedOut, afterLogout)
	}
	if cookies != "" {
		t.Errorf("the page's script can read cookies %q: the session must be HttpOnly", cookies)
	}
	for _, m := range readConsole() {
		if strings.Contains(m, "status of 403 (Forbidden)") || strings.Contains(m, "status of 401 (Unauthorized)") {
			continue // the fetches of bob's usage and after the logout
		}
		if strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "exception") || strings.HasPrefix(m, "error") {
			t.Errorf("browser console: %s", m)
		}
	}
	t.Log(status)
}

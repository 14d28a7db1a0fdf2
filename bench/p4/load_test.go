package p4

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult is what a load run measured.
type loadResult struct {
	// lat are the latencies of every request sent but those shed, sorted; a failed
	// request counts the time until it failed (for a client timeout, a
	// lower bound of its latency).
	lat     []time.Duration
	sent    int
	errors  int           // failed requests, shed ones excluded
	refused int           // of which answered, but not with a 200 (errStatus)
	shed    int           // refused with 503 because the server was full (errShed), not in lat
	first   error         // the first error
	window  time.Duration // from the first scheduled request to the last answer
	maxLag  time.Duration // the generator's largest delay in sending a request after its time
}

func (r loadResult) quantile(q float64) time.Duration { return quantile(r.lat, q) }

// rate is the successful answers per second over the run's window.
func (r loadResult) rate() float64 { return float64(r.sent-r.errors-r.shed) / r.window.Seconds() }

// errStatus is an answer other than 200 OK; errShed is the server's 503
// with Retry-After when it answers --max-requests-in-flight requests
// already (load shed, not a fault).
var (
	errStatus = errors.New("unexpected status")
	errShed   = errors.New("shed: 503 with Retry-After")
)

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// openLoop sends rate requests per second for d, each at its scheduled
// time whether or not the earlier ones were answered (an open loop, as
// users arrive), and measures each request's latency from its scheduled
// time to the end of its answer: a slow answer cannot hold back the
// requests behind it and hide their wait (no coordinated omission). do
// runs request i.
func openLoop(ctx context.Context, rate int, d time.Duration, do func(ctx context.Context, i int) error) loadResult {
	n := int(float64(rate) * d.Seconds())
	period := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var res loadResult
	start := time.Now()
	var mu sync.Mutex
	last := start
	for i := range n {
		at := start.Add(time.Duration(i) * period)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		res.maxLag = max(res.maxLag, time.Since(at))
		wg.Go(func() {
			errs[i] = do(ctx, i)
			now := time.Now()
			lat[i] = now.Sub(at)
			mu.Lock()
			if now.After(last) {
				last = now
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.sent, res.window = n, last.Sub(start)
	for i, err := range errs {
		if errors.Is(err, errShed) {
			res.shed++
			continue
		}
		res.lat = append(res.lat, lat[i])
		if err != nil {
			res.errors++
			if errors.Is(err, errStatus) {
				res.refused++
			}
			if res.first == nil {
				res.first = err
			}
		}
	}
	slices.Sort(res.lat)
	return res
}

// newClient is the load generator's HTTP client: keep-alive connections
// enough for every request in flight, no compression (the server
// compresses nothing).
func newClient() *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute, DisableCompression: true}}
}

// get fetches url with the bearer token (none when empty), reads the
// whole answer, and fails unless it is a 200.
func get(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
		return fmt.Errorf("GET %s: %w", url, errShed)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %w: %s", url, errStatus, resp.Status)
	}
	return err
}

// wrkResult is what wrk measured (latencies from each request's write to
// its answer, as wrk counts them).
type wrkResult struct {
	requests, errors int
	duration         time.Duration
	p50, p99, max    time.Duration
}

func (w wrkResult) rate() float64 { return float64(w.requests) / w.duration.Seconds() }

// wrkScript drives wrk over the paths in turn (each thread from another
// place in the list) with the bearer token, waits pace after each answer
// before a connection sends its next request (wrk's delay hook; none when
// 0), and prints its figures on one line for parseWrk.
const wrkScript = `local paths = {%s}
local token = %q
local pace = %d
local threads = 0
function setup(thread)
  thread:set("first", threads * 97)
  threads = threads + 1
end
function init(args)
  i = first or 0
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Authorization"] = "Bearer " .. token})
end
if pace > 0 then
  function delay() return pace end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("P4WRK requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d max_us=%%d errors=%%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

// runWrk runs wrk on base with paths for d: conns connections on threads
// threads, each waiting pace between an answer and its next request.
func runWrk(ctx context.Context, dir, base string, paths []string, token string, threads, conns int, pace, d time.Duration) (wrkResult, error) {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = strconv.Quote(p)
	}
	script := filepath.Join(dir, fmt.Sprintf("p4-%d.lua", time.Now().UnixNano()))
	src := fmt.Sprintf(wrkScript, strings.Join(quoted, ", "), token, pace.Milliseconds())
	if err := os.WriteFile(script, []byte(src), 0o600); err != nil {
		return wrkResult{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--timeout", "30s", "-s", script, base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads the line wrkScript's done prints.
func parseWrk(out string) (wrkResult, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "P4WRK ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for f := range strings.FieldsSeq(line) {
			k, s, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("wrk output %q: %v", f, err)
			}
			v[k] = n
		}
		for _, k := range []string{"requests", "duration_us", "p50_us", "p99_us", "max_us", "errors"} {
			if _, ok := v[k]; !ok {
				return wrkResult{}, fmt.Errorf("wrk output %q: no %s", line, k)
			}
		}
		us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
		return wrkResult{requests: int(v["requests"]), errors: int(v["errors"]), duration: us("duration_us"),
			p50: us("p50_us"), p99: us("p99_us"), max: us("max_us")}, nil
	}
	return wrkResult{}, errors.New("wrk printed no P4WRK line:\n" + out)
}

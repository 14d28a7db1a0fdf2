package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/api/auth/authtest"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/internal/testlog"
)

func TestAPIFlags(t *testing.T) {
	dir := t.TempDir()
	badManagers := filepath.Join(dir, "managers.yaml")
	if err := os.WriteFile(badManagers, []byte("cms: {a: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := []string{"--database-url", "postgres://x"}
	oidc := []string{"--oidc-issuer", "https://iam.example.org/", "--oidc-audience", "gpuledger"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no database", oidc, "--database-url"},
		{"no issuer", append(db, "--oidc-audience", "a"), "--oidc-issuer and --oidc-audience are required"},
		{"no audience", append(db, "--oidc-issuer", "https://i/"), "--oidc-issuer and --oidc-audience are required"},
		{"no-auth with an issuer", append(append(db, oidc...), "--no-auth"), "cannot be combined"},
		{"no-auth with a JWKS file", append(db, "--no-auth", "--jwks-file", "k.json"), "cannot be combined"},
		{"cert without key", append(append(db, oidc...), "--tls-cert-file", "c.pem"), "go together"},
		{"bad managers", append(append(db, oidc...), "--project-managers", badManagers), "--project-managers"},
		{"bad skew", append(append(db, oidc...), "--oidc-clock-skew", "1h"), "clock skew"},
		{"bad timeout", append(append(db, oidc...), "--request-timeout", "0s"), "must be positive"},
		{"bad log level", append(append(db, oidc...), "--log-level", "loud"), "--log-level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DATABASE_URL", "")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"api"}, c.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), c.want)
			}
		})
	}
}

// TestAPICommand runs gpuledger api on a real ledger with a JWKS file and
// a project managers file, asks it as a manager, then stops it as SIGTERM
// would.
func TestAPICommand(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	s, err := ledger.Open(ctx, url, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC).Unix()
	iv := func(pod, project, user string) observe.Interval {
		return observe.Interval{
			AllocKey: observe.AllocKey{Node: "n0", Device: "GPU-" + pod, PodUID: pod, Resource: "nvidia.com/gpu"},
			Attrs:    observe.Attrs{Class: "gpu", GPUUUID: "GPU-" + pod, Model: "A100", Namespace: project, Pod: pod, User: user, Project: project},
			Start:    t0, End: t0 + 3600, EndExact: true, LastSeen: (t0 + 3600) * 1000, WeightMilli: 1000, Devices: 1,
		}
	}
	err = s.ApplyWindow(ctx, observe.Window{Cluster: "ai-infn", From: t0, To: t0 + 3600,
		Intervals: []observe.Interval{iv("a", "cms", "bob"), iv("b", "atlas", "carol")}})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}

	is := authtest.New(t, time.Now().Truncate(time.Second))
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	is.WriteJWKS(t, jwks)
	managers := filepath.Join(dir, "managers.yaml")
	if err := os.WriteFile(managers, []byte("atlas: /atlas/managers\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, stop, stderr := startAPI(t, "--database-url", url, "--oidc-issuer", is.URL, "--oidc-audience", authtest.Audience,
		"--jwks-file", jwks, "--groups-claim", "wlcg.groups", "--admin-group", "/gpuledger-admins", "--project-managers", managers)

	claims := is.Claims("mgr")
	claims["wlcg.groups"] = []string{"/atlas", "/atlas/managers"}
	token := is.Sign(map[string]any{"alg": "ES256", "kid": authtest.ECKeyID}, claims, is.EC)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/usage?from=2026-11-02T08:00:00Z&to=2026-11-02T09:00:00Z&group_by=project,user", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Rows []map[string]any }
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(doc.Rows) != 1 || doc.Rows[0]["project"] != "atlas" {
		t.Errorf("manager's usage: %d %+v %v", resp.StatusCode, doc, err)
	}
	if resp, err := http.Get("http://" + addr + "/api/v1/usage?from=2026-11-02T08:00:00Z&to=2026-11-02T09:00:00Z"); err != nil || resp.StatusCode != 401 {
		t.Errorf("without a token: %v %v", resp, err)
	}

	if code := stop(); code != 0 {
		t.Errorf("exit %d after the context ended: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("no clean stop in the log: %s", stderr.String())
	}
}

// startAPI runs gpuledger api with args on a free port until it is
// ready; stop ends it as SIGTERM would and returns its exit status.
func startAPI(t *testing.T, args ...string) (addr string, stop func() int, stderr *testlog.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &testlog.Buffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"api", "--listen-address", addr}, args...), io.Discard, stderr)
	}()
	stop = func() int {
		cancel()
		return <-exited
	}
	t.Cleanup(func() { cancel() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr, stop, stderr
			}
		}
		select {
		case code := <-exited:
			t.Fatalf("gpuledger api exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gpuledger api never became ready: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAPINoAuthIsLoud(t *testing.T) {
	url := pgtest.New(t)
	s, err := ledger.Open(context.Background(), url, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	addr, stop, stderr := startAPI(t, "--database-url", url, "--no-auth")
	resp, err := http.Get("http://" + addr + "/api/v1/projects")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("no-auth: %d without a token", resp.StatusCode)
	}
	code := stop()
	if code != 0 || !strings.Contains(stderr.String(), "level=ERROR") || !strings.Contains(stderr.String(), "AUTHENTICATION IS DISABLED") {
		t.Errorf("exit %d, log %q", code, stderr.String())
	}
}

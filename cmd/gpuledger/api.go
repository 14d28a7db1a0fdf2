package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gpuledger/gpuledger/api"
	"github.com/gpuledger/gpuledger/api/auth"
	"github.com/gpuledger/gpuledger/api/web"
)

// cmdAPI serves the accounting API until the context ends (SIGTERM),
// then shuts down gracefully.
func cmdAPI(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("api", stderr)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL `URL` of the ledger (default $DATABASE_URL)")
	listen := fs.String("listen-address", ":8080", "`address` to serve the API on")
	issuer := fs.String("oidc-issuer", "", "OIDC token `issuer`, exactly as the tokens' iss claim (INDIGO IAM: with the trailing slash)")
	audience := fs.String("oidc-audience", "", "`audience` the tokens must carry in aud")
	jwksFile := fs.String("jwks-file", "", "read the token signing keys from this JWKS `file` instead of the issuer's discovery document")
	groupsClaim := fs.String("groups-claim", auth.DefaultGroupsClaim, "token `claim` holding the caller's groups (wlcg.groups: the WLCG profile's /group paths)")
	userClaim := fs.String("user-claim", auth.DefaultUserClaim, "token `claim` matched to the ledger's user")
	adminGroup := fs.String("admin-group", "", "members of this `group` see everything (a leading / is ignored)")
	managersFile := fs.String("project-managers", "", "YAML `file` mapping each project to the group(s) whose members manage it")
	noAuth := fs.Bool("no-auth", false, "serve without authentication, every request as an administrator: DEVELOPMENT ONLY")
	skew := fs.Duration("oidc-clock-skew", auth.DefaultSkew, "clock skew allowed on the tokens' exp, nbf and iat (at most 5m)")
	refresh := fs.Duration("jwks-refresh-interval", auth.DefaultRefreshInterval, "least time between two fetches of the signing keys")
	tokenCache := fs.Duration("token-cache-ttl", auth.DefaultCacheTTL, "how long a verified token's identity is remembered (never past its exp or a change of signing keys; 0: verify every request's token)")
	timeout := fs.Duration("request-timeout", api.DefaultRequestTimeout, "longest time one request may run")
	maxInFlight := fs.Int("max-requests-in-flight", api.DefaultMaxInFlight, "most API requests answered at once; more are refused with 503 and Retry-After")
	grace := fs.Duration("shutdown-grace", 30*time.Second, "how long a shutdown waits for the requests in flight")
	certFile := fs.String("tls-cert-file", "", "serve HTTPS with this certificate `file` (PEM; with --tls-key-file)")
	keyFile := fs.String("tls-key-file", "", "the TLS private key `file` (PEM)")
	page := addUsagePageFlags(fs)
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	wait := fs.Duration("wait", defaultDBWait, "how long to retry a database that is down or restarting at start")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	if err := checkAPIFlags(*dbURL, *issuer, *audience, *jwksFile, *noAuth, *certFile, *keyFile, *timeout); err != nil {
		return err
	}
	if *tokenCache < 0 {
		return usagef("--token-cache-ttl %s: must not be negative", *tokenCache)
	}
	if *maxInFlight <= 0 {
		return usagef("--max-requests-in-flight %d: must be positive", *maxInFlight)
	}
	if err := page.check(fs, *noAuth); err != nil {
		return err
	}
	policy := auth.Policy{AdminGroup: *adminGroup}
	if *managersFile != "" {
		m, err := auth.LoadManagers(*managersFile)
		if err != nil {
			return usagef("--project-managers: %v", err)
		}
		policy.Managers = m
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	opts := api.Options{Policy: policy, NoAuth: *noAuth, Registry: reg, RequestTimeout: *timeout,
		MaxInFlight: *maxInFlight, Logger: logger}
	if !*noAuth {
		onRefresh, err := api.KeyFetchMetric(reg)
		if err != nil {
			return err
		}
		v, err := auth.NewVerifier(ctx, auth.Options{Issuer: *issuer, Audience: *audience, JWKSFile: *jwksFile,
			Skew: *skew, RefreshInterval: *refresh, CacheTTL: *tokenCache, GroupsClaim: *groupsClaim, UserClaim: *userClaim,
			Logger: logger, OnRefresh: onRefresh})
		if err != nil {
			return usageError{err}
		}
		opts.Authenticator = v
		if page.clientID != "" {
			idv := v // the ID tokens' audience is the client ID: the API's verifier when they are the same
			if page.clientID != *audience {
				idv, err = auth.NewVerifier(ctx, auth.Options{Issuer: *issuer, Audience: page.clientID, JWKSFile: *jwksFile,
					Skew: *skew, RefreshInterval: *refresh, GroupsClaim: *groupsClaim, UserClaim: *userClaim,
					Logger: logger, OnRefresh: onRefresh})
				if err != nil {
					return usageError{err}
				}
			}
			ui, err := page.build(*issuer, idv, policy, *groupsClaim, logger)
			if err != nil {
				return err
			}
			opts.Web, opts.Sessions = ui, ui
		}
	}
	store, err := openLedger(ctx, *dbURL, *wait, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	opts.Ledger = store
	srv, err := api.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	logger.Info("serving the accounting API", "address", ln.Addr().String(), "tls", *certFile != "",
		"auth", !*noAuth, "issuer", *issuer, "usage_page", page.publicURL, "admin_group", *adminGroup, "managed_projects", len(policy.Managers))
	if err := srv.Serve(ctx, ln, *grace); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// checkAPIFlags checks the flags that depend on each other.
func checkAPIFlags(dbURL, issuer, audience, jwksFile string, noAuth bool, certFile, keyFile string, timeout time.Duration) error {
	switch {
	case dbURL == "":
		return usagef("--database-url is required (or set DATABASE_URL)")
	case noAuth && (issuer != "" || audience != "" || jwksFile != ""):
		return usagef("--no-auth disables authentication: it cannot be combined with --oidc-issuer, --oidc-audience or --jwks-file")
	case !noAuth && (issuer == "" || audience == ""):
		return usagef("--oidc-issuer and --oidc-audience are required (or --no-auth, for development only)")
	case (certFile == "") != (keyFile == ""):
		return usagef("--tls-cert-file and --tls-key-file go together")
	case timeout <= 0:
		return usagef("--request-timeout %s: must be positive", timeout)
	}
	return nil
}

// usagePageFlags configure the self-service usage page (package web).
type usagePageFlags struct {
	clientID, clientSecret, publicURL, sessionKeyFile string
	sessionMaxAge                                     time.Duration
	insecureCookies                                   bool
}

func addUsagePageFlags(fs *flag.FlagSet) *usagePageFlags {
	p := &usagePageFlags{}
	fs.StringVar(&p.clientID, "oidc-client-id", "", "OIDC client `ID` of the usage page: serves the page at / (with --public-url)")
	fs.StringVar(&p.clientSecret, "oidc-client-secret", os.Getenv("GPULEDGER_OIDC_CLIENT_SECRET"),
		"the usage page's client `secret` (default $GPULEDGER_OIDC_CLIENT_SECRET; none: a public client, PKCE only)")
	fs.StringVar(&p.publicURL, "public-url", "", "`URL` browsers reach the usage page at (https); the redirect URI is <URL>/callback")
	fs.StringVar(&p.sessionKeyFile, "session-key-file", "", "`file` of at least 32 secret bytes that signs the page's sessions (default: a random key, sessions end at restart)")
	fs.DurationVar(&p.sessionMaxAge, "session-max-age", web.DefaultSessionMaxAge, "how long a usage page session lasts (at most 168h)")
	fs.BoolVar(&p.insecureCookies, "insecure-cookies", false, "session cookies without Secure, for a http://localhost --public-url: DEVELOPMENT ONLY")
	return p
}

// check refuses page flags without a page, and a page without a login.
func (p *usagePageFlags) check(fs *flag.FlagSet, noAuth bool) error {
	var stray []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "oidc-client-secret", "public-url", "session-key-file", "session-max-age", "insecure-cookies":
			stray = append(stray, "--"+f.Name)
		}
	})
	switch {
	case p.clientID == "" && len(stray) > 0:
		return usagef("%s configure the usage page, which needs --oidc-client-id", strings.Join(stray, ", "))
	case p.clientID != "" && noAuth:
		return usagef("the usage page logs its users in: --oidc-client-id cannot be combined with --no-auth")
	case p.clientID != "" && p.publicURL == "":
		return usagef("--public-url is required with --oidc-client-id (the redirect URI is <public URL>/callback)")
	}
	return nil
}

// build makes the page; ID tokens are checked by idv.
func (p *usagePageFlags) build(issuer string, idv web.IDTokenVerifier, policy auth.Policy, groupsClaim string, logger *slog.Logger) (*web.UI, error) {
	var key []byte
	if p.sessionKeyFile != "" {
		var err error
		if key, err = web.LoadSessionKey(p.sessionKeyFile); err != nil {
			return nil, usagef("--session-key-file: %v", err)
		}
	}
	scopes := slices.Clone(web.DefaultScopes)
	if groupsClaim == "wlcg.groups" {
		scopes = append(scopes, "wlcg.groups")
	}
	ui, err := web.New(web.Options{Issuer: issuer, ClientID: p.clientID, ClientSecret: p.clientSecret,
		PublicURL: p.publicURL, Verifier: idv, Policy: policy, SessionKey: key, SessionMaxAge: p.sessionMaxAge,
		InsecureCookies: p.insecureCookies, Scopes: scopes, Logger: logger.With("component", "usage-page")})
	if err != nil {
		return nil, usageError{err}
	}
	return ui, nil
}

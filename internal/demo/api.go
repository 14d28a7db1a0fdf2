package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/api"
	"github.com/gpuledger/gpuledger/api/auth"
	"github.com/gpuledger/gpuledger/api/web"
	"github.com/gpuledger/gpuledger/internal/devidp"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// The demo's login settings.
const (
	// AdminGroup is the demo's administrators' group.
	AdminGroup = "gpuledger-admins"
	// ClientID is the usage page's client at the demo's provider.
	ClientID = "gpuledger-demo-page"
	// APIAudience is the audience of the demo's API tokens.
	APIAudience = "gpuledger-demo-api"
	// TokenLifetime is how long the tokens the demo mints for curl last.
	TokenLifetime = 12 * time.Hour
)

// people are the identities the demo's provider logs in: users of the
// scenario in three roles.
type people struct {
	admin, manager, researcher string
	// project is the largest project, which manager manages;
	// researcherProject is the researcher's.
	project, researcherProject string
}

// managerGroup is the group whose members manage the largest project.
func (w people) managerGroup() string { return w.project + "-managers" }

func (w people) users() []devidp.User {
	return []devidp.User{
		{Name: w.admin, Groups: []string{AdminGroup}, Note: "administrator: sees every project and user"},
		{Name: w.manager, Groups: []string{w.managerGroup()}, Note: "manager of " + w.project + ", the largest project"},
		{Name: w.researcher, Note: "researcher of " + w.researcherProject + ": sees their own GPU-hours"},
	}
}

// pickPeople chooses three distinct users of the ground truth (by project,
// user and resource): the manager is the largest user of the largest
// project, the researcher the largest user of another project, the
// administrator one of a third where there is one.
func pickPeople(detail *truth.Report) people {
	type usage struct {
		project, user string
		ms            int64
	}
	byUser := map[[2]string]int64{}
	byProject := map[string]int64{}
	for _, r := range detail.Rows {
		project, user := r.Keys[0], r.Keys[1]
		if project == "" || user == "" {
			continue
		}
		byUser[[2]string{project, user}] += r.AllocatedMilliGPUSeconds
		byProject[project] += r.AllocatedMilliGPUSeconds
	}
	list := make([]usage, 0, len(byUser))
	for k, ms := range byUser {
		list = append(list, usage{k[0], k[1], ms})
	}
	slices.SortFunc(list, func(a, b usage) int {
		return cmp.Or(cmp.Compare(byProject[b.project], byProject[a.project]), cmp.Compare(a.project, b.project),
			cmp.Compare(b.ms, a.ms), cmp.Compare(a.user, b.user))
	})
	w := people{admin: "demo-admin", manager: "demo-manager", researcher: "demo-researcher", project: "demo-project"}
	if len(list) == 0 {
		w.researcherProject = w.project
		return w
	}
	w.manager, w.project = list[0].user, list[0].project
	w.researcherProject = w.project
	find := func(ok func(u usage) bool) (usage, bool) {
		for _, u := range list {
			if ok(u) {
				return u, true
			}
		}
		return usage{}, false
	}
	if u, ok := find(func(u usage) bool { return u.user != w.manager && u.project != w.project }); ok {
		w.researcher, w.researcherProject = u.user, u.project
	} else if u, ok := find(func(u usage) bool { return u.user != w.manager }); ok {
		w.researcher, w.researcherProject = u.user, u.project
	}
	taken := func(u usage) bool { return u.user == w.manager || u.user == w.researcher }
	if u, ok := find(func(u usage) bool { return !taken(u) && u.project != w.project && u.project != w.researcherProject }); ok {
		w.admin = u.user
	} else if u, ok := find(func(u usage) bool { return !taken(u) }); ok {
		w.admin = u.user
	}
	return w
}

// accountingAPI is the running usage page and API.
type accountingAPI struct {
	url    string // the page and the API, http://127.0.0.1:<port>
	issuer string
	tokens map[string]string // role → token file
	stop   func()
}

// serveAPI starts the development identity provider and the accounting
// API with the usage page on loopback ports, reading the ledger at dbURL,
// and mints an API token per role into <out>/tokens.
func serveAPI(ctx context.Context, opts Options, dbURL string, who people) (*accountingAPI, error) {
	ctx, cancel := context.WithCancel(ctx)
	var closers []func()
	fail := func(err error) (*accountingAPI, error) {
		cancel()
		for _, c := range slices.Backward(closers) {
			c()
		}
		return nil, fmt.Errorf("demo: usage page and API: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { ln.Close() })
	public := "http://" + ln.Addr().String()
	logger := opts.Logger
	idp, err := devidp.Start(ctx, devidp.Options{ClientID: ClientID, RedirectURIs: []string{public + "/callback"},
		Audience: APIAudience, Users: who.users(), Logger: logger.With("component", "devidp")})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = idp.Close() })
	apiV, err := auth.NewVerifier(ctx, auth.Options{Issuer: idp.Issuer(), Audience: APIAudience, Logger: logger})
	if err != nil {
		return fail(err)
	}
	idV, err := auth.NewVerifier(ctx, auth.Options{Issuer: idp.Issuer(), Audience: ClientID, Logger: logger})
	if err != nil {
		return fail(err)
	}
	policy := auth.Policy{AdminGroup: AdminGroup, Managers: map[string][]string{who.project: {who.managerGroup()}}}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fail(err)
	}
	ui, err := web.New(web.Options{Issuer: idp.Issuer(), ClientID: ClientID, PublicURL: public, Verifier: idV,
		Policy: policy, SessionKey: key, InsecureCookies: true, Logger: logger.With("component", "usage-page")})
	if err != nil {
		return fail(err)
	}
	store, err := ledger.Open(ctx, dbURL, ledger.Options{NoMigrate: true, Logger: logger})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, store.Close)
	srv, err := api.New(api.Options{Ledger: store, Authenticator: apiV, Policy: policy, Sessions: ui, Web: ui, Logger: logger})
	if err != nil {
		return fail(err)
	}
	tokens, err := mintTokens(opts.Out, idp, who)
	if err != nil {
		return fail(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln, 5*time.Second); err != nil {
			logger.Error("accounting API stopped", "err", err)
		}
	}()
	a := &accountingAPI{url: public, issuer: idp.Issuer(), tokens: tokens}
	a.stop = func() {
		cancel()
		<-done
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	return a, nil
}

// mintTokens writes an API token of each role into <out>/tokens/<role>.token.
func mintTokens(out string, idp *devidp.Provider, who people) (map[string]string, error) {
	dir := filepath.Join(out, "tokens")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files := map[string]string{}
	for role, user := range map[string]string{"admin": who.admin, "manager": who.manager, "researcher": who.researcher} {
		tok, err := idp.Mint(user, TokenLifetime)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, role+".token")
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		files[role] = path
	}
	return files, nil
}

// say prints the page, who can log in, and two API requests with the
// minted tokens.
func (a *accountingAPI) say(p *printer, s *scenario.Scenario, who people) {
	month := s.Start.UTC().Format("2006-01")
	from := s.Start.UTC().Truncate(time.Hour)
	to := s.End.UTC().Truncate(time.Hour)
	if to.Before(s.End) {
		to = to.Add(time.Hour)
	}
	usage := "group_by=project&from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	p.say("")
	p.say("Usage page and accounting API on the replayed ledger:")
	p.say("  usage page: %s/   (the scenario's month: %s/?from=%s&to=%s)", a.url, a.url, month, month)
	p.say("  log in at the demo's development identity provider (%s, loopback only, no password:", a.issuer)
	p.say("  never for production) as one of the scenario's users:")
	p.say("    %-16s administrator (group %s): every project and user", who.admin, AdminGroup)
	p.say("    %-16s manager of %s, the largest project (group %s): its users", who.manager, who.project, who.managerGroup())
	p.say("    %-16s researcher of %s: their own GPU-hours", who.researcher, who.researcherProject)
	p.say("  API tokens minted for them (valid %s): %s", model.Duration(TokenLifetime), filepath.Dir(a.tokens["admin"]))
	p.say("  curl -s -H \"Authorization: Bearer $(cat %s)\" '%s/api/v1/reports/monthly/%s?format=csv'   # as %s",
		shellWord(a.tokens["manager"]), a.url, month, who.manager)
	p.say("  curl -s -H \"Authorization: Bearer $(cat %s)\" '%s/api/v1/usage?%s'   # as %s",
		shellWord(a.tokens["admin"]), a.url, usage, who.admin)
	p.say("  docs/api.md describes every resource, docs/usage-page.md the page.")
}

// safeWord is a string the shell reads as one word without quotes.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// shellWord quotes s for a POSIX shell when it needs quoting.
func shellWord(s string) string {
	if safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// MaxMonths is the longest range the page shows, in months.
const MaxMonths = 12

// monthLayout is how the page writes a month, as <input type="month">.
const monthLayout = "2006-01"

// pageData is what page.html shows. The numbers are not in it: the page's
// script reads them from DataURL, the accounting API.
type pageData struct {
	User, Subject string
	Admin         bool
	Manages       []string
	NoRows        bool // a login that sees no row: no user claim, no managed project
	From, To      string
	DataURL       string
	CSVURL        string
	Error         string
}

// landingData is what login.html shows.
type landingData struct {
	Expired, Invalid, LoggedOut bool
}

// page serves the usage page to a session, the login page to anybody
// else (a refused session cookie is deleted).
func (u *UI) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	id, found, err := u.Session(r)
	if !found || err != nil {
		if found {
			u.log.Debug("session refused", "err", err)
			http.SetCookie(w, u.cookies.cookie(u.cookies.session, "", -1))
		}
		u.render(w, r, http.StatusOK, "login.html", landingData{
			Expired: errors.Is(err, ErrSessionExpired), Invalid: errors.Is(err, ErrSessionInvalid),
			LoggedOut: !found && r.URL.Query().Has("logged_out")})
		return
	}
	pr := u.opts.Policy.Principal(id)
	d := pageData{User: pr.User, Subject: pr.Subject, Admin: pr.Admin, Manages: pr.Manages,
		NoRows: !pr.Admin && pr.User == "" && len(pr.Manages) == 0}
	status := http.StatusOK
	from, to, err := monthRange(r.URL.Query(), u.opts.Now())
	if err != nil {
		status, d.Error = http.StatusBadRequest, err.Error()
		from, to, _ = monthRange(nil, u.opts.Now())
	}
	d.From, d.To = from.Format(monthLayout), to.Format(monthLayout)
	d.DataURL, d.CSVURL = usageURL(from, to, "json"), usageURL(from, to, "csv")
	u.render(w, r, status, "page.html", d)
}

// usageURL is the API request of the page's table: the months from the
// first of from to the end of to, by month, project and user.
func usageURL(from, to time.Time, format string) string {
	q := url.Values{}
	q.Set("granularity", "month")
	q.Set("group_by", "project,user")
	q.Set("from", from.Format(time.RFC3339))
	q.Set("to", to.AddDate(0, 1, 0).Format(time.RFC3339))
	q.Set("format", format)
	return "/api/v1/usage?" + q.Encode()
}

// monthRange reads the page's range, whole UTC months given as YYYY-MM,
// both included: by default the twelve months up to the current one; a
// range given by one end only spans twelve months from it.
func monthRange(q url.Values, now time.Time) (from, to time.Time, err error) {
	cur := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	parse := func(name string) (time.Time, error) {
		s := q.Get(name)
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(monthLayout, s)
		if err != nil || t.Year() < 2000 {
			return time.Time{}, fmt.Errorf("%s %q is not a month such as %s", name, s, cur.Format(monthLayout))
		}
		return t, nil
	}
	if from, err = parse("from"); err != nil {
		return
	}
	if to, err = parse("to"); err != nil {
		return
	}
	switch {
	case from.IsZero() && to.IsZero():
		to = cur
		from = to.AddDate(0, 1-MaxMonths, 0)
	case from.IsZero():
		from = to.AddDate(0, 1-MaxMonths, 0)
	case to.IsZero():
		to = from.AddDate(0, MaxMonths-1, 0)
	}
	if to.Before(from) {
		return from, to, fmt.Errorf("the range ends (%s) before it starts (%s)", to.Format(monthLayout), from.Format(monthLayout))
	}
	if n := months(from, to); n > MaxMonths {
		return from, to, fmt.Errorf("the range spans %d months; at most %d are shown at once", n, MaxMonths)
	}
	return from, to, nil
}

// months counts the months from from to to, both included.
func months(from, to time.Time) int {
	return (to.Year()-from.Year())*12 + int(to.Month()-from.Month()) + 1
}

// errorData is what error.html shows.
type errorData struct {
	Status  int
	Message string
}

// fail answers an error page.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	u.render(w, r, status, "error.html", errorData{Status: status, Message: msg})
}

// render executes a template into a buffer first, so that a template
// error is a clean 500 rather than half a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var b bytes.Buffer
	if err := u.pages.ExecuteTemplate(&b, name, data); err != nil {
		u.log.Error("render page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

package web

import (
	"testing"
	"time"
)

// FuzzSessionCookie feeds arbitrary cookie values to the session and
// login cookie readers: they never panic, and accept only the values
// signed (sealed) with the key, each in its one canonical spelling.
func FuzzSessionCookie(f *testing.F) {
	k, err := deriveKeys(testKey)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	valid, err := encodeSession(k.session, session{Subject: "s", User: "alice", Groups: []string{"cms"},
		Issued: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	if err != nil {
		f.Fatal(err)
	}
	state := loginState{State: "s", Nonce: "n", Verifier: "v", Expires: now.Add(time.Minute).Unix()}
	sealed, err := k.seal("login", state)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(valid))
	f.Add([]byte(sealed))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := string(b)
		// Nobody can forge the MAC or the seal: the only values accepted
		// are the ones made with the key (a seal is random: any seal of
		// the one state sealed here, in this run or an earlier one).
		if s, err := decodeSession(k.session, v, now, 2*time.Hour); err == nil && v != valid {
			t.Errorf("accepted %q as %+v", v, s)
		}
		if ls, err := k.open("login", v, now); err == nil && ls != state {
			t.Errorf("opened %q as %+v", v, ls)
		}
	})
}

package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/gpuledger/gpuledger/api/auth/authtest"
	"github.com/gpuledger/gpuledger/sim/clock"
)

// FuzzVerify: whatever the bearer sends, Verify answers with an identity
// or one of its errors, never a panic; and what it accepts verifies.
func FuzzVerify(f *testing.F) {
	is := authtest.New(f, t0)
	path := filepath.Join(f.TempDir(), "jwks.json")
	is.WriteJWKS(f, path)
	clk := clock.NewManual(t0)
	v, err := NewVerifier(context.Background(), Options{Issuer: is.URL, Audience: authtest.Audience, JWKSFile: path, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	valid := is.Token("bob", "cms")
	f.Add([]byte(valid))
	f.Add([]byte(valid[:len(valid)-3]))
	f.Fuzz(func(t *testing.T, token []byte) {
		id, err := v.Verify(context.Background(), string(token))
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("Verify(%q): unexpected error %v", token, err)
			}
			return
		}
		// Only the issuer's keys sign: an accepted token carries bob's claims.
		if id.User != "bob" || len(id.Groups) != 1 || id.Groups[0] != "cms" {
			t.Fatalf("Verify(%q) accepted %+v", token, id)
		}
	})
}

package dashboards

//lint:file-ignore SA1019 the classic dashboard schema is chosen deliberately (see the package comment)

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// TestDashboardsStrictDecode: every generated file passes the SDK's strict
// decoder (unknown fields, wrong types and missing required fields are
// errors, panels and queries included), and decodes into the SDK's model
// and encodes back to the same bytes.
func TestDashboardsStrictDecode(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	cog.NewRuntime().RegisterDataqueryVariant(SQLQueryVariantConfig())
	for _, b := range buildAll(t) {
		// The SDK's strict decoder returns an empty cog.BuildErrors (a
		// non-nil error) where it found nothing wrong, and then leaves
		// the panels out of its result: only its errors are used.
		var strict dashboard.Dashboard
		if err := strict.UnmarshalJSONStrict(b.raw); err != nil {
			var be cog.BuildErrors
			if !errors.As(err, &be) || len(be) > 0 {
				t.Errorf("%s: strict decode: %v", b.d.UID, err)
			}
		}
		var d dashboard.Dashboard
		if err := json.Unmarshal(b.raw, &d); err != nil {
			t.Errorf("%s: decode: %v", b.d.UID, err)
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b.raw) {
			t.Errorf("%s: decoding into the SDK's model and encoding again changes the JSON", b.d.UID)
		}
	}
}

package api

import (
	_ "embed" // the OpenAPI document
	"net/http"

	"github.com/go-chi/chi/v5"
)

// The OpenAPI document is written by hand in docs/openapi.json; go
// generate copies it here to be embedded (a test fails when the copy
// drifts).
//
//go:generate cp ../docs/openapi.json openapi.json

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns the API's OpenAPI 3 document (JSON).
func OpenAPIDocument() []byte { return openAPIDocument }

// openAPI is GET /api/v1/openapi.json, served without authentication.
type openAPI struct{}

// Routes registers the resource.
func (openAPI) Routes(r chi.Router) {
	r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(openAPIDocument)
	})
}

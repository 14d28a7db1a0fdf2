package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// The Grafana Foundation SDK has no builder for Grafana's SQL data sources;
// SQLQuery is the query model of the PostgreSQL data source
// (grafana-postgresql-datasource) in code mode, as a typed data query
// variant, so that ledger panels are built like every other panel.

// SQLFormat is how Grafana reads the rows of a SQL query.
type SQLFormat string

// The formats of SQL queries.
const (
	// SQLFormatTable shows the rows as they are.
	SQLFormatTable SQLFormat = "table"
	// SQLFormatTimeSeries reads a "time" column, an optional "metric"
	// column naming the series, and value columns.
	SQLFormatTimeSeries SQLFormat = "time_series"
)

// SQLQuery is a raw SQL query of Grafana's PostgreSQL data source.
type SQLQuery struct {
	RefID      string                `json:"refId,omitempty"`
	Hide       *bool                 `json:"hide,omitempty"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	// EditorMode is "code": the query is SQL text, not the visual builder's.
	EditorMode string    `json:"editorMode"`
	Format     SQLFormat `json:"format"`
	RawQuery   bool      `json:"rawQuery"`
	RawSQL     string    `json:"rawSql"`
}

var _ variants.Dataquery = SQLQuery{}

// ImplementsDataqueryVariant marks SQLQuery as a data query.
func (SQLQuery) ImplementsDataqueryVariant() {}

// DataqueryType is the data source plugin ID the query is for.
func (SQLQuery) DataqueryType() string { return PostgresType }

// Equals compares two data queries.
func (q SQLQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(SQLQuery)
	if !ok {
		return false
	}
	return q.RefID == o.RefID && equalBoolPtr(q.Hide, o.Hide) && equalRef(q.Datasource, o.Datasource) &&
		q.EditorMode == o.EditorMode && q.Format == o.Format && q.RawQuery == o.RawQuery && q.RawSQL == o.RawSQL
}

func equalBoolPtr(a, b *bool) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func equalStringPtr(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func equalRef(a, b *common.DataSourceRef) bool {
	return (a == nil) == (b == nil) && (a == nil || (equalStringPtr(a.Type, b.Type) && equalStringPtr(a.Uid, b.Uid)))
}

// Errors of SQLQuery.Validate.
var (
	ErrEmptySQL  = errors.New("sql query: empty rawSql")
	ErrSQLFormat = errors.New("sql query: format must be table or time_series")
)

// Validate checks that the query has SQL and a known format.
func (q SQLQuery) Validate() error {
	if q.RawSQL == "" {
		return ErrEmptySQL
	}
	if q.Format != SQLFormatTable && q.Format != SQLFormatTimeSeries {
		return ErrSQLFormat
	}
	return nil
}

// SQLQueryBuilder builds an SQLQuery.
type SQLQueryBuilder struct {
	internal SQLQuery
}

var _ cog.Builder[variants.Dataquery] = (*SQLQueryBuilder)(nil)

// NewSQLQueryBuilder starts a code-mode query of the given SQL, read as a
// table.
func NewSQLQueryBuilder(sql string) *SQLQueryBuilder {
	return &SQLQueryBuilder{internal: SQLQuery{EditorMode: "code", Format: SQLFormatTable, RawQuery: true, RawSQL: sql}}
}

// Build returns the query, or an error when it is not valid.
func (b *SQLQueryBuilder) Build() (variants.Dataquery, error) {
	if err := b.internal.Validate(); err != nil {
		return nil, cog.MakeBuildErrors("sql.dataquery", err)
	}
	return b.internal, nil
}

// RefId names the query within its panel (spelt as the SDK's builders spell it).
func (b *SQLQueryBuilder) RefId(refID string) *SQLQueryBuilder {
	b.internal.RefID = refID
	return b
}

// Hide keeps the query's result out of the panel.
func (b *SQLQueryBuilder) Hide(hide bool) *SQLQueryBuilder {
	b.internal.Hide = &hide
	return b
}

// Datasource sets the data source the query runs on.
func (b *SQLQueryBuilder) Datasource(ref common.DataSourceRef) *SQLQueryBuilder {
	b.internal.Datasource = &ref
	return b
}

// Format sets how Grafana reads the rows.
func (b *SQLQueryBuilder) Format(f SQLFormat) *SQLQueryBuilder {
	b.internal.Format = f
	return b
}

// SQLQueryVariantConfig lets the SDK's runtime decode SQLQuery targets
// (register it with cog.NewRuntime().RegisterDataqueryVariant before
// unmarshalling a dashboard that has ledger panels).
func SQLQueryVariantConfig() variants.DataqueryConfig {
	return variants.DataqueryConfig{
		Identifier: PostgresType,
		DataqueryUnmarshaler: func(raw []byte) (variants.Dataquery, error) {
			var q SQLQuery
			if err := json.Unmarshal(raw, &q); err != nil {
				return nil, fmt.Errorf("sql query: %w", err)
			}
			return q, nil
		},
		StrictDataqueryUnmarshaler: func(raw []byte) (variants.Dataquery, error) {
			var q SQLQuery
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&q); err != nil {
				return nil, fmt.Errorf("sql query: %w", err)
			}
			if err := q.Validate(); err != nil {
				return nil, err
			}
			return q, nil
		},
	}
}

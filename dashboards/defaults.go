package dashboards

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The house defaults: data sources, units, variables and panel shapes that
// every dashboard shares.

// Data source plugin IDs and the variables that select their instances.
const (
	// PrometheusType is the plugin ID of Grafana's Prometheus data source.
	PrometheusType = "prometheus"
	// PostgresType is the plugin ID of Grafana's PostgreSQL data source
	// (Grafana 10.2.3 and later; "postgres" before).
	PostgresType = "grafana-postgresql-datasource"

	promVar   = "datasource"
	ledgerVar = "ledger"
)

var (
	promDS   = common.DataSourceRef{Type: cog.ToPtr(PrometheusType), Uid: cog.ToPtr("${" + promVar + "}")}
	ledgerDS = common.DataSourceRef{Type: cog.ToPtr(PostgresType), Uid: cog.ToPtr("${" + ledgerVar + "}")}
)

// Units the SDK has no name for. Grafana's "suffix:" units print the value
// followed by the text.
const (
	unitGPUs        = "suffix: GPUs"
	unitGPUHours    = "suffix: GPU-h"
	unitFPGAHours   = "suffix: FPGA-h"
	unitDeviceHours = "suffix: device-h"
	unitDevices     = "suffix: devices"
)

// Grid: 24 columns; panels are 8 rows high unless said otherwise.
const (
	fullWidth  = 24
	halfWidth  = 12
	thirdWidth = 8
	statWidth  = 4
	statHeight = 4
	height     = 8
)

// The activity below which an allocation counts as idle: the aggregator's
// default idle threshold (50 thousandths) and the GPULedgerGPUAllocatedIdle
// alert's.
const idleBelow = "0.05"

// Class matchers of allocation series: the classes that hold local GPUs,
// and those plus GPUs offloaded to remote sites.
const (
	classLocalGPU = `class=~"gpu|mig|shared"`
	classAnyGPU   = `class=~"gpu|mig|shared|offload"`
)

// sel is a Prometheus selector of metric restricted to the dashboard's
// cluster and to the extra matchers.
func sel(metric string, matchers ...string) string {
	return metric + "{" + strings.Join(append([]string{`cluster=~"$cluster"`}, matchers...), ", ") + "}"
}

// held selects the allocation series of allocations still held: the
// exporters keep an ended allocation's series, with its end time, for the
// ended-allocation retention.
func held(metric string, matchers ...string) string {
	return "(" + sel(metric, matchers...) +
		" unless on(cluster, node, device, pod_uid, resource) gpuledger_allocation_end_time_seconds)"
}

// promQuery is a range query drawn as a time series.
func promQuery(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promDS).Expr(expr).LegendFormat(legend).Range()
}

// promInstant is an instant query whose series a stat or a bar gauge
// shows, one value each.
func promInstant(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promDS).Expr(expr).LegendFormat(legend).Instant()
}

// promTable is an instant query read as a table: one row per series, its
// labels as columns, the value in a column named Value.
func promTable(expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(promDS).Expr(expr).Instant().
		Format(prometheus.PromQueryFormatTable)
}

// sqlTable is a ledger query whose rows a table shows as they are.
func sqlTable(sql string) *SQLQueryBuilder {
	return NewSQLQueryBuilder(sql).Datasource(ledgerDS).Format(SQLFormatTable)
}

// sqlSeries is a ledger query returning time series: a "time" column,
// optionally a "metric" column naming the series, and value columns.
func sqlSeries(sql string) *SQLQueryBuilder {
	return NewSQLQueryBuilder(sql).Datasource(ledgerDS).Format(SQLFormatTimeSeries)
}

// timeseriesPanel is a line chart of Prometheus range queries.
func timeseriesPanel(id uint32, title, description, unit string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Id(id).Title(title).Description(description).Unit(unit).
		Datasource(promDS).Height(height).Span(halfWidth).
		LineWidth(1).FillOpacity(10).ShowPoints(common.VisibilityModeNever).
		SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// stacked makes a time series panel stack its series (parts of a whole).
func stacked(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.FillOpacity(40).Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

// ledgerTimeseriesPanel is a bar chart over time of ledger rows (hours,
// days or months).
func ledgerTimeseriesPanel(id uint32, title, description, unit string) *timeseries.PanelBuilder {
	return timeseriesPanel(id, title, description, unit).Datasource(ledgerDS).
		DrawStyle(common.GraphDrawStyleBars).FillOpacity(60).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

// statPanel shows one number: the last value of its query.
func statPanel(id uint32, title, description, unit string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Id(id).Title(title).Description(description).Unit(unit).
		Datasource(promDS).Height(statHeight).Span(statWidth).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		ColorMode(common.BigValueColorModeValue).
		GraphMode(common.BigValueGraphModeNone).
		Orientation(common.VizOrientationAuto).
		Thresholds(greenOnly())
}

// ledgerStatPanel is a stat of a ledger query.
func ledgerStatPanel(id uint32, title, description, unit string) *stat.PanelBuilder {
	return statPanel(id, title, description, unit).Datasource(ledgerDS)
}

// tablePanel lists rows: Prometheus instant results (one row per series,
// labels as columns) or ledger rows.
func tablePanel(id uint32, title, description string) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Id(id).Title(title).Description(description).
		Datasource(promDS).Height(height).Span(fullWidth).
		Filterable(true).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}))
}

// ledgerTablePanel is a table of a ledger query.
func ledgerTablePanel(id uint32, title, description string) *table.PanelBuilder {
	return tablePanel(id, title, description).Datasource(ledgerDS)
}

// bargaugePanel compares the current values of several series.
func bargaugePanel(id uint32, title, description, unit string) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Id(id).Title(title).Description(description).Unit(unit).
		Datasource(promDS).Height(height).Span(halfWidth).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		Orientation(common.VizOrientationHorizontal).
		Thresholds(greenOnly())
}

// greenOnly is a single green threshold: a number with no good or bad.
func greenOnly() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "green"}})
}

// warnAbove turns values red from limit on (and orange from warn on).
func warnAbove(warn, limit float64) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "green"}, {Value: cog.ToPtr(warn), Color: "orange"}, {Value: cog.ToPtr(limit), Color: "red"}})
}

// warnBelow turns values red below limit (and orange below warn).
func warnBelow(limit, warn float64) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "red"}, {Value: cog.ToPtr(limit), Color: "orange"}, {Value: cog.ToPtr(warn), Color: "green"}})
}

// thresholdLines draws a panel's thresholds as dashed lines.
func thresholdLines() *common.GraphThresholdsStyleConfigBuilder {
	return common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed)
}

// column sets the unit (and optionally the display name) of one table
// column.
func column(unit, displayName string) []dashboard.DynamicConfigValue {
	props := []dashboard.DynamicConfigValue{{Id: "unit", Value: unit}}
	if displayName != "" {
		props = append(props, dashboard.DynamicConfigValue{Id: "displayName", Value: displayName})
	}
	return props
}

// hideColumns drops columns of a table (the Time column of instant
// queries, the constant Value of info series) and renames others.
func hideColumns(rename map[string]string, hide ...string) dashboard.DataTransformerConfig {
	exclude := map[string]bool{}
	for _, h := range hide {
		exclude[h] = true
	}
	opts := map[string]any{"excludeByName": exclude}
	if len(rename) > 0 {
		opts["renameByName"] = rename
	}
	return dashboard.DataTransformerConfig{Id: "organize", Options: opts}
}

// mergeTables joins the tables of several instant queries on their common
// label columns.
func mergeTables() dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}
}

// Variables.

// prometheusVar selects the Prometheus data source.
func prometheusVar() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(promVar).Label("Prometheus").Type(PrometheusType).
		Description("The Prometheus that scrapes the gpuledger exporters (and the aggregator).")
}

// ledgerDatasourceVar selects the PostgreSQL data source of the ledger.
func ledgerDatasourceVar() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(ledgerVar).Label("Ledger").Type(PostgresType).
		Description("The PostgreSQL database the gpuledger aggregator writes (a read-only role is enough).")
}

// promLabelVar is a variable whose options are the values of a label in
// Prometheus, refreshed with the time range.
func promLabelVar(name, label, query, description string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).Description(description).
		Datasource(promDS).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// sqlVar is a variable whose options come from the ledger.
func sqlVar(name, label, query, description string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).Description(description).
		Datasource(ledgerDS).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// promClusterVar picks the cluster among the clusters Prometheus scrapes
// exporters of. Without a cluster label it has no option and the empty
// matcher selects every series.
func promClusterVar() *dashboard.QueryVariableBuilder {
	return promLabelVar("cluster", "Cluster", `label_values(up{job=~".*gpuledger-exporter.*"}, cluster)`,
		"The cluster label Prometheus gives the gpuledger scrape jobs (external or target label).")
}

// ledgerClusterVar picks a cluster of the ledger (the aggregator's --cluster).
func ledgerClusterVar() *dashboard.QueryVariableBuilder {
	return sqlVar("cluster", "Cluster", `SELECT cluster FROM watermarks ORDER BY 1`,
		"A cluster of the ledger: the aggregator's --cluster, also the cluster label of its Prometheus series.")
}

// ledgerProjectVar picks projects of the cluster among those the ledger
// has rows of. "All" expands to every option, so that the SQL list and the
// Prometheus regex are both exact.
func ledgerProjectVar() *dashboard.QueryVariableBuilder {
	return sqlVar("project", "Project",
		`SELECT DISTINCT project FROM ledger_monthly WHERE cluster IN (${cluster:sqlstring}) ORDER BY 1`,
		"Projects with ledger rows in the cluster (Kueue ClusterQueue, namespace label or namespace).").
		Multi(true).IncludeAll(true)
}

// ledgerUserVar picks users of the selected projects.
func ledgerUserVar() *dashboard.QueryVariableBuilder {
	return sqlVar("user", "User",
		`SELECT DISTINCT user_name FROM ledger_monthly WHERE cluster IN (${cluster:sqlstring}) AND project IN (${project:sqlstring}) ORDER BY 1`,
		"Users with ledger rows in the selected projects (JupyterHub user, platform label or service account).").
		Multi(true).IncludeAll(true)
}

// nodeVar picks nodes among those serving metric.
func nodeVar(metric string) *dashboard.QueryVariableBuilder {
	return promLabelVar("node", "Node", "label_values("+sel(metric)+", node)",
		"Kubernetes nodes whose exporter serves "+metric+".").
		Multi(true).IncludeAll(true).AllValue(".*")
}

// ledgerRange restricts hourly rows (ledger_hourly, ledger_adjustments) to
// the hours that start inside the dashboard's time range.
const ledgerRange = `hour >= $__timeFrom() AND hour < $__timeTo()`

// ledgerRows is the ledger's hourly rows and the adjustments journaled for
// the hours of the range, restricted by filter: every sum over it is the
// ledger's exact figure, corrections of closed months included (what
// gpuledger report prints).
func ledgerRows(filter string) string {
	const cols = `cluster, hour, project, user_name, namespace, class, model, profile, site,
    allocated_milli_gpu_seconds, device_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds,
    energy_millijoules, fpga_seconds`
	return `(SELECT ` + cols + `
  FROM ledger_hourly WHERE ` + filter + ` AND ` + ledgerRange + `
  UNION ALL
  SELECT ` + cols + `
  FROM ledger_adjustments WHERE ` + filter + ` AND ` + ledgerRange + `) AS r`
}

// SQL filters of the dashboards' variables.
const (
	clusterFilter = `cluster IN (${cluster:sqlstring})`
	projectFilter = clusterFilter + ` AND project IN (${project:sqlstring})`
	userFilter    = projectFilter + ` AND user_name IN (${user:sqlstring})`
)

// Conversions of the ledger's integers for display.
const (
	gpuHours    = ` / 3600000.0`    // milli-GPU-seconds to GPU-hours
	kWh         = ` / 3600000000.0` // millijoules to kWh
	secondHours = ` / 3600.0`       // seconds to hours
)

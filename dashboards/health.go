package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// selfHealth: is gpuledger itself working? Exporters and their collectors,
// attribution, device sources, the aggregator and the ledger, the API.
func selfHealth() board {
	return board{
		description: "gpuledger's own health: exporters and collectors, attribution sources, DCGM/NVML/FPGA sources, the aggregator's lag and ledger writes, the ledger's months, the accounting API.",
		tags:        []string{"operations"},
		time:        "24h",
		vars: []cog.Builder[dashboard.VariableModel]{
			prometheusVar(), ledgerDatasourceVar(), promClusterVar(),
		},
		rows: []row{
			{id: 1, title: "Now", panels: []cog.Builder[dashboard.Panel]{
				exportersUpStat(), exportersDownStat(), collectorsFailingStat(), attributionDownStat(), ledgerLagStat(), writeErrorsStat(),
			}},
			{id: 10, title: "Exporters", panels: []cog.Builder[dashboard.Panel]{
				exporterTargetsPanel(), collectorSuccessPanel(), collectorDurationPanel(), exporterClockPanel(),
			}},
			{id: 20, title: "Attribution and device sources", panels: []cog.Builder[dashboard.Panel]{
				attributionAvailablePanel(), unresolvedDevicesPanel(), dcgmUpPanel(), dcgmAgePanel(), dcgmDroppedPanel(), sourceErrorsPanel(),
			}},
			{id: 30, title: "Aggregator and ledger", panels: []cog.Builder[dashboard.Panel]{
				ledgerLagPanel(), ledgerWriteErrorsPanel(), windowsAppliedPanel(), aggregatorScrapesPanel(), aggregatorUpPanel(),
				watermarksTable(), ledgerMonthsTable(),
			}},
			{id: 40, title: "Accounting API", panels: []cog.Builder[dashboard.Panel]{
				apiRequestsPanel(), apiLatencyPanel(), apiAuthFailuresPanel(),
			}},
		},
	}
}

// Scrape jobs, matched as the alert rules match them: the job names (or
// ServiceMonitor services) contain gpuledger-exporter / gpuledger-aggregator.
const (
	exporterJob   = `job=~".*gpuledger-exporter.*"`
	aggregatorJob = `job=~".*gpuledger-aggregator.*"`
)

func exportersUpStat() cog.Builder[dashboard.Panel] {
	return statPanel(2, "Exporters up",
		"Exporter targets Prometheus scraped successfully at its last scrape (node exporters and the cluster-mode exporter).",
		units.Short).
		NoValue("0").
		WithTarget(promInstant(`sum(`+sel("up", exporterJob)+`)`, "up"))
}

func exportersDownStat() cog.Builder[dashboard.Panel] {
	return statPanel(3, "Exporters down",
		"Exporter targets whose last scrape failed. GPULedgerExporterDown fires after five minutes; the aggregator keeps the allocations it saw open meanwhile.",
		units.Short).
		NoValue("0").
		Thresholds(warnAbove(1, 1)).
		WithTarget(promInstant(`count(`+sel("up", exporterJob)+` == 0)`, "down"))
}

func collectorsFailingStat() cog.Builder[dashboard.Panel] {
	return statPanel(4, "Collectors failing",
		"Collectors (device, MIG, FPGA, allocation sources) that failed at their exporter's last scrape, over all nodes. A failing source fails soft: the exporter keeps serving the others.",
		units.Short).
		NoValue("0").
		Thresholds(warnAbove(1, 1)).
		WithTarget(promInstant(`count(`+sel("gpuledger_exporter_collector_success")+` == 0)`, "failing"))
}

func attributionDownStat() cog.Builder[dashboard.Panel] {
	return statPanel(5, "Attribution sources down",
		"Nodes × sources (kubelet pod-resources, API server informers) that did not answer at the allocation collector's last update. New allocations wait for them; known ones are kept.",
		units.Short).
		NoValue("0").
		Thresholds(warnAbove(1, 1)).
		WithTarget(promInstant(`count(`+sel("gpuledger_attribution_available")+` == 0)`, "down"))
}

func ledgerLagStat() cog.Builder[dashboard.Panel] {
	return statPanel(6, "Ledger lag",
		"How far the aggregator's watermark (the end of the last window written to the ledger) is behind now. GPULedgerAggregatorLagging fires above 30 minutes.",
		units.Seconds).
		Thresholds(warnAbove(900, 1800)).
		WithTarget(promInstant(`time() - max(`+sel("gpuledger_aggregator_watermark_seconds")+`)`, "lag"))
}

func writeErrorsStat() cog.Builder[dashboard.Panel] {
	return statPanel(7, "Ledger write errors",
		"Failed attempts to write a window to the ledger over the time range (each is retried; the window is written once the database answers).",
		units.Short).
		NoValue("0").
		Thresholds(warnAbove(1, 1)).
		WithTarget(promInstant(`sum(increase(`+sel("gpuledger_aggregator_ledger_write_errors_total")+`[$__range]))`, "errors"))
}

func exporterTargetsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(11, "Exporter targets up",
		"Whether each exporter target answered Prometheus's scrape (1) or not (0).",
		units.Short).
		Min(0).Max(1).
		WithTarget(promQuery(sel("up", exporterJob), "{{instance}}"))
}

func collectorSuccessPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(12, "Collector success",
		"For each collector, the share of exporters where it succeeded at the last scrape.",
		units.PercentUnit).
		Min(0).Max(1).
		Thresholds(warnBelow(0.9, 1)).ThresholdsStyle(thresholdLines()).
		WithTarget(promQuery(`avg by (collector) (`+sel("gpuledger_exporter_collector_success")+`)`, "{{collector}}"))
}

func collectorDurationPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(13, "Collector duration",
		"The slowest exporter's time for each collector at the last scrape. A collector must answer from memory or local files: a rising duration is a source that blocks.",
		units.Seconds).
		Min(0).
		WithTarget(promQuery(`max by (collector) (`+sel("gpuledger_exporter_collector_duration_seconds")+`)`, "{{collector}}"))
}

func exporterClockPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(14, "Exporter clock offset",
		"Each exporter's clock minus the scrape's timestamp. The aggregator times allocations by the exporters' clocks: an offset of more than a few seconds is a node whose clock is off.",
		units.Seconds).
		WithTarget(promQuery(sel("gpuledger_exporter_time_seconds")+` - timestamp(`+sel("gpuledger_exporter_time_seconds")+`)`, "{{instance}}"))
}

func attributionAvailablePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(21, "Attribution sources answering",
		"For each attribution source (kubelet pod-resources API, API server pod informers), the share of nodes where it answered at the allocation collector's last update.",
		units.PercentUnit).
		Min(0).Max(1).
		WithTarget(promQuery(`avg by (source) (`+sel("gpuledger_attribution_available")+`)`, "{{source}}"))
}

func unresolvedDevicesPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(22, "Unresolved device assignments",
		"Device assignments of the kubelet's last answer that could not be fully resolved (pod unknown to the API server, malformed device ID, device unknown to the inventory), by node.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (node) (`+sel("gpuledger_attribution_unresolved_devices")+`)`, "{{node}}"))
}

func dcgmUpPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(23, "DCGM exporter reachable",
		"Whether each node's last poll of its dcgm-exporter succeeded (1) or failed (0).",
		units.Short).
		Min(0).Max(1).
		WithTarget(promQuery(sel("gpuledger_dcgm_up"), "{{node}}"))
}

func dcgmAgePanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(24, "DCGM data age",
		"Time since each node's last successful dcgm-exporter poll began. The DCGM activity series disappear once it exceeds two poll intervals.",
		units.Seconds).
		Min(0).
		WithTarget(promQuery(`time() - `+sel("gpuledger_dcgm_last_success_timestamp_seconds"), "{{node}}"))
}

func dcgmDroppedPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(25, "DCGM samples dropped",
		"dcgm-exporter samples dropped per scrape interval, by reason (NaN, out of range, unknown MIG instance…).",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (reason) (increase(`+sel("gpuledger_dcgm_samples_dropped_total")+`[$__rate_interval]))`, "{{reason}}"))
}

func sourceErrorsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(26, "NVML and FPGA source errors",
		"NVML calls that failed and FPGA values that could not be read, per scrape interval, by node.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum by (node) (increase(`+sel("gpuledger_gpu_nvml_errors_total")+`[$__rate_interval]))`, "{{node}} NVML")).
		WithTarget(promQuery(`sum by (node) (increase(`+sel("gpuledger_fpga_read_errors_total")+`[$__rate_interval]))`, "{{node}} FPGA"))
}

func ledgerLagPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(31, "Ledger lag",
		"Behind now: now minus the aggregator's watermark. Behind the latest scrape: the latest exporter clock the aggregator scraped minus the watermark, its configured lag plus a window when healthy.",
		units.Seconds).
		Min(0).
		Thresholds(warnAbove(900, 1800)).ThresholdsStyle(thresholdLines()).
		WithTarget(promQuery(`time() - max(`+sel("gpuledger_aggregator_watermark_seconds")+`)`, "behind now")).
		WithTarget(promQuery(`max(`+sel("gpuledger_aggregator_last_scrape_time_seconds")+`) - max(`+sel("gpuledger_aggregator_watermark_seconds")+`)`, "behind the latest scrape"))
}

func ledgerWriteErrorsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(32, "Ledger write errors",
		"Failed attempts to write a window to the ledger, per scrape interval. GPULedgerLedgerWritesFailing fires on any in ten minutes.",
		units.Short).
		Min(0).
		WithTarget(promQuery(`sum(increase(`+sel("gpuledger_aggregator_ledger_write_errors_total")+`[$__rate_interval]))`, "errors"))
}

func windowsAppliedPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(33, "Windows written",
		"Windows the aggregator wrote to the ledger, per hour (12 with the default 5-minute window; more while it catches up).",
		"suffix: windows/h").
		Min(0).
		WithTarget(promQuery(`sum(rate(`+sel("gpuledger_aggregator_windows_applied_total")+`[$__rate_interval])) * 3600`, "windows"))
}

func aggregatorScrapesPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(34, "Aggregator scrapes",
		"The aggregator's scrapes of the exporters per second, by result (ok or failed).",
		units.OpsPerSecond).
		Min(0).
		WithTarget(promQuery(`sum by (result) (rate(`+sel("gpuledger_aggregator_scrapes_total")+`[$__rate_interval]))`, "{{result}}"))
}

func aggregatorUpPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(35, "Aggregator up",
		"Whether Prometheus could scrape the aggregator (1) or not (0). GPULedgerAggregatorDown fires after five minutes.",
		units.Short).
		Min(0).Max(1).
		WithTarget(promQuery(sel("up", aggregatorJob), "{{instance}}"))
}

func watermarksTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(36, "Ledger watermarks",
		"Every cluster of the ledger with its watermark (the ledger is complete up to it) and the watermark's age, read from the database: it works when the aggregator's metrics do not.").
		Span(halfWidth).Height(6).
		WithTarget(sqlTable(`SELECT cluster, to_timestamp(watermark_unix) AS watermark,
  extract(epoch FROM now()) - watermark_unix AS age, updated_at
FROM watermarks
ORDER BY cluster`)).
		OverrideByName("age", column(units.Seconds, ""))
}

func ledgerMonthsTable() cog.Builder[dashboard.Panel] {
	return ledgerTablePanel(37, "Ledger months",
		"The last 24 months of the ledger per cluster: open or closed (gpuledger ledger close), when it was closed, and how many corrections were journaled for it since.").
		Span(halfWidth).Height(6).
		WithTarget(sqlTable(`SELECT m.cluster, m.month,
  CASE WHEN c.month IS NULL THEN 'open' ELSE 'closed' END AS status, c.closed_at,
  (SELECT count(*) FROM ledger_adjustments a WHERE a.cluster = m.cluster AND a.month = m.month) AS adjustments
FROM (SELECT DISTINCT cluster, month FROM ledger_monthly) AS m
  LEFT JOIN closed_months c ON c.cluster = m.cluster AND c.month = m.month
ORDER BY m.month DESC, m.cluster
LIMIT 24`)).
		OverrideByName("month", column("time:YYYY-MM", "")).
		OverrideByName("adjustments", column(units.Short, ""))
}

func apiRequestsPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(41, "API requests by status",
		"Requests the accounting API answered per second, by status code (aborted: a streamed answer cut short).",
		units.RequestsPerSecond).
		Min(0).
		WithTarget(promQuery(`sum by (code) (rate(`+sel("gpuledger_api_requests_total")+`[$__rate_interval]))`, "{{code}}"))
}

func apiLatencyPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(42, "API latency (95th percentile)",
		"The time within which the accounting API answered 95 % of requests, by route, streaming included.",
		units.Seconds).
		Min(0).
		WithTarget(promQuery(`histogram_quantile(0.95, sum by (le, route) (rate(`+sel("gpuledger_api_request_duration_seconds_bucket")+`[$__rate_interval])))`, "{{route}}"))
}

func apiAuthFailuresPanel() cog.Builder[dashboard.Panel] {
	return timeseriesPanel(43, "API authentication failures",
		"Requests refused by authentication per scrape interval, by reason (no_token, invalid_token, keys_unavailable).",
		units.Short).
		Span(fullWidth).Min(0).
		WithTarget(promQuery(`sum by (reason) (increase(`+sel("gpuledger_api_auth_failures_total")+`[$__rate_interval]))`, "{{reason}}"))
}

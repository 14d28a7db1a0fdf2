package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const smallPath = "../../testdata/scenarios/small.yaml"

func readSmall(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(smallPath)
	if err != nil {
		t.Fatalf("read %s: %v", smallPath, err)
	}
	return string(b)
}

// edit replaces the one occurrence of old in text.
func edit(t *testing.T, text, old, repl string) string {
	t.Helper()
	if n := strings.Count(text, old); n != 1 {
		t.Fatalf("edit: %q occurs %d times in small.yaml, want 1", old, n)
	}
	return strings.Replace(text, old, repl, 1)
}

// lineOfText returns the 1-based line of the nth (from 1) occurrence of s.
func lineOfText(t *testing.T, text, s string, nth int) int {
	t.Helper()
	off := 0
	for i := 0; i < nth; i++ {
		j := strings.Index(text[off:], s)
		if j < 0 {
			t.Fatalf("marker %q (occurrence %d) not in the edited text", s, nth)
		}
		off += j
		if i < nth-1 {
			off += len(s)
		}
	}
	return strings.Count(text[:off], "\n") + 1
}

func TestParseSmall(t *testing.T) {
	s, err := Load(smallPath)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s.Cluster != "ai-infn-small" || len(s.Nodes) != 4 || len(s.Pods) != 9 || len(s.Faults) != 4 {
		t.Errorf("got cluster %q, %d nodes, %d pods, %d faults; want ai-infn-small, 4, 9, 4",
			s.Cluster, len(s.Nodes), len(s.Pods), len(s.Faults))
	}
	if s.ScrapeInterval.D() != 15*time.Second || s.Retention() != time.Hour {
		t.Errorf("scrape interval %v, retention %v; want 15s, 1h", s.ScrapeInterval.D(), s.Retention())
	}
	if want := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC); !s.Start.Equal(want) {
		t.Errorf("start %v, want %v", s.Start, want)
	}
	if s.Pods[0].End != nil || s.Pods[1].End == nil {
		t.Errorf("open/closed pods parsed wrong: %v, %v", s.Pods[0].End, s.Pods[1].End)
	}
	if n, ok := s.Node("vk-cnaf"); !ok || !n.Virtual || n.Site != "INFN-CNAF" {
		t.Errorf("Node(vk-cnaf) = %+v, %v", n, ok)
	}
	if _, ok := s.Node("nope"); ok {
		t.Error("Node(nope) found")
	}
}

// fieldCase is one invalid edit of small.yaml and the error it must give.
type fieldCase struct {
	name      string
	old, repl string // the edit
	at        string // text on the expected line (default: the first line of repl)
	nth       int    // occurrence of at in the edited text (default 1)
	field     string
	msg       string
}

func TestParseFieldErrors(t *testing.T) {
	small := readSmall(t)
	const (
		a100GPU1 = "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
		t4GPU    = "GPU-2b3c4d5e-6f70-8192-a3b4-c5d6e7f80912"
		mig03    = "{resource: nvidia.com/mig-1g.10gb, id: MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03}"
		offload  = "    requests: {nvidia.com/gpu: 2}"
		erinDev  = `{resource: nvidia.com/gpu.shared, id: "` + t4GPU + `::0"}`
		frankDev = `{resource: nvidia.com/gpu.shared, id: "` + t4GPU + `::1"}`
	)
	cases := []fieldCase{
		// Decoding: unknown fields, types, durations, duplicate keys.
		{name: "unknown top-level field", old: "cluster: ai-infn-small\n", repl: "cluster: ai-infn-small\nowner: infn\n",
			at: "owner: infn", field: "owner", msg: `unknown field "owner"`},
		{name: "unknown pod field", old: "    profile: {kind: bursty, mean: 0.15}\n",
			repl: "    profile: {kind: bursty, mean: 0.15}\n    gpus_wanted: 2\n", at: "gpus_wanted",
			field: "pods[0].gpus_wanted", msg: `unknown field "gpus_wanted"`},
		{name: "unknown field in a flow mapping", old: "gi: 2, ci: 0,", repl: "gi: 2, ci: 0, slices: 3,",
			field: "nodes[0].gpus[0].mig[0].slices", msg: `unknown field "slices"`},
		{name: "unknown profile field", old: "{kind: idle}\n  # A 3g", repl: "{kind: idle, mean: 0, color: red}\n  # A 3g",
			field: "pods[2].profile.color", msg: `unknown field "color"`},
		{name: "integer expected", old: "gi: 9,", repl: "gi: nine,",
			field: "nodes[0].gpus[0].mig[2].gi", msg: `want an integer, got !!str "nine"`},
		{name: "long value cut by the decoder", old: "gi: 9,", repl: "gi: ninety-nine,",
			field: "nodes[0].gpus[0].mig[2].gi", msg: "want an integer"},
		{name: "bool expected", old: "    virtual: true", repl: "    virtual: maybe",
			field: "nodes[3].virtual", msg: "want true or false"},
		{name: "bad time", old: "    start: 2026-11-02T09:00:00Z\n    end: 2026-11-02T12:30:00Z",
			repl:  "    start: 2026-11-02T25:00:00Z\n    end: 2026-11-02T12:30:00Z",
			field: "pods[3].start", msg: `bad time "2026-11-02T25:00:00Z"`},
		{name: "a number for a time", old: "    start: 2026-11-02T10:00:00Z\n    end: 2026-11-02T12:00:00Z",
			repl: "    start: 1762077600\n    end: 2026-11-02T12:00:00Z", field: "pods[8].start", msg: `bad time "1762077600"`},
		{name: "mapping expected", old: "labels: {nvidia.com/mig.config: all-balanced}", repl: "labels: [a, b]",
			field: "nodes[0].labels", msg: "want a mapping, got a seq"},
		{name: "list expected", old: "    fpgas:\n      - {pci:", repl: "    fpgas: {pci:",
			field: "nodes[2].fpgas", msg: "want a list, got a map"},
		{name: "quota not an integer", old: "quota: {nvidia.com/gpu: 4}", repl: "quota: {nvidia.com/gpu: four}",
			field: "cluster_queues[0].quota.nvidia.com/gpu", msg: "want an integer"},
		{name: "bad duration", old: "scrape_interval: 15s", repl: "scrape_interval: 15 seconds",
			field: "scrape_interval", msg: `bad duration "15 seconds"`},
		{name: "bad fault duration", old: "duration: 5m}", repl: "duration: five}",
			field: "faults[1].duration", msg: `bad duration "five"`},
		{name: "duration as a list", old: "ended_retention: 1h", repl: "ended_retention: [1h]",
			field: "ended_retention", msg: "bad duration: want a string"},
		{name: "duplicate key", old: "cluster: ai-infn-small\n", repl: "cluster: ai-infn-small\ncluster: other\n",
			at: "cluster: other", field: "cluster", msg: `key "cluster" already defined at line`},

		// Missing fields.
		{name: "missing cluster", old: "cluster: ai-infn-small\n", repl: "", at: "start: 2026-11-02T08:00:00Z",
			field: "cluster", msg: "missing cluster name"},
		{name: "missing scrape interval", old: "scrape_interval: 15s\n", repl: "", at: "cluster: ai-infn-small",
			field: "scrape_interval", msg: "missing or non-positive scrape interval"},
		{name: "missing pod namespace", old: "    namespace: lhcb-batch\n", repl: "", at: "  - name: lhcb-reco-1",
			field: "pods[4].namespace", msg: "missing namespace"},
		{name: "missing pod uid", old: "    uid: 0b6c3f4e-1a2b-4c3d-8e9f-000000000008\n", repl: "", at: "  - name: fpga-hls-3",
			field: "pods[7].uid", msg: "missing pod UID"},
		{name: "missing pod node", old: "    node: vk-cnaf\n", repl: "", at: "  - name: offload-sim-42",
			field: "pods[8].node", msg: "missing node"},
		{name: "missing pod start", old: "    start: 2026-11-02T08:30:00Z\n", repl: "", at: "  - name: fpga-hls-3",
			field: "pods[7].start", msg: "missing start time"},
		{name: "missing GPU model", old: "        model: NVIDIA A30\n", repl: "", at: "      - index: 0", nth: 2,
			field: "nodes[1].gpus[0].model", msg: "missing GPU model"},

		// Times.
		{name: "end before start", old: "end: 2026-11-02T14:00:00Z", repl: "end: 2026-11-02T07:00:00Z",
			field: "end", msg: "is not after start"},
		{name: "fractional scenario start", old: "\nstart: 2026-11-02T08:00:00Z\n", repl: "\nstart: 2026-11-02T08:00:00.5Z\n",
			field: "start", msg: "not a whole second"},
		{name: "pod ends before it starts", old: "    end: 2026-11-02T09:30:00Z", repl: "    end: 2026-11-02T08:00:00Z",
			field: "pods[7].end", msg: "is not after start"},
		{name: "fractional pod end", old: "    end: 2026-11-02T09:30:00Z", repl: "    end: 2026-11-02T09:30:00.25Z",
			field: "pods[7].end", msg: "not a whole second"},

		// Duplicates.
		{name: "duplicate GPU UUID", old: "uuid: GPU-6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", repl: "uuid: " + a100GPU1,
			nth: 2, field: "nodes[1].gpus[0].uuid", msg: `already used by nodes[0].gpus[1]`},
		{name: "duplicate MIG UUID", old: "uuid: MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d04}", repl: "uuid: MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03}",
			nth: 2, field: "nodes[0].gpus[0].mig[3].uuid", msg: "already used by nodes[0].gpus[0].mig[2]"},
		{name: "duplicate MIG instance", old: "gi: 10, ci: 0", repl: "gi: 9, ci: 0", nth: 2,
			field: "nodes[0].gpus[0].mig[3].gi", msg: "duplicate MIG device gi 9, ci 0"},
		{name: "duplicate pod UID", old: "uid: 0b6c3f4e-1a2b-4c3d-8e9f-000000000002", repl: "uid: 0b6c3f4e-1a2b-4c3d-8e9f-000000000001",
			nth: 2, field: "pods[1].uid", msg: "already used by pods[0]"},
		{name: "duplicate pod", old: "  - name: cms-train-8a01", repl: "  - name: cms-train-7f9c", nth: 2,
			field: "pods[2].name", msg: `duplicate pod "cms-ml/cms-train-7f9c"`},
		{name: "duplicate node", old: "  - name: t4-01", repl: "  - name: a30-01", nth: 2,
			field: "nodes[2].name", msg: `duplicate node "a30-01"`},
		{name: "duplicate GPU index", old: "      - index: 1", repl: "      - index: 0", nth: 2,
			field: "nodes[0].gpus[1].index", msg: "duplicate GPU index 0"},
		{name: "duplicate namespace", old: "  - name: ml-infn\n", repl: "  - name: hub\n", at: "  - name: hub", nth: 2,
			field: "namespaces[3].name", msg: `duplicate namespace "hub"`},

		// MIG layouts.
		{name: "MIG compute over capacity",
			old:  "uuid: MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d04}\n",
			repl: "uuid: MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d04}\n          - {profile: 1g.10gb, gi: 11, ci: 0, uuid: MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d05}\n",
			at:   "        mig:", field: "nodes[0].gpus[0].mig", msg: "MIG layout uses 8 compute slices; A100-80GB has 7"},
		{name: "MIG memory over capacity", old: "1g.10gb, gi: 10", repl: "1g.20gb, gi: 10", at: "        mig:",
			field: "nodes[0].gpus[0].mig", msg: "MIG layout uses 9 memory slices; A100-80GB has 8"},
		{name: "MIG profile invalid for the model", old: "{profile: 2g.12gb, gi: 1", repl: "{profile: 7g.80gb, gi: 1",
			field: "nodes[1].gpus[0].mig[0].profile", msg: "A30 has 4 compute slices"},
		{name: "MIG profile memory too large", old: "{profile: 1g.6gb, gi: 5", repl: "{profile: 1g.60gb, gi: 5",
			field: "nodes[1].gpus[0].mig[1].profile", msg: "unknown MIG profile"},
		{name: "MIG on a T4", old: "        replicas: 4\n",
			repl: "        mig:\n          - {profile: 1g.10gb, gi: 1, ci: 0, uuid: MIG-11111111-2222-3333-4444-555555555555}\n",
			at:   "        mig:", nth: 3, field: "nodes[2].gpus[0].mig", msg: `model "Tesla T4" does not support MIG`},
		{name: "MIG and replicas", old: "        model: NVIDIA A30\n", repl: "        model: NVIDIA A30\n        replicas: 2\n",
			at: "        replicas: 2", field: "nodes[1].gpus[0].replicas", msg: "time-slicing of MIG instances is not supported"},
		{name: "MIG UUID form", old: "uuid: MIG-0f0e0d0c-0b0a-4909-8807-060504030203}", repl: "uuid: GPU-0f0e0d0c-0b0a-4909-8807-060504030203}",
			field: "nodes[1].gpus[0].mig[2].uuid", msg: "must start with MIG-"},

		// Devices against hardware.
		{name: "device not on the pod's node", old: "    node: a100-mig-01\n    devices:\n      - " + mig03,
			repl: "    node: a30-01\n    devices:\n      - " + mig03, at: mig03,
			field: "pods[0].devices[0].id", msg: "no MIG device \"MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03\" on node a30-01"},
		{name: "GPU not on the pod's node", old: "    node: a100-mig-01\n    devices:\n      - {resource: nvidia.com/gpu, id: " + a100GPU1 + "}\n    start: 2026-11-02T08:20:00Z",
			repl: "    node: t4-01\n    devices:\n      - {resource: nvidia.com/gpu, id: " + a100GPU1 + "}\n    start: 2026-11-02T08:20:00Z",
			at:   "      - {resource: nvidia.com/gpu, id: " + a100GPU1, field: "pods[1].devices[0].id", msg: "no GPU \"" + a100GPU1 + "\" on node t4-01"},
		{name: "FPGA not on the node", old: `id: "0000:3b:00.1"`, repl: `id: "0000:af:00.1"`,
			field: "pods[7].devices[0].id", msg: `no FPGA "0000:af:00.1" on node t4-01`},
		{name: "resource/profile mismatch", old: mig03, repl: strings.Replace(mig03, "mig-1g.10gb", "mig-2g.20gb", 1),
			field: "pods[0].devices[0].resource", msg: "has profile 1g.10gb, not 2g.20gb"},
		{name: "not an accelerator", old: mig03, repl: strings.Replace(mig03, "nvidia.com/mig-1g.10gb", "example.com/tpu", 1),
			field: "pods[0].devices[0].resource", msg: `resource "example.com/tpu" is not an accelerator`},
		{name: "legacy MIG ID with a wrong instance", old: "id: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0}",
			repl: "id: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/4/0}", field: "pods[3].devices[0].id",
			msg: `no MIG device "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/4/0" on node a100-mig-01`},
		{name: "whole GPU that is MIG-enabled", old: mig03, repl: "{resource: nvidia.com/gpu, id: GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f}",
			field: "pods[0].devices[0].id", msg: "is MIG-enabled"},
		{name: "milli on a MIG device", old: mig03, repl: strings.Replace(mig03, "}", ", milli: 500}", 1),
			field: "pods[0].devices[0].milli", msg: "milli is only for shared GPUs"},
		{name: "replica out of range", old: t4GPU + `::1"`, repl: t4GPU + `::4"`,
			field: "pods[6].devices[0].id", msg: "replica 4 of GPU " + t4GPU + " does not exist (4 replicas: 0..3)"},
		{name: "replica of a GPU that is not time-sliced", old: "      - {resource: nvidia.com/gpu, id: " + a100GPU1 + "}\n    start: 2026-11-02T08:20:00Z",
			repl:  "      - {resource: nvidia.com/gpu.shared, id: \"" + a100GPU1 + "::0\", milli: 500}\n    start: 2026-11-02T08:20:00Z",
			field: "pods[1].devices[0].id", msg: "is not time-sliced"},
		{name: "time-sliced GPU held whole", old: frankDev, repl: "{resource: nvidia.com/gpu, id: " + t4GPU + "}",
			field: "pods[6].devices[0].id", msg: "is time-sliced (4 replicas)"},
		{name: "shared fraction out of range", old: erinDev, repl: strings.Replace(erinDev, "}", ", milli: 1500}", 1),
			field: "pods[5].devices[0].milli", msg: "out of range (1..1000)"},
		{name: "shared GPU without replicas or milli", old: "      - {resource: nvidia.com/gpu, id: " + a100GPU1 + "}\n    start: 2026-11-02T08:20:00Z",
			repl:  "      - {resource: nvidia.com/gpu.shared, id: " + a100GPU1 + "}\n    start: 2026-11-02T08:20:00Z",
			field: "pods[1].devices[0].milli", msg: "needs milli or a GPU with replicas"},
		{name: "pod without devices", old: "    devices:\n      - {resource: amd.com/xilinx_u55c_gen3x16_xdma_base_3-0, id: \"0000:3b:00.1\"}\n",
			repl: "    devices: []\n", field: "pods[7].devices", msg: "pod holds no device"},
		{name: "unknown node", old: "    node: t4-01\n    devices:\n      - {resource: amd.com", repl: "    node: x\n    devices:\n      - {resource: amd.com",
			field: "pods[7].node", msg: `unknown node "x"`},

		// Over-commitment.
		{name: "two pods on one whole GPU", old: "    start: 2026-11-02T11:10:00Z", repl: "    start: 2026-11-02T11:00:00Z",
			at: "      - {resource: nvidia.com/gpu, id: " + a100GPU1, nth: 2, field: "pods[2].devices[0]",
			msg: "device " + a100GPU1 + " is over-committed at 2026-11-02T11:00:00Z (2000 milli held): pod cms-ml/cms-train-8a01 overlaps cms-ml/cms-train-7f9c"},
		{name: "shared fractions over one GPU", old: erinDev, repl: strings.Replace(erinDev, "}", ", milli: 900}", 1),
			at: frankDev, field: "pods[6].devices[0]", msg: "is over-committed at 2026-11-02T10:00:00Z (1150 milli held)"},
		{name: "one replica held twice", old: frankDev, repl: strings.Replace(frankDev, "::1", "::0", 1),
			at: strings.Replace(frankDev, "::1", "::0", 1), nth: 2, field: "pods[6].devices[0]",
			msg: "device " + t4GPU + "::0 is over-committed"},
		{name: "one MIG device in both ID forms", old: "    node: a30-01\n    devices:\n      - {resource: nvidia.com/mig-1g.6gb, id: MIG-0f0e0d0c-0b0a-4909-8807-060504030202}",
			repl: "    node: a30-01\n    devices:\n      - {resource: nvidia.com/mig-1g.6gb, id: MIG-GPU-6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/6/0}\n      - {resource: nvidia.com/mig-1g.6gb, id: MIG-0f0e0d0c-0b0a-4909-8807-060504030203}",
			at:   "id: MIG-0f0e0d0c-0b0a-4909-8807-060504030203}", nth: 2, field: "pods[4].devices[1]", msg: "is over-committed"},

		// Virtual nodes.
		{name: "virtual node without a site", old: "    site: INFN-CNAF\n", repl: "", at: "  - name: vk-cnaf",
			field: "nodes[3].site", msg: `virtual node "vk-cnaf" needs a site`},
		{name: "virtual node with GPUs", old: "    gpu_model: NVIDIA A100-PCIE-40GB\n",
			repl:  "    gpus: [{index: 0, uuid: GPU-99999999-8888-7777-6666-555555555555, model: NVIDIA A100-PCIE-40GB}]\n",
			field: "nodes[3].gpus", msg: "cannot have local GPUs"},
		{name: "offloaded pod with devices", old: offload, repl: "    devices: [{resource: nvidia.com/gpu, id: GPU-x}]",
			field: "pods[8].devices", msg: "lists devices; use requests"},
		{name: "offloaded MIG request", old: offload, repl: "    requests: {nvidia.com/mig-1g.10gb: 2}",
			field: "pods[8].requests", msg: `resource "nvidia.com/mig-1g.10gb" cannot be offloaded`},
		{name: "offloaded FPGA request", old: offload, repl: "    requests: {amd.com/xilinx_u55c: 1}",
			field: "pods[8].requests", msg: "cannot be offloaded"},
		{name: "zero request", old: offload, repl: "    requests: {nvidia.com/gpu: 0}",
			field: "pods[8].requests", msg: "request 0 for nvidia.com/gpu is not positive"},
		{name: "huge request", old: offload, repl: "    requests: {nvidia.com/gpu: 9223372036854775807}",
			field: "pods[8].requests", msg: "is more than 100000"},
		{name: "requests on a real node", old: "    end: 2026-11-02T09:30:00Z\n", repl: "    end: 2026-11-02T09:30:00Z\n    requests: {nvidia.com/gpu: 1}\n",
			at: "    requests: {nvidia.com/gpu: 1}", field: "pods[7].requests", msg: "requests are only for pods on virtual nodes"},

		// Faults.
		{name: "unknown fault kind", old: "kind: aggregator_crash", repl: "kind: meteor",
			field: "faults[2].kind", msg: `unknown fault kind "meteor"`},
		{name: "fault on an unknown node", old: "node: t4-01, at:", repl: "node: t5-01, at:",
			field: "faults[1].node", msg: `unknown node "t5-01"`},
		{name: "fault on a virtual node", old: "node: t4-01, at:", repl: "node: vk-cnaf, at:",
			field: "faults[1].node", msg: "runs no node exporter"},
		{name: "cluster fault scoped to a node", old: "{kind: database_outage, at:", repl: "{kind: database_outage, node: t4-01, at:",
			field: "faults[3].node", msg: "is not scoped to a node"},
		{name: "fault outside the scenario", old: "at: 2026-11-02T12:00:07Z", repl: "at: 2026-11-02T14:00:00Z",
			field: "faults[2].at", msg: "is outside the scenario"},
		{name: "fault without a duration", old: "at: 2026-11-02T11:00:00Z, duration: 5m}", repl: "at: 2026-11-02T11:00:00Z}",
			field: "faults[1].duration", msg: "a scrape_gap fault needs a duration"},
		{name: "fault without a time", old: "{kind: aggregator_crash, at: 2026-11-02T12:00:07Z}", repl: "{kind: aggregator_crash}",
			field: "faults[2].at", msg: "missing fault time"},

		// Other references.
		{name: "queue to an unknown cluster queue", old: "cluster_queue: cms-gpu}", repl: "cluster_queue: atlas-gpu}",
			field: "queues[0].cluster_queue", msg: `unknown cluster queue "atlas-gpu"`},
		{name: "negative quota", old: "quota: {nvidia.com/gpu: 4}", repl: "quota: {nvidia.com/gpu: -4}",
			field: "cluster_queues[0].quota", msg: "negative quota -4 for nvidia.com/gpu"},
		{name: "bad PCI address", old: `{pci: "0000:3b:00.1"`, repl: `{pci: "3b:00.1"`,
			field: "nodes[2].fpgas[0].pci", msg: "is not of the form 0000:3b:00.1"},
		{name: "unknown activity profile", old: "{kind: bursty, mean: 0.15}", repl: "{kind: spiky, mean: 0.15}",
			field: "pods[0].profile.kind", msg: `unknown profile kind "spiky"`},
		{name: "activity mean out of range", old: "{kind: bursty, mean: 0.15}", repl: "{kind: bursty, mean: 1.5}",
			field: "pods[0].profile.mean", msg: "mean activity 1.5 outside [0, 1]"},
		{name: "activity mean not a number", old: "{kind: bursty, mean: 0.15}", repl: "{kind: bursty, mean: .nan}",
			field: "pods[0].profile.mean", msg: "mean activity NaN outside [0, 1]"},
		{name: "replicas out of range", old: "        replicas: 4\n", repl: "        replicas: 5000\n",
			field: "nodes[2].gpus[0].replicas", msg: "replicas 5000 out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := edit(t, small, c.old, c.repl)
			at, nth := c.at, c.nth
			if at == "" {
				at, _, _ = strings.Cut(strings.TrimLeft(c.repl, "\n"), "\n")
			}
			if nth == 0 {
				nth = 1
			}
			line := lineOfText(t, text, at, nth)
			_, err := Parse("small.yaml", []byte(text))
			fe := findFieldError(t, err, c.field)
			if fe.File != "small.yaml" || fe.Line != line || !strings.Contains(fe.Msg, c.msg) {
				t.Errorf("got %q\nwant small.yaml:%d: %s: ...%s...", fe.Error(), line, c.field, c.msg)
			}
			if want := fmt.Sprintf("small.yaml:%d: %s: ", line, c.field); !strings.Contains(err.Error(), want) {
				t.Errorf("error text lacks %q:\n%v", want, err)
			}
		})
	}
}

// findFieldError returns the problem of err about field.
func findFieldError(t *testing.T, err error, field string) *FieldError {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	for _, fe := range ve.Errs {
		if fe.Field == field {
			return fe
		}
	}
	t.Fatalf("no problem about %q in:\n%v", field, err)
	return nil
}

func TestParseDocumentErrors(t *testing.T) {
	small := readSmall(t)
	smallLines := strings.Count(small, "\n")
	cases := []struct {
		name string
		text string
		line int
		msg  string
	}{
		{"empty", "", 0, "empty scenario"},
		{"only comments", "# nothing here\n", 0, "empty scenario"},
		// The second document is named by its "---" line.
		{"two documents", small + "---\ncluster: other\n", smallLines + 1, "more than one YAML document"},
		{"a malformed second document", small + "---\ncluster: [other\n", smallLines + 1, "more than one YAML document"},
		{"syntax error", "cluster: a\n  start: b\n", 2, "mapping values are not allowed"},
		{"tab indentation", "cluster: a\nnodes:\n\t- name: x\n", 3, "found character that cannot start any token"},
		{"not a mapping", "- a\n- b\n", 1, "want a mapping (Scenario), got a seq"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(c.text))
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errs) == 0 {
				t.Fatalf("Parse = %v, want a ValidationError", err)
			}
			fe := ve.Errs[0]
			if fe.File != "bad.yaml" || fe.Line != c.line || !strings.Contains(fe.Msg, c.msg) {
				t.Errorf("got %q (line %d), want bad.yaml line %d: ...%s...", fe.Error(), fe.Line, c.line, c.msg)
			}
		})
	}
}

func TestParseListsEveryProblem(t *testing.T) {
	text := strings.NewReplacer("gi: 9,", "gi: nine,", "scrape_interval: 15s", "scrape_interval: soon").Replace(readSmall(t))
	_, err := Parse("small.yaml", []byte(text))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errs) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "invalid scenario (2 problems):\n  small.yaml:") {
		t.Errorf("error text %q", err)
	}
	many := &ValidationError{}
	for i := 0; i < MaxErrors+5; i++ {
		many.Errs = append(many.Errs, &FieldError{File: "f", Line: i + 1, Field: "x", Msg: "bad"})
	}
	if !strings.Contains(many.Error(), "... and 5 more") || strings.Count(many.Error(), "\n") != MaxErrors+1 {
		t.Errorf("a long list is not cut at %d:\n%s", MaxErrors, many.Error())
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want os.ErrNotExist", err)
	}
}

func TestRoundTrip(t *testing.T) {
	s1, err := Load(smallPath)
	if err != nil {
		t.Fatal(err)
	}
	var b1 bytes.Buffer
	if err := Write(&b1, s1); err != nil {
		t.Fatal(err)
	}
	s2, err := Parse("written.yaml", b1.Bytes())
	if err != nil {
		t.Fatalf("Parse(Write(small)): %v\n%s", err, b1.String())
	}
	if !reflect.DeepEqual(s1, s2) {
		t.Errorf("Parse(Write(s)) differs from s\nwritten:\n%s", b1.String())
	}
	var b2 bytes.Buffer
	if err := Write(&b2, s2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Errorf("Write is not stable:\n%s\n---\n%s", b1.String(), b2.String())
	}
	for _, want := range []string{"scrape_interval: 15s", "ended_retention: 1h", "duration: 5m", "start: 2026-11-02T08:00:00Z"} {
		if !strings.Contains(b1.String(), want) {
			t.Errorf("written scenario lacks %q", want)
		}
	}
}

// TestValidateInMemory checks scenarios built in code: the same rules,
// with fields but no lines.
func TestValidateInMemory(t *testing.T) {
	good, err := Load(smallPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(good); err != nil {
		t.Fatalf("Validate(small) = %v", err)
	}
	cases := []struct {
		name   string
		mutate func(s *Scenario)
		want   string
	}{
		{"unknown node", func(s *Scenario) { s.Pods[3].Node = "x" }, `scenario: pods[3].node: unknown node "x"`},
		{"no nodes", func(s *Scenario) { s.Nodes, s.Pods, s.Faults = nil, nil, nil }, "scenario: nodes: a scenario needs at least one node"},
		{"zero scrape interval", func(s *Scenario) { s.ScrapeInterval = 0 }, "scenario: scrape_interval: missing"},
		{"sub-second scrape interval", func(s *Scenario) { s.ScrapeInterval = Duration(1500 * time.Millisecond) },
			"scenario: scrape_interval: scrape interval 1.5s is not a whole number of seconds"},
		{"negative retention", func(s *Scenario) { s.EndedRetention = Duration(-time.Second) }, "scenario: ended_retention: negative retention"},
		{"negative fault duration", func(s *Scenario) { s.Faults[0].Duration = Duration(-time.Second) }, "scenario: faults[0].duration: negative duration"},
		{"fractional pod start", func(s *Scenario) { s.Pods[1].Start = s.Pods[1].Start.Add(time.Millisecond) }, "scenario: pods[1].start: start"},
		{"queue without name", func(s *Scenario) { s.Queues[0].Name = "" }, "scenario: queues[0].name: missing queue name"},
		{"queue without namespace", func(s *Scenario) { s.Queues[0].Namespace = "" }, "scenario: queues[0].namespace: missing queue namespace"},
		{"negative GPU index", func(s *Scenario) { s.Nodes[0].GPUs[1].Index = -1 }, "scenario: nodes[0].gpus[1].index: negative GPU index -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Load(smallPath)
			if err != nil {
				t.Fatal(err)
			}
			c.mutate(s)
			err = Validate(s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// miniScenario is a one-node scenario around a GPU block, for layouts
// small.yaml does not have.
func miniScenario(gpus, pods string) string {
	return `cluster: mini
start: 2026-01-01T00:00:00Z
end: 2026-01-01T01:00:00Z
scrape_interval: 30s
nodes:
  - name: n1
    gpus:
` + gpus + `pods:
` + pods
}

func TestMIGComputeInstances(t *testing.T) {
	const gpu = `      - index: 0
        uuid: GPU-aaaaaaaa-0000-0000-0000-000000000000
        model: NVIDIA A100-SXM4-80GB
        mig:
          - {profile: 1c.4g.40gb, gi: 1, ci: 0, uuid: MIG-aaaaaaaa-0000-0000-0000-000000000001}
          - {profile: 3c.4g.40gb, gi: 1, ci: 1, uuid: MIG-aaaaaaaa-0000-0000-0000-000000000002}
          - {profile: 3g.40gb, gi: 2, ci: 0, uuid: MIG-aaaaaaaa-0000-0000-0000-000000000003}
`
	const pods = `  - name: p1
    namespace: ns
    uid: u1
    node: n1
    devices:
      - {resource: nvidia.com/mig-3c.4g.40gb, id: MIG-aaaaaaaa-0000-0000-0000-000000000002}
    start: 2026-01-01T00:00:00Z
`
	s, err := Parse("mini.yaml", []byte(miniScenario(gpu, pods)))
	if err != nil {
		t.Fatalf("two compute instances in one GPU instance: %v", err)
	}
	allocs, err := s.Allocations(defaultRules())
	if err != nil {
		t.Fatal(err)
	}
	// 3 of the 4 compute slices of a 4g.40gb instance: 3/4 × max(4/7, 4/8)
	// = 3/7 = 428.57… → 429 milli-GPU.
	if len(allocs) != 1 || allocs[0].WeightMilli != 429 || allocs[0].GI != 1 || allocs[0].CI != 1 {
		t.Errorf("allocations = %+v, want one of weight 429 on gi 1 ci 1", allocs)
	}

	bad := []struct {
		name, from, to, field, msg string
	}{
		{"compute instances over their GPU instance", "3c.4g.40gb, gi: 1, ci: 1", "4c.4g.40gb, gi: 1, ci: 1",
			"nodes[0].gpus[0].mig[1].profile", "GPU instance 1 has 4 compute slices; its compute instances use 5"},
		{"compute instances of different GPU instances", "3c.4g.40gb, gi: 1, ci: 1", "1c.3g.40gb, gi: 1, ci: 1",
			"nodes[0].gpus[0].mig[1].profile", "does not match GPU instance 1"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			text := miniScenario(strings.Replace(gpu, c.from, c.to, 1), strings.Replace(pods, "mig-3c.4g.40gb", "mig-"+strings.SplitN(c.to, ",", 2)[0], 1))
			_, err := Parse("mini.yaml", []byte(text))
			fe := findFieldError(t, err, c.field)
			if want := lineOfText(t, text, c.to, 1); fe.Line != want || !strings.Contains(fe.Msg, c.msg) {
				t.Errorf("got %q, want mini.yaml:%d: %s: ...%s", fe.Error(), want, c.field, c.msg)
			}
		})
	}
}

// TestRoundTripTricky writes scenarios whose free text and numbers are
// hard for YAML (strings that look like other types, indicators, line
// breaks, control characters) and checks that they read back the same.
func TestRoundTripTricky(t *testing.T) {
	tricky := []string{"", " ", "true", "no", "null", "~", "0x1F", "1e3", "0777", "-", "- a", "a: b", "#c", "!tag",
		"&a", "*a", "|", ">", "'", "\"", "line\nbreak", "trailing\n", "\ttab", "é", "日本", "\x00nul", "\u2028",
		"2026-11-02", "2026-11-02T08:00:00Z", "=1+2", "@x", "%", "`", "{}", "[]", "<<", "1:2", ".nan", ".inf", "15s",
		"  padded  ", "---", "...", "? q", "a,b", strings.Repeat("long ", 40)}
	means := []float64{0, 1, 0.1, 1e-10, 0.30000000000000004, 5e-324, 0.999999999999}
	cet := time.FixedZone("", 3600)
	for i, text := range tricky {
		s, err := Load(smallPath)
		if err != nil {
			t.Fatal(err)
		}
		s.Source = text
		s.Namespaces[3].Labels = map[string]string{text: text, "k": text}
		s.Pods[0].Annotations["note"] = text
		s.Pods[1].Labels["x.example/"+strings.Repeat("k", i)] = text
		s.Pods[2].ServiceAccount = text
		s.Nodes[1].Labels = map[string]string{"note": text}
		s.Pods[3].Profile.Mean = means[i%len(means)]
		// The same instant in another zone.
		s.Pods[4].Start = s.Pods[4].Start.In(cet)
		if err := Validate(s); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		var b1, b2 bytes.Buffer
		if err := Write(&b1, s); err != nil {
			t.Fatal(err)
		}
		s2, err := Parse("tricky.yaml", b1.Bytes())
		if err != nil {
			t.Fatalf("%q: written scenario does not parse: %v\n%s", text, err, b1.String())
		}
		if s2.Source != text || s2.Pods[0].Annotations["note"] != text || s2.Pods[2].ServiceAccount != text ||
			s2.Namespaces[3].Labels[text] != text || s2.Pods[3].Profile.Mean != s.Pods[3].Profile.Mean ||
			!s2.Pods[4].Start.Equal(s.Pods[4].Start) {
			t.Errorf("%q does not survive Write → Parse:\n%s", text, b1.String())
		}
		if err := Write(&b2, s2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Errorf("%q: second Write differs", text)
		}
	}
}

package trace

import (
	"strings"
	"testing"
)

const podHeader = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"

func TestReadAlibabaPodsErrors(t *testing.T) {
	cases := []struct {
		name, csv, want string
	}{
		{"empty", "", "pods.csv: empty file"},
		{"missing column", "name,num_gpu,qos,deletion_time,scheduled_time\n", "pods.csv:1: missing column(s) gpu_milli"},
		{"bad integer", podHeader + "p,1,1,x,1000,,LS,Running,0,10,0\n", `pods.csv:2: num_gpu: "x" is not an integer`},
		{"fractional number", podHeader + "p,1,1,1,1000,,LS,Running,0,10.5,0\n", `pods.csv:2: deletion_time: "10.5" is not an integer`},
		{"negative GPUs", podHeader + "p,1,1,-1,1000,,LS,Running,0,10,0\n", "pods.csv:2: num_gpu: -1 GPUs out of range"},
		{"milli too large", podHeader + "p,1,1,1,1200,,LS,Running,0,10,0\n", "pods.csv:2: gpu_milli: 1200 out of range"},
		{"deleted before scheduled", podHeader + "p,1,1,1,1000,,LS,Running,0,5,10\n", "pods.csv:2: deletion_time: 5 is before scheduled_time 10"},
		{"no deletion", podHeader + "p,1,1,1,1000,,LS,Running,0,,10\n", "pods.csv:2: deletion_time: missing for a scheduled pod"},
		{"negative time", podHeader + "p,1,1,1,1000,,LS,Running,0,10,-3\n", "pods.csv:2: scheduled_time: negative time -3"},
		{"duplicate", podHeader + "p,1,1,1,1000,,LS,Running,0,10,0\np,1,1,1,1000,,LS,Running,0,10,0\n", `pods.csv:3: name: duplicate pod "p" (first on line 2)`},
		{"no name", podHeader + ",1,1,1,1000,,LS,Running,0,10,0\n", "pods.csv:2: name: missing pod name"},
		{"ragged row", podHeader + "p,1,1,1,1000\n", "wrong number of fields"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadAlibabaPods(strings.NewReader(c.csv), "pods.csv")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	// Never-scheduled and GPU-less pods need no deletion time.
	pods, err := ReadAlibabaPods(strings.NewReader(podHeader+"a,1,1,1,1000,,BE,Pending,0,,\nb,1,1,0,0,,BE,Running,0,,5\n"), "pods.csv")
	if err != nil || len(pods) != 2 || pods[0].IsScheduled || !pods[1].IsScheduled {
		t.Errorf("pods %+v, err %v", pods, err)
	}
}

func TestReadAlibabaNodesErrors(t *testing.T) {
	const h = "sn,cpu_milli,memory_mib,gpu,model\n"
	cases := []struct {
		name, csv, want string
	}{
		{"unknown model", h + "n,1,1,2,X9\n", `nodes.csv:2: model: unknown GPU model "X9" (known: A10, G1, G2, G3, P100, T4, V100M16, V100M32)`},
		{"bad count", h + "n,1,1,two,T4\n", `nodes.csv:2: gpu: "two" is not an integer`},
		{"too many GPUs", h + "n,1,1,100,T4\n", "nodes.csv:2: gpu: 100 GPUs out of range"},
		{"duplicate", h + "n,1,1,2,T4\nn,1,1,2,T4\n", `nodes.csv:3: sn: duplicate node "n"`},
		{"missing column", "sn,gpu\n", "nodes.csv:1: missing column(s) model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadAlibabaNodes(strings.NewReader(c.csv), "nodes.csv")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestReadOrgsErrors(t *testing.T) {
	const h = "organization,jobs,gpu_seconds,gpu_demand,median_duration\n"
	cases := []struct {
		name, csv, want string
	}{
		{"negative share", h + "1,10,-5,1,1\n", "orgs.csv:2: gpu_seconds: negative GPU-seconds -5"},
		{"not finite", h + "1,10,NaN,1,1\n", `orgs.csv:2: gpu_seconds: "NaN" is not a finite number`},
		{"no share at all", h + "1,10,0,1,1\n2,10,0,1,1\n", "orgs.csv: organisations hold no GPU-seconds"},
		{"no rows", h, "orgs.csv: no organisations"},
		{"same project", h + "A,10,1,1,1\na,10,1,1,1\n", `organisations "A" and "a" both map to project "org-a"`},
		{"negative jobs", h + "1,-1,5,1,1\n", "orgs.csv:2: jobs: negative job count -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadOrgs(strings.NewReader(c.csv), "orgs.csv")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestReadPhillyJobsErrors(t *testing.T) {
	const h = "job_id,user,num_gpu,submit_time,iterations,model_name,duration,interval,expect_time_list,expect_value_list,best_effort,job_type\n"
	cases := []struct {
		name, csv, want string
	}{
		{"duplicate", h + "1,vc_a,1,0,1,m,10,1,1,1,0,strict\n1,vc_a,1,0,1,m,10,1,1,1,0,strict\n", `jobs.csv:3: job_id: duplicate job "1"`},
		{"negative duration", h + "1,vc_a,1,0,1,m,-10,1,1,1,0,strict\n", "jobs.csv:2: duration: negative duration -10"},
		{"no VC", h + "1,,1,0,1,m,10,1,1,1,0,strict\n", "jobs.csv:2: user: missing virtual cluster"},
		{"bad submit", h + "1,vc_a,1,soon,1,m,10,1,1,1,0,strict\n", `jobs.csv:2: submit_time: "soon" is not an integer`},
		{"missing column", "job_id,user,num_gpu\n", "jobs.csv:1: missing column(s) submit_time, duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadPhillyJobs(strings.NewReader(c.csv), "jobs.csv")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := LoadOrgs("no/such/orgs.csv")
	if err == nil || !containsAll(err.Error(), "organisation shares", "no/such/orgs.csv") {
		t.Errorf("err = %v, want one naming the path", err)
	}
}

func TestHolding(t *testing.T) {
	cases := []struct {
		name string
		pod  AlibabaPod
		want Holding
		ok   bool
	}{
		{"whole", AlibabaPod{NumGPU: 1, GPUMilli: 1000, IsScheduled: true, Scheduled: 5, Deletion: 9}, Holding{Start: 5, End: 9, GPUs: 1}, true},
		{"multi ignores milli", AlibabaPod{NumGPU: 4, GPUMilli: 500, IsScheduled: true, Scheduled: 5, Deletion: 9}, Holding{Start: 5, End: 9, GPUs: 4}, true},
		{"fraction", AlibabaPod{NumGPU: 1, GPUMilli: 470, IsScheduled: true, Scheduled: 5, Deletion: 9}, Holding{Start: 5, End: 9, Milli: 470}, true},
		{"never scheduled", AlibabaPod{NumGPU: 1, GPUMilli: 1000, Deletion: 9}, Holding{}, false},
		{"no GPU", AlibabaPod{NumGPU: 0, IsScheduled: true, Scheduled: 5, Deletion: 9}, Holding{}, false},
		{"zero milli", AlibabaPod{NumGPU: 1, GPUMilli: 0, IsScheduled: true, Scheduled: 5, Deletion: 9}, Holding{}, false},
		{"zero length", AlibabaPod{NumGPU: 1, GPUMilli: 1000, IsScheduled: true, Scheduled: 9, Deletion: 9}, Holding{}, false},
	}
	for _, c := range cases {
		got, ok := c.pod.Holding()
		if got != c.want || ok != c.ok {
			t.Errorf("%s: Holding() = %+v, %v; want %+v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

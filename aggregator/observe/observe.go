// Package observe holds the data the aggregator's stages pass to each other:
// what a scrape of one exporter saw (Scrape), and what one closed window of
// time adds to the ledger (Window). Sources produce Scrapes, the interval
// reconstruction (aggregator/intervals) turns them into Windows, the ledger
// (aggregator/ledger) stores Windows. Times of scrapes are Unix
// milliseconds; allocation starts and ends are whole Unix seconds, as
// Kubernetes reports them.
package observe

// AllocKey identifies an allocation within a cluster: one device (or, on a
// virtual node, one requested resource) held by one pod.
type AllocKey struct {
	Node     string
	Device   string // device ID as the kubelet reports it; "" on virtual nodes
	PodUID   string
	Resource string // extended-resource name
}

// Attrs are an allocation's descriptive labels, fixed when it starts: the
// attribution in force when the usage happened is what the ledger keeps.
type Attrs struct {
	Class     string // gpu, mig, shared, fpga, offload
	GPUUUID   string // physical GPU, "" for FPGA and offload
	Model     string
	Profile   string // MIG profile, else ""
	Namespace string
	Pod       string
	User      string
	Project   string
	Queue     string
	Site      string
}

// Alloc is one allocation as one scrape saw it (the gpuledger_allocation_*
// series of one label set).
type Alloc struct {
	AllocKey
	Attrs
	Start       int64 // exact start, Unix seconds
	End         int64 // exact end, Unix seconds; 0 while the allocation is active
	WeightMilli int64 // milli-GPU (round(weight_ratio × 1000))
	Devices     int64
	// ActivityMilli is the activity of the allocation's share at the
	// scrape, in thousandths; -1 when not reported (ended allocations).
	ActivityMilli int64
}

// GPU is one physical GPU as one scrape saw it.
type GPU struct {
	Node  string
	UUID  string
	Model string
	// EnergyMillijoules is the device's energy counter (since driver load);
	// -1 when the source does not report it.
	EnergyMillijoules int64
}

// FPGA is one FPGA card as one scrape saw it (gpuledger_fpga_info).
type FPGA struct {
	Node   string
	Device string // PCI address of the user function
	Model  string
}

// Quota is the nominal quota of a Kueue ClusterQueue for one resource in
// one resource flavor, as one scrape saw it
// (gpuledger_kueue_clusterqueue_nominal_quota, served by the exporter in
// cluster mode).
type Quota struct {
	ClusterQueue string
	Flavor       string
	Resource     string // extended-resource name: nvidia.com/gpu, nvidia.com/mig-1g.10gb, ...
	NominalMilli int64  // thousandths of the resource (round(devices × 1000))
}

// QueueQuota is the nominal quota of a ClusterQueue for one resource,
// summed over its flavors, in force from At on: what the ledger's quota
// history (queue_quotas) stores.
type QueueQuota struct {
	Queue    string // the ClusterQueue
	Resource string
	// Project is the ledger project the queue's usage is accounted to.
	Project      string
	NominalMilli int64
	At           int64 // first scrape that showed the value, Unix milliseconds
}

// Scrape is what one exporter answered at one time.
type Scrape struct {
	Target string // the exporter: its node name
	Time   int64  // the exporter's clock at the scrape, Unix milliseconds
	// OK is false for a failed scrape (no answer, 5xx, garbage): it says
	// nothing about the allocations, and the ones seen before are kept open.
	OK     bool
	Allocs []Alloc
	GPUs   []GPU
	FPGAs  []FPGA
	// Quotas are the Kueue ClusterQueue quotas the exporter served (in
	// cluster mode), sorted by queue, flavor and resource; nil when it
	// served none.
	Quotas []Quota
	// Unknown are allocations the scrape mentioned but that could not be
	// read (a malformed series): their state at this scrape is unknown,
	// which is not the same as absent — they must not be taken as ended.
	Unknown []AllocKey
}

// Interval is an allocation reconstructed from scrapes.
type Interval struct {
	AllocKey
	Attrs
	Start       int64 // Unix seconds
	End         int64 // Unix seconds; 0 while still open
	EndExact    bool  // End came from the exporter's end series, not inferred
	LastSeen    int64 // last scrape that showed it, Unix milliseconds
	WeightMilli int64
	Devices     int64
}

// Usage is what the samples of one window say of one allocation's activity
// and energy. Used and Idle are milli-GPU-seconds sampled from activity; they
// are approximations by nature (one sample per scrape interval), unlike the
// allocated time, which comes from exact starts and ends.
type Usage struct {
	AllocKey
	UsedMilliGPUSeconds int64 // Σ activity × weight × Δt over the window
	IdleMilliGPUSeconds int64 // Σ weight × Δt where activity < the idle threshold
	EnergyMillijoules   int64 // the allocation's share of its GPU's energy in the window
}

// Energy is one GPU's energy counter increase over a window (resets
// handled), whoever held it.
type Energy struct {
	Node              string
	GPUUUID           string
	Model             string
	EnergyMillijoules int64
}

// Capacity is one GPU or FPGA present in the window, for cluster rows.
type Capacity struct {
	Node    string
	Device  string // GPU UUID or FPGA address
	Class   string // gpu or fpga
	Model   string
	Seconds int64 // seconds of the window the device was seen present
}

// Window is everything a closed window [From, To) adds to the ledger.
// Applying the same Window twice gives the same ledger (it replaces the
// window's usage and energy and upserts its intervals).
type Window struct {
	Cluster   string
	From, To  int64      // Unix seconds
	Intervals []Interval // every interval that was open during the window or changed in it
	Usage     []Usage
	Energy    []Energy
	Capacity  []Capacity
}
